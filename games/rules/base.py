"""The interface every game's rules implement, plus shared input validation, ranking and the replay helper.
Rules are pure (no Django, asyncio, I/O, wall clock or `random`); docs/games.md has the details."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

ABANDON_RULES = ("forfeit", "continue")
# The generic end reasons any game may use; a game adds its own in GameSettings.end_reasons (docs/games.md).
END_REASONS = ("score_limit", "time_limit", "forfeit", "last_player_standing", "elimination", "draw")
# Every code an InputError carries from the helpers below, plus not_your_turn (turn-based games, in an
# input_refused event); a game may add its own snake_case codes (docs/games.md, "Input validation").
INPUT_ERROR_CODES = (
    "wrong_type",
    "missing_field",
    "not_finite",
    "out_of_range",
    "not_an_integer",
    "unknown_choice",
    "wrong_length",
    "not_your_turn",
)
_SNAKE = re.compile(r"[a-z][a-z0-9_]{0,39}")


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
    # 1-v-1 matches: play pauses while a player is disconnected (within reconnect_grace_seconds) and resumes with a
    # countdown when they are back, so that a drop costs no points. Matches of more players go on regardless.
    pause_on_disconnect: bool = False
    # The keys of an input object in a fixed order: protocol v2 clients may then send an input as the compact array
    # [seq, value, ...] in this order (docs/protocol.md, "Compact inputs"). Empty: inputs are objects only.
    input_fields: tuple[str, ...] = ()
    # Turn-based games: the turn timer in seconds (None: a real-time game, or turns without a timer). The rules
    # enforce it, counting settings.turn_ticks; the engine only reports it to clients.
    turn_seconds: float | None = None
    # The game's own end reasons (snake_case), on top of the generic END_REASONS.
    end_reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.min_players <= self.max_players:
            raise ValueError(f"need 1 <= min_players <= max_players, got {self.min_players}..{self.max_players}")
        if self.tick_rate <= 0 or self.match_seconds <= 0:
            raise ValueError("tick_rate and match_seconds must be positive")
        if not 0 <= self.spectator_delay_seconds <= 300:
            raise ValueError(f"spectator_delay_seconds must be 0-300, got {self.spectator_delay_seconds}")
        if self.abandon_rule not in ABANDON_RULES:
            raise ValueError(f"abandon_rule must be one of {ABANDON_RULES}, got {self.abandon_rule!r}")
        if self.turn_seconds is not None and not self.turn_seconds > 0:
            raise ValueError("turn_seconds must be positive (or None)")
        for reason in self.end_reasons:
            if not _SNAKE.fullmatch(reason):
                raise ValueError(f"end reasons are snake_case, got {reason!r}")

    @property
    def all_end_reasons(self) -> tuple[str, ...]:
        """Every reason result() may give: the generic ones and the game's own."""
        return END_REASONS + tuple(r for r in self.end_reasons if r not in END_REASONS)

    @property
    def turn_ticks(self) -> int | None:
        """The turn timer in whole ticks (at least 1), or None without one."""
        return None if self.turn_seconds is None else max(1, round(self.turn_seconds * self.tick_rate))

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


@dataclass(frozen=True, slots=True)
class InputExamples:
    """Raw inputs (as a client sends them) that the contract tests feed a game: `valid` ones parse and are legal at
    any time (real-time games), `invalid` ones are (raw, the InputError code parse_input must raise)."""

    valid: tuple[Any, ...]
    invalid: tuple[tuple[Any, str], ...] = ()


class Game(Protocol):
    """One object per game (e.g. `arena.GAME`); the state it creates is opaque to the engine.

    Optional: `legal_inputs(state, seat) -> list` of raw inputs legal right now (turn-based games; the contract tests
    use it instead of examples.valid when it exists)."""

    settings: GameSettings
    examples: InputExamples

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


def read_int(raw: Mapping[str, Any], key: str, lo: int, hi: int, default: int | None = None) -> int:
    """A required whole number in [lo, hi] (2.0 counts as 2, since JavaScript and 32-bit msgpack floats cannot tell
    them apart; 2.5 is not_an_integer); with a default, optional."""
    if key not in raw:
        if default is None:
            raise InputError("missing_field", f"{key} is required")
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError("wrong_type", f"{key} must be a whole number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError("not_finite", f"{key} must be a finite number")
        if not value.is_integer():
            raise InputError("not_an_integer", f"{key} must be a whole number")
    if not lo <= value <= hi:
        raise InputError("out_of_range", f"{key} must be between {lo} and {hi}")
    return int(value)


def read_choice(raw: Mapping[str, Any], key: str, choices: Sequence[str], default: str | None = None) -> str:
    """One string of a fixed set (case-sensitive); with a default, optional."""
    if key not in raw:
        if default is None:
            raise InputError("missing_field", f"{key} is required")
        return default
    value = raw[key]
    if not isinstance(value, str):
        raise InputError("wrong_type", f"{key} must be a string")
    if value not in choices:
        shown = ", ".join(choices) if len(choices) <= 8 else ", ".join(choices[:8]) + ", ..."
        raise InputError("unknown_choice", f"{key} must be one of {shown}")
    return value


def read_vector(raw: Mapping[str, Any], key: str, size: int, lo: float, hi: float) -> tuple[float, ...]:
    """A required list of exactly `size` finite numbers, each in [lo, hi], as a tuple of floats."""
    if key not in raw:
        raise InputError("missing_field", f"{key} is required")
    value = raw[key]
    if not isinstance(value, (list, tuple)):
        raise InputError("wrong_type", f"{key} must be a list of {size} numbers")
    if len(value) != size:
        raise InputError("wrong_length", f"{key} must have {size} numbers")
    return tuple(read_number({key: item}, key, lo, hi) for item in value)


@dataclass(frozen=True, slots=True)
class InputField:
    """One field of an input object, read as its read_* helper reads it (build them with number(), boolean()...)."""

    key: str
    kind: str  # "number", "optional_number", "bool", "int" or "choice": the helper that reads it
    lo: Any = None
    hi: Any = None
    default: Any = None
    choices: tuple[str, ...] = ()


def number(key: str, lo: float, hi: float) -> InputField:
    """What read_number reads."""
    return InputField(key, "number", lo, hi)


def optional_number(key: str, lo: float, hi: float) -> InputField:
    """What read_optional_number reads."""
    return InputField(key, "optional_number", lo, hi)


def boolean(key: str, default: bool | None = None) -> InputField:
    """What read_bool reads."""
    return InputField(key, "bool", default=default)


def integer(key: str, lo: int, hi: int, default: int | None = None) -> InputField:
    """What read_int reads."""
    return InputField(key, "int", lo, hi, default)


def choice(key: str, choices: Sequence[str], default: str | None = None) -> InputField:
    """What read_choice reads."""
    return InputField(key, "choice", default=default, choices=tuple(choices))


def _read_field(raw: Mapping[str, Any], spec: InputField) -> Any:
    if spec.kind == "number":
        return read_number(raw, spec.key, spec.lo, spec.hi)
    if spec.kind == "optional_number":
        return read_optional_number(raw, spec.key, spec.lo, spec.hi)
    if spec.kind == "bool":
        return read_bool(raw, spec.key, spec.default)
    if spec.kind == "int":
        return read_int(raw, spec.key, spec.lo, spec.hi, spec.default)
    return read_choice(raw, spec.key, spec.choices, spec.default)


def input_reader(*specs: InputField) -> Callable[[Any], tuple[Any, ...]]:
    """A function reading an input object's fields in order, as check_object() then each field's read_* helper would,
    with the same values, errors and codes; it returns their values as a tuple.

    parse_input runs for every input of every player, and the helpers cost a Python call each: this reader checks the
    common case (an exact dict, each value of its exact type and in range) in one function made once per game, and
    calls the helpers, in order, only for anything else (an int for a number, a missing field, a bad value), so that
    a refusal is worded and coded exactly as theirs."""
    if not specs or any(type(spec) is not InputField for spec in specs):
        raise TypeError("input_reader takes InputField values (number(), boolean(), ...)")

    def slowly(raw: Any) -> tuple[Any, ...]:
        raw = check_object(raw)
        return tuple(_read_field(raw, spec) for spec in specs)

    # The fast path's source names the fields only by their position: keys, bounds and choices are looked up in its
    # globals, never written into it, so no key or bound can change what the code does.
    names: dict[str, Any] = {"slowly": slowly}
    reads, tests = [], []
    for i, spec in enumerate(specs):
        names[f"k{i}"], names[f"lo{i}"], names[f"hi{i}"] = spec.key, spec.lo, spec.hi
        names[f"d{i}"], names[f"c{i}"] = spec.default, frozenset(spec.choices)
        required = spec.kind == "number" or (spec.kind in ("bool", "int", "choice") and spec.default is None)
        reads.append(f"v{i} = raw[k{i}]" if required else f"v{i} = raw.get(k{i}, d{i})")
        if spec.kind in ("number", "optional_number"):
            test = f"(type(v{i}) is float and lo{i} <= v{i} <= hi{i})"
            if spec.kind == "optional_number":  # absent (not null): None
                test = f"({test} or (v{i} is None and k{i} not in raw))"
        elif spec.kind == "bool":
            test = f"(v{i} is True or v{i} is False)"
        elif spec.kind == "int":
            test = f"(type(v{i}) is int and lo{i} <= v{i} <= hi{i})"
        else:
            test = f"(type(v{i}) is str and v{i} in c{i})"
        tests.append(test)
    values = ", ".join(f"v{i}" for i in range(len(specs)))
    source = (
        "def read(raw):\n"
        "    if type(raw) is not dict:\n"
        "        return slowly(raw)\n"
        "    try:\n"
        + "".join(f"        {line}\n" for line in reads)
        + "    except KeyError:\n"
        "        return slowly(raw)\n"
        f"    if {' and '.join(tests)}:\n"
        f"        return ({values},)\n"
        "    return slowly(raw)\n"
    )
    exec(source, names)
    return names["read"]


def check_seat(seat: int, seats: int) -> None:
    # A negative seat would silently index from the end of the per-seat lists.
    if not 0 <= seat < seats:
        raise ValueError(f"seat {seat} out of range for {seats} seats")


def check_seat_count(settings: GameSettings, seats: int) -> None:
    if not settings.min_players <= seats <= settings.max_players:
        raise ValueError(f"{settings.slug} needs {settings.min_players}..{settings.max_players} players, got {seats}")


def rank_result(
    scores: Sequence[int],
    removed: Sequence[bool],
    reason: str,
    *,
    keys: Sequence[Any] | None = None,
    settings: GameSettings | None = None,
) -> MatchResult:
    """Competition ranking (ties share a place, the next place is skipped); removed seats share last place.

    Seats are ranked by `keys` (one comparable value per seat, higher is better: a number or a tuple such as
    (alive, survived_ticks)) when given, else by score; the scores are reported as they are either way. `reason` must
    be a generic END_REASONS one or, with `settings`, one of the game's own end_reasons."""
    allowed = settings.all_end_reasons if settings is not None else END_REASONS
    if reason not in allowed:
        raise ValueError(f"reason must be one of {allowed}, got {reason!r}")
    ranks = scores if keys is None else keys
    if len(ranks) != len(scores):
        raise ValueError("one ranking key per seat")
    order = [(0, 0) if gone else (1, key) for key, gone in zip(ranks, removed, strict=True)]
    placings = [1 + sum(other > mine for other in order) for mine in order]
    winners = [seat for seat, place in enumerate(placings) if place == 1]
    return MatchResult(placings=placings, scores=list(scores), winner_seats=winners, reason=reason)


def refused(seat: int, code: str, message: str) -> dict[str, Any]:
    """The event a step reports for an input the rules ignored because of the state (not its shape), e.g. an input out
    of turn: {"type": "input_refused", "seat", "code", "message"}. parse_input cannot see the state, so such errors
    reach the client as an event of the next snapshot rather than as an `error` message."""
    return {"type": "input_refused", "seat": seat, "code": code, "message": message}


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
