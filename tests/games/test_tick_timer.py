"""The tick loops' timer (games/engine/runner.py, Metronome): matches due within one grid step share one timer, each
waits on a future of its own, and none wakes before its due time."""

from __future__ import annotations

import asyncio

import pytest

from games.engine import runner
from games.engine.runner import TICK_GRID_SECONDS, Metronome


async def test_waits_due_in_the_same_grid_step_share_one_timer_and_none_wakes_early():
    loop = asyncio.get_running_loop()
    metronome = Metronome(loop)
    timers = []
    real_call_at = loop.call_at
    loop.call_at = lambda when, callback, *args: timers.append(when) or real_call_at(when, callback, *args)
    try:
        start = loop.time()
        # Ten waits due within a fraction of a grid step of each other (as ten matches' ticks may be), and one later.
        delays = [0.0201 + i * TICK_GRID_SECONDS / 40 for i in range(10)] + [0.05]
        futures = [metronome.wait(delay) for delay in delays]
        assert len(timers) <= 3  # one per grid step the waits fall in, not one per wait
        woke = []
        for future, delay in zip(futures, delays, strict=True):
            await future
            woke.append((loop.time() - start, delay))
    finally:
        loop.call_at = real_call_at
    for at, delay in woke:
        assert at >= delay - 0.0011  # (the loop's clock counts whole milliseconds)
        assert at < delay + TICK_GRID_SECONDS + 0.05  # (a busy test machine may run late; never a period early)
    assert not metronome.steps  # nothing kept once rung


async def test_cancelling_one_wait_leaves_the_others_sharing_its_timer():
    metronome = Metronome(asyncio.get_running_loop())
    first, second = metronome.wait(0.01), metronome.wait(0.01)
    waiter = asyncio.ensure_future(first)
    await asyncio.sleep(0)
    waiter.cancel()  # a match's task cancelled while it waits for its next tick
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(second, 1.0)  # the other match still wakes
    assert first.cancelled() and second.done() and not second.cancelled()


async def test_a_tick_already_due_waits_only_for_what_the_loop_has_ready():
    metronome = Metronome(asyncio.get_running_loop())
    future = metronome.wait(-0.5)  # late: the loop catches up
    assert not future.done()  # (it lets the loop run what is ready first, as call_later(0) did)
    await asyncio.wait_for(future, 0.5)


async def test_each_event_loop_has_its_own_metronome():
    first = runner.tick_timer(0.001)
    await first
    assert runner._metronomes[asyncio.get_running_loop()].loop is asyncio.get_running_loop()
