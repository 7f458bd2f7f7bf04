"""A match's whole server path in-process, without the event loop or the kernel: per tick, each of 4 players' input
arrives as a masked WebSocket frame (DirectSocket.feed, as the event loop hands it over) and goes through
MatchConsumer.on_message to the runner; then `run_one_step` and MatchHost.publish send the snapshot to the 4 sockets
through their Outlets down to DirectSocket.send_wire, whose transport write is a no-op. Prints the minimum and median
µs per match-tick of 15 passes for each protocol version and encoding.

    .venv/bin/python -m bench.server_path                  # v1 and v2, JSON and msgpack
    .venv/bin/python -m bench.server_path 2 msgpack        # one of them
    .venv/bin/python -m bench.server_path 1 json --matches 250   # 1,000 sockets: the same path with a cold cache
    TICKS=500 valgrind --tool=callgrind .venv/bin/python -m bench.server_path 2 msgpack --once   # and TICKS=1500

What the load tool measures besides this is the event loop, the read and write system calls and TCP on loopback;
this is the part our code decides. docs/benchmarks.md ("1,000 players and where the CPU went") has results.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from bench.engine_tick import SEATS, inputs, running_match

PASSES = 15
MASK = b"\x12\x34\x56\x78"


class NullTransport:
    """DirectSocket's Transport with nothing under it: the write system call is what this bench leaves out."""

    def write(self, data: bytes) -> None:
        pass

    def buffered_bytes(self) -> int:
        return 0

    def close(self) -> None:
        pass

    write_eof = abort = close


def client_frame(payload: bytes, binary: bool) -> bytes:
    """One masked client frame, as a client library sends an input."""
    from gameserver.directws import unmask

    assert len(payload) < 126
    return bytes((0x82 if binary else 0x81, 0x80 | len(payload))) + MASK + unmask(payload, MASK)


def encoded_inputs(rows: list[list[dict]], version: int, binary: bool, fields: tuple[str, ...]) -> list[list[bytes]]:
    import msgpack
    import orjson

    out = []
    for tick, row in enumerate(rows):
        frames = []
        for raw in row:
            if version >= 2:
                message = [tick + 1, *(raw[name] for name in fields)]
            else:
                message = {"type": "input", "seq": tick + 1, "input": raw}
            payload = msgpack.packb(message, use_single_float=True) if binary else orjson.dumps(message)
            frames.append(client_frame(payload, binary))
        out.append(frames)
    return out


def players(runner, version: int, binary: bool) -> list:
    """A connected MatchConsumer per seat, set up as connect() leaves one, on a DirectSocket over NullTransport."""
    from games import consumers
    from games.engine import protocol
    from gameserver.directws import DirectSocket
    from gameserver.ws import MessageRateLimit, Outlet

    host = runner.host
    host.runners[runner.match_id] = runner
    conns = []
    for seat in range(SEATS):
        conn = consumers.MatchConsumer()
        conn.scope = {}
        conn.match_id, conn.seat, conn.info, conn.game, conn.host = runner.match_id, seat, runner.info, runner.game, host
        conn.binary, conn.version = binary, version
        conn.read_compact = protocol.compact_reader(runner.settings.input_fields)
        conn.direct = DirectSocket(NullTransport())
        conn.direct.attach(conn, max_message_bytes=protocol.MAX_MESSAGE_BYTES)
        conn.direct.opened()
        conn.out = Outlet(conn, binary=binary)
        conn.out.deltas = version >= protocol.DELTA_VERSION
        conn.last_seq = 0
        conn.rate = MessageRateLimit(per_second=1e9, burst=1e9, max_dropped=protocol.MAX_RATE_VIOLATIONS)
        conn.bad_messages = 0
        conn.early = None
        conn.serving = conn.attached = True
        host.sockets.add(conn)
        conns.append(conn)
    return conns


def one_pass(rows: list[list[dict]], version: int, binary: bool, matches: int = 1) -> list[float]:
    """µs per match-tick in inputs, ticks and fan-out. With several matches, each tick reads every match's inputs
    (as a process serving many matches touches each one's objects once, not with the whole match hot in the cache),
    then runs each match's tick and at once its fan-out, as the match's tick loop does (runner.py: the snapshot goes
    out while it is still in the cache)."""
    from games.engine.host import MatchHost
    from games.engine.store import MemoryStore

    host = MatchHost(store=MemoryStore(), relay=None, handover_on_sigterm=False)
    runners = [running_match(match_id, host) for match_id in range(1, matches + 1)]
    conns = {runner.match_id: players(runner, version, binary) for runner in runners}
    frames = encoded_inputs(rows, version, binary, runners[0].settings.input_fields)
    feeds = [[conn.direct.feed for conn in conns[runner.match_id]] for runner in runners]
    publish = host.sockets.fan_out
    clock = time.perf_counter
    spent = [0.0, 0.0, 0.0]  # inputs, the tick, the fan-out
    ticks = 0
    for row in frames:
        t0 = clock()
        for match_feeds in feeds:
            for feed, frame in zip(match_feeds, row, strict=True):
                feed(frame)
        t1 = clock()
        spent[0] += t1 - t0
        for runner in runners:
            t1 = clock()
            frame = runner.run_one_step(time.monotonic())
            t2 = clock()
            if frame is not None:
                publish(runner.match_id, frame)
            runner.tick_record = None
            frame = None  # as the tick loop lets go of its snapshot (and, embedded, its record) once sent (runner.py)
            t3 = clock()
            spent[1] += t2 - t1
            spent[2] += t3 - t2
        ticks += len(runners)
        if runners[0].phase == "finished":
            break
    for match_conns in conns.values():
        assert all(conn.bad_messages == 0 and not conn.out.closed for conn in match_conns), "an input was refused"
    return [part / ticks * 1e6 for part in spent]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gameserver.settings")
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from deploy.tuning import tune_runtime

    tune_runtime()  # the collector as the servers run it (deploy/tuning.py)
    args = sys.argv[1:]
    matches = 1
    if "--matches" in args:
        at = args.index("--matches")
        matches = int(args[at + 1])
        del args[at : at + 2]
    rows = inputs(int(os.environ.get("TICKS", str(max(200, 2000 // matches)))))
    args = [a for a in args if not a.startswith("--")]
    cases = [(int(args[0]), args[1] == "msgpack")] if args else [(1, False), (1, True), (2, False), (2, True)]
    if "--once" in sys.argv:
        one_pass(rows, *cases[0], matches)
        return
    for version, binary in cases:
        passes = [one_pass(rows, version, binary, matches) for _ in range(PASSES if matches == 1 else 5)]
        micros = [sum(parts) for parts in passes]
        best = passes[micros.index(min(micros))]
        print(f"v{version} {'msgpack' if binary else 'JSON'}: {min(micros):.1f} µs (median {statistics.median(micros):.1f})"
              f" per arena match-tick of {SEATS} (inputs {best[0]:.1f}, tick {best[1]:.1f}, fan-out {best[2]:.1f})"
              f"{f', {matches} matches' if matches > 1 else ''}")


if __name__ == "__main__":
    main()
