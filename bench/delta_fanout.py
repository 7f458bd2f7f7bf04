"""Server CPU of the local fan-out per match-tick, protocol v1 (one full snapshot frame) against v2 (the stream's
shared delta or keyframe), through the real LocalSockets.fan_out.

    .venv/bin/python -m bench.delta_fanout [--fire]

Four sockets whose Outlet.send() does what gameserver.ws.Outlet does short of the write syscall (frame.framed(), the stream
number); arena with 4 players moving every tick (and firing every 10th input with --fire), 400 snapshots built as the
runner builds them. Prints the minimum and median of 9 passes (the machine may be shared) and the bytes per
socket-tick. docs/benchmarks.md ("Delta snapshots") has results.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import statistics
import sys
import time
from typing import Any

TICKS = 400
PASSES = 9
SEATS = 4


def arena_snapshots(fire: bool) -> list[dict[str, Any]]:
    from games.rules import get_game

    game = get_game("arena")
    state = game.initial_state(SEATS, seed=1)
    rng = random.Random(1)
    acks = [0] * SEATS
    out = []
    for tick in range(TICKS):
        for seat in range(SEATS):
            angle = rng.random() * 2 * math.pi
            acks[seat] += 1
            raw = {"dx": round(math.cos(angle), 3), "dy": round(math.sin(angle), 3),
                   "fire": fire and (tick + seat) % 10 == 0, "aim": round(angle - math.pi, 3)}
            game.apply_input(state, seat, game.parse_input(raw))
        events = game.step(state, game.settings.dt)
        message = {"type": "snapshot", "full": True, "tick": tick, "phase": "running", "acks": acks[:],
                   "connected": [True] * SEATS, "removed": [False] * SEATS, "state": game.snapshot(state)}
        if events:
            message["events"] = events
        out.append(message)
    return out


class WireOnlySocket:
    """A match socket as the fan-out sees it (its own Outlet), minus the syscall."""

    def __init__(self, seat: int, deltas: bool, binary: bool):
        self.match_id, self.seat, self.deltas, self.binary = 1, seat, deltas, binary
        self.snapshot_n: int | None = None
        self.sent = 0
        self.out = self

    def send(self, frame) -> None:
        from gameserver.directws import frame_message

        self.sent += len(frame.framed(self.binary, frame_message))
        if frame.stream_n is not None:
            self.snapshot_n = frame.stream_n

    def close(self, code: int) -> None:
        pass


async def one_pass(messages: list[dict[str, Any]], deltas: bool, binary: bool) -> tuple[float, float]:
    """(µs per match-tick, bytes per socket-tick)."""
    from games.engine.fanout import LocalSockets
    from games.engine.protocol import Frame

    sockets = LocalSockets()
    socks = [WireOnlySocket(seat, deltas, binary) for seat in range(SEATS)]
    for sock in socks:
        sockets.add(sock)
    started = time.perf_counter()
    for message in messages:
        sockets.fan_out(1, Frame(message, droppable="events" not in message))
    elapsed = time.perf_counter() - started
    return elapsed / len(messages) * 1e6, sum(s.sent for s in socks) / len(messages) / SEATS


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gameserver.settings")
    import django

    django.setup()
    messages = arena_snapshots(fire="--fire" in sys.argv)
    for label, deltas, binary in (("v1 JSON", False, False), ("v2 JSON", True, False), ("v1 msgpack", False, True),
                                  ("v2 msgpack", True, True)):
        runs = [asyncio.run(one_pass(messages, deltas, binary)) for _ in range(PASSES)]
        micros = [us for us, _ in runs]
        print(f"{label}: fan-out {min(micros):.1f} µs (median {statistics.median(micros):.1f}) per match-tick of "
              f"{SEATS} sockets, {runs[0][1]:.0f} bytes per socket-tick")


if __name__ == "__main__":
    main()
