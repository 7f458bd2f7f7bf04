"""What a version 2 snapshot costs, piece by piece, per match-tick: the body taken out of the message, the diff (with
JSON's text keys and msgpack's numbered keys), the delta's msgpack encoding, a full snapshot's JSON encoding, and
the stream as the fan-out drives it (advance, four frame_for, each frame encoded once).

    .venv/bin/python -m bench.snapshot_parts

2,000 snapshots of bench/engine_tick.py's arena match (4 players moving, firing every 10th input); the minimum of 7
passes. `delta.COMPILED` says whether the compiled diff ran (deploy/build_ext.py). docs/benchmarks.md has results.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def arena_messages() -> list[dict]:
    from bench.engine_tick import SEATS, inputs, running_match

    rows = inputs(2000)
    runner = running_match()
    parse = runner.game.parse_input
    messages = []
    for tick, row in enumerate(rows):
        for seat, raw in enumerate(row[:SEATS]):
            runner.queue_input(seat, tick + 1, parse(raw), raw)
        frame = runner.run_one_step(time.monotonic())
        messages.append(frame.message)
        if runner.phase == "finished":
            break
    return messages


def timed(label: str, count: int, work: Callable[[], object]) -> None:
    best = min(_seconds(work) for _ in range(7))
    print(f"{label}: {best / count * 1e6:.2f} µs per match-tick")


def _seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gameserver.settings")
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from games.engine import delta, snapshots
    from games.engine.protocol import Frame, encode_json, encode_msgpack_single_floats

    messages = arena_messages()
    n = len(messages)
    bodies = [snapshots.snapshot_body(message) for message in messages]
    numbers = {key: number for number, key in enumerate(delta.key_table(bodies[0]))}
    pairs = list(zip(bodies, bodies[1:], strict=False))
    patches = [delta.diff(prev, cur, numbers) for prev, cur in pairs]
    print(f"compiled diff: {delta.COMPILED}; {n} arena snapshots")
    timed("snapshot body", n, lambda: [snapshots.snapshot_body(message) for message in messages])
    timed("diff, JSON keys", len(pairs), lambda: [delta.diff(prev, cur, delta.NO_KEYS) for prev, cur in pairs])
    timed("diff, numbered keys", len(pairs), lambda: [delta.diff(prev, cur, numbers) for prev, cur in pairs])
    timed("delta encoded as msgpack", len(patches),
          lambda: [encode_msgpack_single_floats(snapshots.delta_message(i, p, None)) for i, p in enumerate(patches)])
    timed("full snapshot encoded as JSON", n, lambda: [encode_json(message) for message in messages])

    def stream_of_four_msgpack_sockets() -> None:
        stream, last = snapshots.SnapshotStream(), None
        for message in messages:
            stream.advance(Frame(message, droppable=True))
            for _ in range(4):
                stream.frame_for(last, True).binary()
            stream.sent()
            last = stream.n

    timed("stream: advance, 4 x frame_for, sent, msgpack", n, stream_of_four_msgpack_sockets)


if __name__ == "__main__":
    main()
