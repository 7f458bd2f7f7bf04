"""The load tool's bots pace their inputs by the snapshots' `waiting` count, as the browser client does (bench/wsbot.py,
PACE_AFTER_TICKS): what a snapshot says of the bot's seat, in each protocol, moves its next input by half a tick."""

from __future__ import annotations

import msgpack
import orjson

from bench.wsbot import DRY_PAUSE_TICKS, PACE_AFTER_TICKS, TICK_PERIOD, Bot, Window
from games.engine import delta


def bot(*, version=1, binary=False, pace=True):
    made = Bot(host="127.0.0.1:1", path="/", token="t", binary=binary, window=Window(0.0, 0.0), fire=False,
               rng=__import__("random").Random(1), version=version, pace=pace)
    made.seat = 1
    return made


def v1_json(waiting):
    message = {"type": "snapshot", "tick": 1, "acks": [0, 0]}
    if waiting is not None:
        message["waiting"] = waiting
    return orjson.dumps(message)


async def test_a_surplus_waiting_tick_after_tick_moves_the_next_input_half_a_tick_later():
    paced = bot()
    for _ in range(PACE_AFTER_TICKS - 1):
        paced.on_message(v1_json([0, 2]))
    assert paced.shift == 0.0
    paced.on_message(v1_json([0, 2]))
    assert paced.shift == TICK_PERIOD / 2 and paced.stats.pace_shifts == 1


async def test_one_tick_without_a_surplus_starts_the_count_again_and_a_dry_tick_moves_it_earlier():
    paced = bot()
    for _ in range(PACE_AFTER_TICKS - 1):
        paced.on_message(v1_json([0, 3]))
    paced.on_message(v1_json(None))  # all 0: the key is left out
    for _ in range(PACE_AFTER_TICKS - 1):
        paced.on_message(v1_json([0, 2]))
    assert paced.shift == 0.0
    paced.on_message(v1_json([0, -1]))  # ran dry: earlier at once
    assert paced.shift == -TICK_PERIOD / 2 and paced.stats.pace_shifts == 1
    paced.shift = 0.0  # (as sending the next input does)
    for _ in range(DRY_PAUSE_TICKS - 1):  # not again before DRY_PAUSE_TICKS
        paced.on_message(v1_json([0, -1]))
    assert paced.shift == 0.0
    paced.on_message(v1_json([0, -1]))
    assert paced.shift == -TICK_PERIOD / 2


async def test_no_pace_leaves_the_timer_alone():
    steady = bot(pace=False)
    for _ in range(3 * PACE_AFTER_TICKS):
        steady.on_message(v1_json([0, 4]))
    assert steady.shift == 0.0 and steady.stats.pace_shifts == 0


async def test_v2_bots_follow_waiting_through_keyframes_and_deltas():
    paced = bot(version=2, binary=True)
    body = {"type": "snapshot", "tick": 1, "acks": [0, 0], "waiting": [0, 2], "n": 1}
    keys = ["tick", "acks", "waiting"]
    paced.on_message(msgpack.packb({**body, "keys": keys}))
    assert paced.waiting == [0, 2]
    numbers = {key: number for number, key in enumerate(keys)}
    previous = {"tick": 1, "acks": [0, 0], "waiting": [0, 2]}
    for n in range(2, PACE_AFTER_TICKS + 1):
        current = {"tick": n, "acks": [0, 0], "waiting": [0, 2 + n % 2]}
        paced.on_message(msgpack.packb([n, delta.diff(previous, current, numbers)]))
        previous = current
    assert paced.waiting == [0, 2 + PACE_AFTER_TICKS % 2] and paced.shift == TICK_PERIOD / 2
    gone = {"tick": 99, "acks": [0, 0]}  # nobody waiting: the key is deleted
    paced.on_message(msgpack.packb([PACE_AFTER_TICKS + 1, delta.diff(previous, gone, numbers)]))
    assert paced.waiting is None
