"""Each seat's inputs are applied one per tick, in seq order, and the ack names the input a tick applied
(docs/protocol.md, "Inputs and ticks"). Runners here are driven tick by tick through run_one_step, from a running
checkpoint, without a database."""

from __future__ import annotations

import time

from games.engine.host import MatchHost
from games.engine.journal import decode_record
from games.engine.runner import MatchRunner, input_buffer_max
from games.engine.store import Checkpoint, MemoryStore, export_log
from games.rules import get_game
from games.rules.base import play
from games.selectors import MatchInfo, PlayerInfo


def running(game: str, seats: int = 2, *, seed: int = 7) -> MatchRunner:
    """A runner of a match in play (as a successor resumes one), every seat connected."""
    rules = get_game(game)
    info = MatchInfo(
        match_id=1,
        game=game,
        seed=seed,
        status="running",
        players=tuple(PlayerInfo(seat, seat + 1, f"p{seat}") for seat in range(seats)),
        join_deadline=time.time() + 60,
    )
    data = {
        "state": rules.to_checkpoint(rules.initial_state(seats, seed=seed)),
        "phase": "running",
        "countdown_left": 0,
        "steps": 0,
        "acks": [0] * seats,
        "removed": [False] * seats,
        "started_wall": time.time(),
        "connected": [True] * seats,
        "jn": 0,
    }
    host = MatchHost(store=MemoryStore(), relay=None, handover_on_sigterm=False)
    runner = MatchRunner(host, info, Checkpoint(data=data, log=[]))
    for seat in range(seats):
        runner.seat_presence(seat, local_delta=1)
    return runner


def send(runner: MatchRunner, seat: int, seq: int, raw: dict) -> None:
    assert runner.queue_input(seat, seq, runner.game.parse_input(raw), raw)


def tick(runner: MatchRunner) -> dict:
    frame = runner.run_one_step(time.monotonic())
    return frame.message


def test_inputs_that_arrive_together_are_applied_one_per_tick_and_each_tick_acks_the_one_it_applied():
    runner = running("pong")
    for seq in (1, 2, 3):
        send(runner, 0, seq, {"dy": 1.0})
    start = runner.state.paddles[0]
    step = 400.0 / 30
    seen = []
    for _ in range(4):
        message = tick(runner)
        seen.append((message["acks"][0], message.get("waiting"), runner.state.paddles[0] - start))
    # Three inputs, three ticks of movement acknowledged one by one; the fourth tick repeats the held input and
    # says so (minus one tick owed to the seat's next input).
    assert [(ack, waiting) for ack, waiting, _ in seen] == [(1, [3, 0]), (2, [2, 0]), (3, [1, 0]), (3, [-1, 0])]
    assert [round(moved / step, 6) for _, _, moved in seen] == [1, 2, 3, 4]


def test_a_tick_with_no_input_waiting_repeats_the_last_one_and_keeps_the_ack():
    runner = running("arena")
    send(runner, 1, 1, {"dx": 1.0, "dy": 0.0})
    tick(runner)
    x = runner.state.players[1].x
    message = tick(runner)
    assert message["acks"] == [0, 1] and message["waiting"] == [0, -1]
    assert runner.state.players[1].x == x + 200.0 / 20


def test_a_late_input_the_same_as_the_repeated_one_counts_as_applied_by_the_repeat():
    runner = running("pong")
    step = 400.0 / 30
    start = runner.state.paddles[0]
    send(runner, 0, 1, {"dy": 1.0})
    tick(runner)
    tick(runner)  # input 2 is late: the held input moves the paddle anyway
    send(runner, 0, 2, {"dy": 1.0})
    send(runner, 0, 3, {"dy": 1.0})
    message = tick(runner)
    # Three inputs, three ticks of movement, all acknowledged: the repeat was input 2, the tick applied 3.
    assert message["acks"][0] == 3 and message["waiting"] == [2, 0]
    assert [seq for _, seq, _ in runner.tick_record.inputs] == [2, 3]
    assert round((runner.state.paddles[0] - start) / step, 6) == 3


def test_a_late_input_that_differs_from_the_repeated_one_is_applied_in_a_tick_of_its_own():
    runner = running("pong")
    step = 400.0 / 30
    start = runner.state.paddles[0]
    send(runner, 0, 1, {"dy": 1.0})
    tick(runner)
    tick(runner)
    send(runner, 0, 2, {"dy": 0.0})  # the release came late: the repeat moved the paddle once more
    send(runner, 0, 3, {"dy": 0.0})
    message = tick(runner)
    assert message["acks"][0] == 2 and message["waiting"] == [2, 0]
    assert round((runner.state.paddles[0] - start) / step, 6) == 2


def test_inputs_apply_in_seq_order_across_seats_and_the_journal_record_lists_exactly_what_was_applied():
    runner = running("pong")
    send(runner, 0, 5, {"dy": 1.0})
    send(runner, 1, 9, {"dy": -1.0})
    send(runner, 0, 6, {"dy": -0.5})
    tick(runner)
    assert runner.tick_record.inputs == [(0, 5, '{"dy":1.0}'), (1, 9, '{"dy":-1.0}')]
    tick(runner)
    assert runner.tick_record.inputs == [(0, 6, '{"dy":-0.5}')]
    assert not runner.queue_input(0, 6, runner.game.parse_input({"dy": 0.0}), {"dy": 0.0})  # repeated seq: ignored


def test_an_overflowing_buffer_catches_up_without_dropping_an_input():
    runner = running("pong")
    total = runner.buffer_max + 5
    for seq in range(1, total + 1):
        send(runner, 0, seq, {"dy": 1.0 if seq % 2 else -1.0})
    message = tick(runner)
    # The surplus over the bound goes in this tick, in order: the buffer is back under its bound at once.
    assert message["acks"][0] == total - runner.buffer_max + 1 and message["waiting"] == [total, 0]
    applied = [seq for _, seq, _ in runner.tick_record.inputs]
    while message["acks"][0] < total:
        message = tick(runner)
        applied += [seq for _, seq, _ in runner.tick_record.inputs]
    assert applied == list(range(1, total + 1))
    assert len(runner.log) == total


def test_a_shot_pressed_and_released_within_one_catch_up_tick_is_not_lost():
    runner = running("arena")
    for seq in range(1, runner.buffer_max + 1):  # a full buffer: the next tick applies the first two together
        send(runner, 0, seq, {"dx": 0.0, "dy": 0.0, "fire": seq == 1, "aim": 0.0})
    send(runner, 0, runner.buffer_max + 1, {"dx": 0.0, "dy": 0.0})
    tick(runner)
    assert [seq for _, seq, _ in runner.tick_record.inputs] == [1, 2]
    assert [b.owner for b in runner.state.bullets] == [0]


def test_the_stored_log_replays_to_the_state_the_ticks_reached():
    runner = running("arena", 3)
    seqs = [0, 0, 0]
    for t in range(40):
        for seat in range(3):
            for _ in range((t + seat) % 3):  # bursts and gaps
                seqs[seat] += 1
                send(runner, seat, seqs[seat], {"dx": (t % 5 - 2) / 2, "dy": (seat - 1) / 1, "fire": t % 4 == 0})
        tick(runner)
        assert [seq for _, seq, _ in decode_record(runner.tick_record.encode())[2]] == [
            seq for _, seq, _ in runner.tick_record.inputs
        ]
    inputs: dict[int, list] = {}
    for step, seat, raw in export_log(runner.log):
        inputs.setdefault(step, []).append((seat, raw))
    replayed = play(runner.game, 3, 7, inputs, max_ticks=runner.steps)
    assert runner.game.snapshot(replayed) == runner.game.snapshot(runner.state)


def test_the_buffer_bounds_latency_in_time_not_in_inputs():
    """Every input waiting is a tick of latency: the bound is about 200 ms of play, and at least 3 inputs."""
    assert (input_buffer_max(20), input_buffer_max(30), input_buffer_max(5), input_buffer_max(60)) == (4, 6, 3, 12)
    assert running("arena").buffer_max == 4 and running("pong").buffer_max == 6


def test_the_snapshots_connected_is_each_seats_presence_here_or_elsewhere():
    """"connected" is read from local_here while no other process says a seat is there: it must still be what
    is_connected says, seat by seat, as sockets come and go here and other processes' presence comes and expires."""
    runner = running("arena", seats=3)
    now = time.monotonic()

    def check(at):
        assert runner.snapshot_message(at, take_events=False)["connected"] == [
            runner.is_connected(seat, at) for seat in range(3)
        ]

    check(now)
    runner.seat_presence(1, local_delta=-1)  # seat 1's socket here goes
    check(now)
    runner.seat_presence(1, remote_until=now + 5.0)  # another process says seat 1 is there for 5 s
    check(now)
    assert runner.snapshot_message(now, take_events=False)["connected"][1] is True
    check(now + 6.0)  # ...and stops saying so
    assert runner.snapshot_message(now + 6.0, take_events=False)["connected"][1] is False
    runner.seat_presence(2, remote_until=now + 1.0)
    runner.seat_presence(2, remote_until=0.0)  # gone from there at once
    check(now)
    runner.seat_presence(1, local_delta=1)
    check(now + 10.0)
    assert runner.snapshot_message(now + 10.0, take_events=False)["connected"] == [True, True, True]
