"""The contract checks (tests/games/contract.py) must be able to fail: each broken variant of pong here breaks one
promise and one check must catch it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from games.rules import pong
from games.rules.base import InputError, MatchResult
from tests.games import contract


class ForgetsHeldInputs(pong.PongGame):
    def from_checkpoint(self, data):
        state = super().from_checkpoint(data)
        state.moves = [0.0, 0.0]
        return state


class ClampsInsteadOfRefusing(pong.PongGame):
    def parse_input(self, raw):
        raw = dict(raw) if isinstance(raw, dict) else raw
        if isinstance(raw, dict) and isinstance(raw.get("dy"), float) and abs(raw["dy"]) > 1.0:
            raw["dy"] = max(-1.0, min(1.0, raw["dy"]))
        return super().parse_input(raw)


class CrashesOnJunk(pong.PongGame):
    def parse_input(self, raw):
        if isinstance(raw, dict) and isinstance(raw.get("dy"), list):
            return pong.PongInput(dy=float(raw["dy"][0]))  # IndexError on [], and floats nothing checked
        return super().parse_input(raw)


class UndeclaredReason(pong.PongGame):
    def result(self, state):
        return replace(super().result(state), reason="ragequit")


class NotDeterministic(pong.PongGame):
    """Keeps state of its own outside the match state (the same mistake as reading the global random): its replay
    does not do what its play did. (A paddle moved at random, as this was before, went unseen once in a hundred runs:
    when it happened to be where the paddle already was.)"""

    def __init__(self):
        super().__init__()
        self.steps_ever = 0

    def step(self, state, dt):
        self.steps_ever += 1
        if self.steps_ever == 3:  # in the match played, not in its replay
            state.scores[0] += 1
        return super().step(state, dt)


class NanInSnapshot(pong.PongGame):
    def snapshot(self, state):
        snap = super().snapshot(state)
        snap["speed"] = float("nan")
        return snap


class ClockRoundsDown(pong.PongGame):
    def snapshot(self, state):
        snap = super().snapshot(state)
        snap["time_left"] = (self.settings.match_ticks - state.tick) // self.settings.tick_rate
        return snap


class NeverEnds(pong.PongGame):
    def is_finished(self, state):
        return False

    def step(self, state, dt):
        state.finished = False
        state.scores[:] = [0, 0]
        return []


class WrongCode(pong.PongGame):
    def parse_input(self, raw):
        try:
            return super().parse_input(raw)
        except InputError as exc:
            raise InputError("bad", str(exc)) from None


class ScoresAsFloats(pong.PongGame):
    def result(self, state):
        result = super().result(state)
        return MatchResult(result.placings, [float(s) for s in result.scores], result.winner_seats, result.reason)


class IgnoresForfeit(pong.PongGame):
    def remove_player(self, state, seat):
        state.removed[seat] = True


def test_the_unbroken_game_passes():
    contract.check_all(pong.PongGame())


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (ForgetsHeldInputs, lambda g: contract.check_checkpoint_round_trip(g, 2)),
        (ClampsInsteadOfRefusing, contract.check_bad_inputs),
        (CrashesOnJunk, contract.check_bad_inputs),
        (WrongCode, contract.check_bad_inputs),
        (UndeclaredReason, lambda g: contract.check_full_match_and_replay(g, 2, 1)),
        (ScoresAsFloats, lambda g: contract.check_full_match_and_replay(g, 2, 1)),
        (NotDeterministic, lambda g: contract.check_full_match_and_replay(g, 2, 1)),
        (NanInSnapshot, lambda g: contract.check_snapshots(g, 2)),
        (ClockRoundsDown, lambda g: contract.check_snapshots(g, 2)),
        (NeverEnds, lambda g: contract.check_full_match_and_replay(g, 2, 1)),
        (IgnoresForfeit, contract.check_removals),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_a_broken_game_fails_the_contract(broken, check):
    with pytest.raises((AssertionError, ValueError, IndexError)):
        check(broken())

