"""The contract every game keeps, as plain functions over a game object, driven by what the game declares (its
settings, `examples` and optional `legal_inputs`). tests/games/test_rules_registry.py runs them against every
discovered game; a scaffolded game's own test file runs them too (games/scaffold/). No Django, no database."""

from __future__ import annotations

import json
import math
import random
import re
from typing import Any

import msgpack

from games.engine.protocol import encode_msgpack, encode_msgpack_single_floats
from games.rules.base import INPUT_ERROR_CODES, Game, InputError, MatchResult, replay_log

SNAKE = re.compile(r"[a-z][a-z0-9_]{0,39}")
SLUG = re.compile(r"[a-z][a-z0-9_-]{0,39}")
# Raw inputs no game may accept as they are, nor crash on: each must raise InputError.
NOT_OBJECTS = (None, True, 3, 2.5, "input", [], [1, 2], b"\x00")
# Values tried in every declared input field (and in the example inputs' keys) for the no-crash check.
JUNK = (None, True, False, 0, -1, 10**30, -(10**30), 0.5, -1e308, float("nan"), float("inf"), "", "x", [], [0.0], {})


def legal(game: Game, state: Any, seat: int) -> list[Any]:
    legal_inputs = getattr(game, "legal_inputs", None)
    if legal_inputs is not None:
        return list(legal_inputs(state, seat))
    return list(game.examples.valid)


class Match:
    """A match driven like the engine drives one: per tick, inputs (random legal ones) then removals, then a step;
    the log is kept in the stored format [[step, seat, raw or None], ...]."""

    def __init__(self, game: Game, seats: int, seed: int, *, chance: float = 0.6):
        self.game, self.seats, self.seed = game, seats, seed
        self.state = game.initial_state(seats, seed=seed)
        self.rng = random.Random(seed)
        self.chance = chance
        self.log: list[list[Any]] = []
        self.steps = 0
        self.events: list[dict] = []
        self.removed: set[int] = set()

    def choose(self) -> list[tuple[int, Any]]:
        picks = []
        for seat in range(self.seats):
            options = [] if seat in self.removed else legal(self.game, self.state, seat)
            if options and self.rng.random() < self.chance:
                picks.append((seat, self.rng.choice(options)))
        return picks

    def tick(self, picks: list[tuple[int, Any]] | None = None, removals: tuple[int, ...] = ()) -> list[dict]:
        game = self.game
        for seat, raw in self.choose() if picks is None else picks:
            raw = json.loads(json.dumps(raw))  # what reaches the server is JSON
            game.apply_input(self.state, seat, game.parse_input(raw))
            self.log.append([self.steps, seat, raw])
        for seat in removals:
            game.remove_player(self.state, seat)
            self.removed.add(seat)
            self.log.append([self.steps, seat, None])
        if game.is_finished(self.state):
            return []
        events = game.step(self.state, game.settings.dt)
        self.steps += 1
        self.events.extend(events)
        return events


def check_settings(game: Game) -> None:
    settings = game.settings
    assert SLUG.fullmatch(settings.slug), f"slug {settings.slug!r}: lower case, digits, - and _"
    assert settings.name
    assert game.examples.valid, "declare at least one valid example input"
    assert all(SNAKE.fullmatch(reason) for reason in settings.all_end_reasons)
    if settings.input_fields:
        assert len(set(settings.input_fields)) == len(settings.input_fields)


def check_snapshot(game: Game, snap: dict) -> None:
    assert isinstance(snap, dict)
    assert json.loads(json.dumps(snap, allow_nan=False)) == snap, "snapshots are JSON with string keys"
    assert msgpack.unpackb(encode_msgpack(snap), raw=False, strict_map_key=True) == snap
    # Protocol v2 sends snapshots with 32-bit floats: the shape survives, the values to ~7 digits.
    assert json.dumps(msgpack.unpackb(encode_msgpack_single_floats(snap), raw=False), allow_nan=False)
    left = snap["time_left"]
    assert type(left) is int and left >= 0, "time_left is whole seconds"
    if game.settings.turn_seconds is not None:
        assert "turn" in snap and (snap["turn"] is None or type(snap["turn"]) is int)


def check_snapshots(game: Game, seats: int, seed: int = 123, ticks: int = 60) -> None:
    match = Match(game, seats, seed)
    check_snapshot(game, game.snapshot(match.state))
    for _ in range(ticks):
        for event in match.tick():
            assert isinstance(event["type"], str)
            assert json.loads(json.dumps(event, allow_nan=False)) == event
        snap = game.snapshot(match.state)
        check_snapshot(game, snap)
        if game.is_finished(match.state):
            break
        # The clock a player reads: whole seconds of the time limit left, rounded up.
        settings = game.settings
        assert snap["time_left"] == math.ceil((settings.match_ticks - match.steps) / settings.tick_rate)
    json.dumps(game.to_checkpoint(match.state), allow_nan=False)


def check_checkpoint_round_trip(game: Game, seats: int, seed: int = 77, before: int = 40, after: int = 80) -> None:
    """A state restored from its checkpoint (through JSON) mid-match plays on exactly like the original, given the
    same inputs: what a checkpoint leaves out shows up as a different future."""
    match = Match(game, seats, seed)
    for _ in range(before):
        match.tick()
    if game.is_finished(match.state):
        return
    restored = game.from_checkpoint(json.loads(json.dumps(game.to_checkpoint(match.state), allow_nan=False)))
    assert game.to_checkpoint(restored) == game.to_checkpoint(match.state)
    assert game.snapshot(restored) == game.snapshot(match.state)
    for tick in range(after):
        picks = match.choose() if tick % 3 else []  # held inputs must carry on from the checkpoint alone too
        for seat, raw in picks:
            game.apply_input(restored, seat, game.parse_input(raw))
        expected = match.tick(picks)
        got = [] if game.is_finished(restored) else game.step(restored, game.settings.dt)
        assert got == expected
        assert game.snapshot(restored) == game.snapshot(match.state)
    assert game.to_checkpoint(restored) == game.to_checkpoint(match.state)


def check_result(game: Game, state: Any, seats: int) -> MatchResult:
    result = game.result(state)
    assert isinstance(result, MatchResult)
    assert len(result.placings) == len(result.scores) == seats
    assert all(type(score) is int for score in result.scores), "scores are stored as integers"
    assert all(1 <= place <= seats for place in result.placings)
    assert result.winner_seats == [seat for seat, place in enumerate(result.placings) if place == 1]
    assert result.winner_seats, "somebody is placed first"
    assert result.reason in game.settings.all_end_reasons, f"undeclared end reason {result.reason!r}"
    return result


def play_to_the_end(game: Game, seats: int, seed: int) -> Match:
    """Random legal inputs until the game's own end condition; it must come within the time limit (plus slack for
    a game that counts its clock from the first move)."""
    match = Match(game, seats, seed)
    limit = game.settings.match_ticks * 2 + 100
    while not game.is_finished(match.state):
        assert match.steps < limit, f"no end after {limit} ticks"
        match.tick()
    return match


def check_full_match_and_replay(game: Game, seats: int, seed: int) -> MatchResult:
    match = play_to_the_end(game, seats, seed)
    result = check_result(game, match.state, seats)
    # The stored log replayed from the seed reaches the same result at the same tick, as `manage.py replay --verify`.
    log = json.loads(json.dumps(match.log))
    replayed, ticks = replay_log(game, seats, seed, log, match.steps)
    assert ticks == match.steps
    assert game.is_finished(replayed)
    assert game.result(replayed) == result
    assert game.to_checkpoint(replayed) == game.to_checkpoint(match.state)
    return result


def check_removals(game: Game, seed: int = 9) -> None:
    """The abandon rule the settings declare: "forfeit" ends at once with the leaver last; "continue" goes on until one
    active player is left (last_player_standing). Input from a removed seat changes nothing."""
    settings = game.settings
    seats = max(2, settings.min_players)
    if seats > settings.max_players:
        return
    match = Match(game, seats, seed)
    for _ in range(5):
        match.tick()
    if game.is_finished(match.state):
        return
    match.tick(removals=(0,))
    before = game.to_checkpoint(match.state)
    game.apply_input(match.state, 0, game.parse_input(game.examples.valid[0]))
    assert game.to_checkpoint(match.state) == before, "input from a removed seat changed the state"
    if settings.abandon_rule == "forfeit":
        assert game.is_finished(match.state)
        result = check_result(game, match.state, seats)
        assert result.reason == "forfeit" and result.placings[0] == max(result.placings)
        return
    for seat in range(1, seats - 1):
        match.tick(removals=(seat,))
    assert game.is_finished(match.state)
    result = check_result(game, match.state, seats)
    assert result.reason == "last_player_standing" and result.winner_seats == [seats - 1]


def check_bad_inputs(game: Game, seed: int = 3) -> None:
    for raw, code in game.examples.invalid:
        try:
            game.parse_input(raw)
        except InputError as exc:
            assert exc.code == code, f"{raw!r}: {exc.code}, declared {code}"
            assert SNAKE.fullmatch(exc.code) and str(exc)
        else:
            raise AssertionError(f"{raw!r} was accepted; declared {code}")
    for raw in NOT_OBJECTS:
        try:
            game.parse_input(raw)
        except InputError as exc:
            assert exc.code == "wrong_type", f"{raw!r}: {exc.code}"
        else:
            raise AssertionError(f"{raw!r} was accepted as an input")
    # Junk in every field: parsed or refused with an InputError, never another exception.
    rng = random.Random(seed)
    keys = set(game.settings.input_fields)
    for example in game.examples.valid:
        if isinstance(example, dict):
            keys.update(example)
    state = game.initial_state(game.settings.min_players, seed=seed)
    for key in sorted(keys):
        for junk in JUNK:
            base = dict(rng.choice(game.examples.valid)) if isinstance(game.examples.valid[0], dict) else {}
            base[key] = junk
            try:
                parsed = game.parse_input(base)
            except InputError as exc:
                assert SNAKE.fullmatch(exc.code)
                continue
            game.apply_input(state, 0, parsed)
            game.step(state, game.settings.dt)
            assert all(not isinstance(v, float) or math.isfinite(v) for v in _floats(game.snapshot(state)))


def _floats(value: Any):
    if isinstance(value, dict):
        for item in value.values():
            yield from _floats(item)
    elif isinstance(value, list):
        for item in value:
            yield from _floats(item)
    else:
        yield value


def check_turns(game: Game, seed: int = 11) -> None:
    """Turn-based games: whose turn is in the snapshot, and a well-formed input out of turn is ignored with an
    input_refused event carrying not_your_turn."""
    if game.settings.turn_seconds is None or not hasattr(game, "legal_inputs"):
        return
    assert "not_your_turn" in INPUT_ERROR_CODES
    seats = game.settings.min_players
    state = game.initial_state(seats, seed=seed)
    turn = game.snapshot(state)["turn"]
    assert turn is not None and legal(game, state, turn)
    waiting = [seat for seat in range(seats) if not legal(game, state, seat)]
    assert waiting, "somebody must be waiting for their turn"
    seat = waiting[0]
    game.apply_input(state, seat, game.parse_input(game.examples.valid[0]))
    events = game.step(state, game.settings.dt)
    assert {"type": "input_refused", "seat": seat, "code": "not_your_turn"}.items() <= next(
        (e for e in events if e["type"] == "input_refused"), {}
    ).items()
    assert game.snapshot(state)["turn"] == turn, "an input out of turn must not pass the turn"


def check_all(game: Game) -> None:
    """Every check, as a scaffolded game's test runs them."""
    check_settings(game)
    for seats in sorted({game.settings.min_players, game.settings.max_players}):
        check_snapshots(game, seats)
        check_checkpoint_round_trip(game, seats)
        check_full_match_and_replay(game, seats, seed=seats)
    check_removals(game)
    check_bad_inputs(game)
    check_turns(game)
