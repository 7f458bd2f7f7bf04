"""The interface every game's rules implement, plus shared input validation, ranking and the replay helper.
Rules are pure (no Django, asyncio, I/O, wall clock or `random`); docs/games.md has the details."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

ABANDON_RULES = ("forfeit", "continue")
END_REASONS = ("score_limit", "time_limit", "forfeit", "last_player_standing")


class InputError(ValueError):
    """Raised by parse_input for a malformed input; .code is a stable snake_case string, str(e) a readable message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class GameSettings:
    slug: str
    name: str
    min_players: int
    max_players: int
    tick_rate: int = 20
    match_seconds: float = 120.0
    countdown_seconds: float = 3.0
    reconnect_grace_seconds: float = 15.0
    spectators_allowed: bool = True
    # Spectators see the match this many seconds late (games/engine/delay.py); 0: live.
    spectator_delay_seconds: float = 0.0
    abandon_rule: str = "continue"
    # The keys of an input object in a fixed order: protocol v2 clients may then send an input as the compact array
    # [seq, value, ...] in this order (docs/protocol.md, "Compact inputs"). Empty: inputs are objects only.
    input_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.min_players <= self.max_players:
            raise ValueError(f"need 1 <= min_players <= max_players, got {self.min_players}..{self.max_players}")
        if self.tick_rate <= 0 or self.match_seconds <= 0:
            raise ValueError("tick_rate and match_seconds must be positive")
        if not 0 <= self.spectator_delay_seconds <= 300:
            raise ValueError(f"spectator_delay_seconds must be 0-300, got {self.spectator_delay_seconds}")
        if self.abandon_rule not in ABANDON_RULES:
            raise ValueError(f"abandon_rule must be one of {ABANDON_RULES}, got {self.abandon_rule!r}")

    @property
    def dt(self) -> float:
        """The fixed timestep; pass exactly this to step() so replays match bit for bit."""
        return 1.0 / self.tick_rate

    @property
    def match_ticks(self) -> int:
        """The time limit in ticks, which is what the rules count so that it is deterministic."""
        return round(self.match_seconds * self.tick_rate)


@dataclass(frozen=True, slots=True)
class MatchResult:
    """placings[seat] is 1 for a winner, ties share a place ([1, 1, 3]) and removed seats are last."""

    placings: list[int]
    scores: list[int]
    winner_seats: list[int]
    reason: str


class Game(Protocol):
    """One object per game (e.g. `arena.GAME`); the state it creates is opaque to the engine."""

    settings: GameSettings

    def initial_state(self, seats: int, *, seed: int) -> Any: ...

    def parse_input(self, raw: Mapping[str, Any]) -> Any: ...

    def apply_input(self, state: Any, seat: int, inp: Any) -> None: ...

    def step(self, state: Any, dt: float) -> list[dict]: ...

    def remove_player(self, state: Any, seat: int) -> None: ...

    def is_finished(self, state: Any) -> bool: ...

    def result(self, state: Any) -> MatchResult: ...

    def snapshot(self, state: Any) -> dict: ...

    def to_checkpoint(self, state: Any) -> dict: ...

    def from_checkpoint(self, data: Mapping[str, Any]) -> Any: ...


def check_object(raw: object) -> Mapping[str, Any]:
    if type(raw) is not dict and not isinstance(raw, Mapping):  # the exact check first: every input passes here
        raise InputError("wrong_type", "input must be an object")
    return raw


def read_number(raw: Mapping[str, Any], key: str, lo: float, hi: float) -> float:
    """A required finite number in [lo, hi]; booleans are not numbers here even though Python says so."""
    value = raw.get(key)
    if type(value) is float and lo <= value <= hi:  # every input of every player: the common case first (NaN fails)
        return value
    if key not in raw:
        raise InputError("missing_field", f"{key} is required")
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError("wrong_type", f"{key} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError("not_finite", f"{key} must be a finite number")
    # Compare before float(): a huge JSON integer would overflow the conversion.
    if not lo <= value <= hi:
        raise InputError("out_of_range", f"{key} must be between {lo:g} and {hi:g}")
    return float(value)


def read_optional_number(raw: Mapping[str, Any], key: str, lo: float, hi: float) -> float | None:
    return read_number(raw, key, lo, hi) if key in raw else None


def read_bool(raw: Mapping[str, Any], key: str, default: bool | None = None) -> bool:
    """A true/false field; without a default it is required. 0 and 1 are not booleans here."""
    if key not in raw:
        if default is None:
            raise InputError("missing_field", f"{key} is required")
        return default
    value = raw[key]
    if not isinstance(value, bool):
        raise InputError("wrong_type", f"{key} must be true or false")
    return value


def check_seat(seat: int, seats: int) -> None:
    # A negative seat would silently index from the end of the per-seat lists.
    if not 0 <= seat < seats:
        raise ValueError(f"seat {seat} out of range for {seats} seats")


def check_seat_count(settings: GameSettings, seats: int) -> None:
    if not settings.min_players <= seats <= settings.max_players:
        raise ValueError(f"{settings.slug} needs {settings.min_players}..{settings.max_players} players, got {seats}")


def rank_result(scores: Sequence[int], removed: Sequence[bool], reason: str) -> MatchResult:
    """Competition ranking by score (ties share a place, the next place is skipped); removed seats share last place."""
    if reason not in END_REASONS:
        raise ValueError(f"reason must be one of {END_REASONS}, got {reason!r}")
    keys = [(0, 0) if gone else (1, score) for score, gone in zip(scores, removed, strict=True)]
    placings = [1 + sum(other > mine for other in keys) for mine in keys]
    winners = [seat for seat, place in enumerate(placings) if place == 1]
    return MatchResult(placings=placings, scores=list(scores), winner_seats=winners, reason=reason)


def play(
    game: Game,
    seats: int,
    seed: int,
    inputs_by_tick: Mapping[int, list[tuple[int, Mapping[str, Any]]]],
    max_ticks: int,
    *,
    removals_by_tick: Mapping[int, Iterable[int]] | None = None,
) -> Any:
    """Replay a seed and inputs; returns the state after max_ticks steps or when the match finished.

    Inputs and then removals keyed by tick t are applied while state.tick == t, i.e. just before the step that takes
    the match from tick t to t + 1: the engine's order within a tick (games/engine/runner.py applies a tick's inputs,
    then its removals, then steps). Raw inputs go through parse_input exactly as live ones do. A match's stored log
    (its exact order, and what the engine applied after its last step) is replayed by `replay_log`.
    """
    state = game.initial_state(seats, seed=seed)
    dt = game.settings.dt
    removals = removals_by_tick or {}
    for tick in range(max_ticks):
        if game.is_finished(state):
            break
        for seat, raw in inputs_by_tick.get(tick, ()):
            game.apply_input(state, seat, game.parse_input(raw))
        for seat in removals.get(tick, ()):
            game.remove_player(state, seat)
        game.step(state, dt)
    return state


def replay_log(game: Game, seats: int, seed: int, log: Iterable[Sequence[Any]], ticks: int) -> tuple[Any, int]:
    """(final state, steps taken) of a stored match, from its seed and input log (`[[step, seat, raw input or None], ...]`, None: the
    seat was removed), in the log's own order, which is the order the engine applied them in.

    Entries logged at step t are applied while state.tick == t, before the step to t + 1; those at step `ticks` (the
    last tick's: a forfeit ends a match without a step) are applied after the last step. Stops early when the match
    finishes, as the engine does."""
    by_step: dict[int, list[tuple[int, Any]]] = {}
    for step, seat, raw in log:
        by_step.setdefault(step, []).append((seat, raw))
    state = game.initial_state(seats, seed=seed)
    dt = game.settings.dt
    tick = 0
    while True:
        for seat, raw in by_step.get(tick, ()):
            if raw is None:
                game.remove_player(state, seat)
            else:
                game.apply_input(state, seat, game.parse_input(raw))
        if tick == ticks or game.is_finished(state):
            return state, tick
        game.step(state, dt)
        tick += 1
