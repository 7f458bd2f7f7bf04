"""The engine's tick in-process, without sockets: one arena match of 4 in play, every seat's input queued every tick
(parse_input, queue_input, as a socket's input reaches the runner), `run_one_step`, and the snapshot encoded once as
v1 JSON. Prints the minimum and median µs per match-tick of 15 passes.

    .venv/bin/python -m bench.engine_tick              # time
    TICKS=500 valgrind --tool=callgrind .venv/bin/python -m bench.engine_tick --once   # and TICKS=1500: instructions

Instructions per match-tick = (total at 1,500 ticks - total at 500) / 1,000: start-up cancels out. docs/benchmarks.md
("1,000 players and where the CPU went") has results.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import sys
import time

SEATS = 4
PASSES = 15


def inputs(ticks: int) -> list[list[dict]]:
    rng = random.Random(1)
    rows = []
    for tick in range(ticks):
        row = []
        for seat in range(SEATS):
            angle = rng.random() * 2 * math.pi
            row.append({"dx": round(math.cos(angle), 3), "dy": round(math.sin(angle), 3), "fire": (tick + seat) % 10 == 0,
                        "aim": round(angle - math.pi, 3)})
        rows.append(row)
    return rows


def running_match(match_id: int = 1, host=None):
    """A runner of an arena match in play (as a successor resumes one), every seat connected, no Redis; `host`: the
    MatchHost it runs in (a new one by default)."""
    from games.engine.host import MatchHost
    from games.engine.runner import MatchRunner
    from games.engine.store import Checkpoint, MemoryStore
    from games.rules import get_game
    from games.selectors import MatchInfo, PlayerInfo

    rules = get_game("arena")
    info = MatchInfo(match_id=match_id, game="arena", seed=7, status="running", join_deadline=time.time() + 60,
                     players=tuple(PlayerInfo(seat, seat + 1, f"p{seat}") for seat in range(SEATS)))
    data = {"state": rules.to_checkpoint(rules.initial_state(SEATS, seed=7)), "phase": "running", "countdown_left": 0,
            "steps": 0, "acks": [0] * SEATS, "removed": [False] * SEATS, "started_wall": time.time(),
            "connected": [True] * SEATS, "jn": 0}
    if host is None:
        host = MatchHost(store=MemoryStore(), relay=None, handover_on_sigterm=False)
    runner = MatchRunner(host, info, Checkpoint(data=data, log=[]))
    for seat in range(SEATS):
        runner.seat_presence(seat, local_delta=1)
    return runner


def one_pass(rows: list[list[dict]]) -> float:
    runner = running_match()
    parse = runner.game.parse_input
    started = time.perf_counter()
    ticks = 0
    for tick, row in enumerate(rows):
        for seat, raw in enumerate(row):
            runner.queue_input(seat, tick + 1, parse(raw), raw)
        frame = runner.run_one_step(time.monotonic())
        if frame is not None:
            frame.json()
        ticks += 1
        if runner.phase == "finished":
            break
    return (time.perf_counter() - started) / ticks * 1e6


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gameserver.settings")
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    rows = inputs(int(os.environ.get("TICKS", "2000")))
    if "--once" in sys.argv:
        one_pass(rows)
        return
    micros = [one_pass(rows) for _ in range(PASSES)]
    print(f"engine tick: {min(micros):.1f} µs (median {statistics.median(micros):.1f}) per arena match-tick of {SEATS}")


if __name__ == "__main__":
    main()
