"""Fair disconnects in 1-v-1 games (settings.pause_on_disconnect, on for pong): play pauses while a player is away
within the grace period, resumes with a countdown when they are back, still forfeits past the grace period, and a
successor replaying the journal pauses and resumes exactly as the owner did. Driven tick by tick, without a database."""

from __future__ import annotations

import copy
import time
from dataclasses import replace

from games.engine.host import MatchHost
from games.engine.journal import TickRecord, decode_record
from games.engine.runner import PAUSE_AFTER_SECONDS, MatchRunner
from games.engine.store import Checkpoint, MemoryStore
from games.rules import GAMES
from games.rules.arena import GAME as ARENA
from games.rules.arena import ArenaGame
from tests.games.test_input_buffer import running, send

GRACE = 15.0  # pong's reconnect_grace_seconds
COUNTDOWN_TICKS = 90  # pong: 3 s at 30 Hz


def drop(runner: MatchRunner, seat: int) -> float:
    """The seat's socket closes; returns when, on the runner's clock."""
    runner.seat_presence(seat, local_delta=-1)
    return runner.disconnected_since[seat]


def step(runner: MatchRunner, now: float, journal: list[bytes] | None = None) -> dict:
    message = runner.run_one_step(now).message
    if journal is not None and runner.tick_record is not None:
        journal.append(runner.tick_record.encode())
    return message


def ball(runner: MatchRunner) -> tuple[float, float]:
    return runner.state.ball_x, runner.state.ball_y


def test_pong_pauses_while_a_player_is_away_and_resumes_with_a_countdown_when_they_are_back():
    runner = running("pong")
    t = time.monotonic()
    for _ in range(20):  # the ball is on its way (the first point comes after about 40 ticks)
        step(runner, t)
    left = drop(runner, 1)
    # A blip is not a pause: play goes on for the first PAUSE_AFTER_SECONDS.
    ticks = runner.steps
    assert step(runner, left + PAUSE_AFTER_SECONDS / 2)["phase"] == "running" and runner.steps == ticks + 1

    message = step(runner, left + PAUSE_AFTER_SECONDS + 0.01)
    assert message["phase"] == "paused"
    assert message["away"] == [None, round(GRACE - PAUSE_AFTER_SECONDS - 0.01, 1)]
    frozen, tick = ball(runner), runner.steps
    send(runner, 0, 1, {"dy": 1.0})  # the player still here cannot play meanwhile
    for seconds in (2, 5, 10):
        message = step(runner, left + seconds)
        assert message["phase"] == "paused" and message["away"][1] == GRACE - seconds
    assert ball(runner) == frozen and runner.steps == tick and message["acks"] == [0, 0]

    runner.seat_presence(1, local_delta=1)
    message = step(runner, left + 11)
    assert message["phase"] == "countdown" and message["countdown"] == 3.0 and "away" not in message
    for _ in range(COUNTDOWN_TICKS - 1):
        assert step(runner, left + 11)["phase"] == "countdown"
    assert ball(runner) == frozen
    assert step(runner, left + 11)["phase"] == "running"
    step(runner, left + 11)
    assert ball(runner) != frozen and runner.steps == tick + 1 and runner.state.tick == tick + 1


def test_a_player_away_past_the_grace_period_still_loses_by_forfeit():
    runner = running("pong")
    left = drop(runner, 0)
    assert step(runner, left + 2)["phase"] == "paused"
    message = step(runner, left + GRACE + 0.1)
    assert message["phase"] == "finished" and message["removed"] == [True, False]
    assert runner.game.result(runner.state).reason == "forfeit"


def test_a_successor_replaying_the_journal_pauses_and_resumes_as_the_owner_did():
    owner = running("pong", seed=3)
    start = copy.deepcopy(owner.renewal().checkpoint)
    journal: list[bytes] = []
    t = time.monotonic()
    for _ in range(40):
        step(owner, t, journal)
    left = drop(owner, 1)
    for seconds in (0.5, 1.5, 3):
        step(owner, left + seconds, journal)
    paused = (owner.phase, owner.steps, ball(owner))
    owner.seat_presence(1, local_delta=1)
    for _ in range(10):
        step(owner, left + 4, journal)
    assert paused[0] == "paused" and owner.phase == "countdown"
    assert [decode_record(raw)[4] for raw in journal].count("pause") == 1
    assert [decode_record(raw)[4] for raw in journal].count("resume") == 1

    host = MatchHost(store=MemoryStore(), relay=None, handover_on_sigterm=False)
    successor = MatchRunner(host, owner.info, Checkpoint(data=start, log=[], journal=journal))
    assert (successor.phase, successor.steps, successor.countdown_left) == (owner.phase, owner.steps, owner.countdown_left)
    assert ball(successor) == ball(owner)


def test_a_takeover_does_not_pause_for_players_still_reconnecting_but_a_later_drop_does():
    owner = running("pong")
    host = MatchHost(store=MemoryStore(), relay=None, handover_on_sigterm=False)
    successor = MatchRunner(host, owner.info, Checkpoint(data=copy.deepcopy(owner.renewal().checkpoint), log=[]))
    t = time.monotonic()
    assert step(successor, t + 5)["phase"] == "running"  # nobody is back yet: the dead owner's fault, not theirs
    successor.seat_presence(0, local_delta=1)
    successor.seat_presence(1, local_delta=1)
    left = drop(successor, 1)
    assert step(successor, left + 2)["phase"] == "paused"


def test_only_1v1_matches_of_games_that_pause_do(monkeypatch):
    left = drop(runner := running("arena", 2), 1)
    assert step(runner, left + 5)["phase"] == "running"  # arena does not pause
    pausing = ArenaGame(replace(ARENA.settings, slug="arena-pausing", pause_on_disconnect=True))
    monkeypatch.setitem(GAMES, "arena-pausing", pausing)
    for seats, phase in ((2, "paused"), (3, "running")):  # three or more go on without the absent player
        left = drop(runner := running("arena-pausing", seats), 1)
        assert step(runner, left + 5)["phase"] == phase, seats


def test_records_without_a_pause_keep_their_old_form():
    assert TickRecord(n=4, removals=[1]).encode() == b"[4,null,[],[1]]"
    assert decode_record(b"[4,null,[],[1]]") == (4, None, [], [1], None)
    assert decode_record(TickRecord(n=5, pause="resume").encode()) == (5, None, [], [], "resume")
