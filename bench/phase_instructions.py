"""Instructions per arena match-tick in each part of the server path, counted by valgrind rather than timed: a count
that other work on the machine does not change (this 2-core VM's timings of the same code vary by 5-10% from one
run to the next, more than most changes this measures).

    .venv/bin/python -m bench.phase_instructions                # v1 JSON and v2 msgpack
    .venv/bin/python -m bench.phase_instructions 2 msgpack      # one of them

The path is bench/server_path.py's (one match of 4 players: inputs as masked frames through DirectSocket.feed and the
consumer to the runner, the tick, the fan-out to the sockets' Outlets down to send_wire over a no-op transport). Each
part runs inside a C function of the standard library that nothing else on the path calls, which callgrind's
--toggle-collect names: the inputs inside functools.reduce, the tick inside itertools.starmap, the fan-out inside
filter (callgrind_annotate's inclusive counts of those three functions). Each part is counted over 200 and over 400
ticks, and the difference divided by 200, so that start-up and the first ticks (the interpreter specialising its
bytecode) cancel out. Needs valgrind (on every machine here); two runs under it per protocol, a few minutes in all.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARTS = (("inputs", "functools_reduce"), ("tick", "starmap_next"), ("fan-out", "filter_next"))
TICKS = (200, 400)
ROOT = Path(__file__).resolve().parent.parent


def run(version: int, binary: bool, ticks: int) -> int:
    """The path for `ticks` ticks, each part inside its trampoline. Returns the ticks run."""
    from bench.engine_tick import inputs, running_match
    from bench.server_path import encoded_inputs, players
    from games.engine.host import MatchHost
    from games.engine.store import MemoryStore

    host = MatchHost(store=MemoryStore(), relay=None, handover_on_sigterm=False)
    runner = running_match(1, host)
    feeds = [conn.direct.feed for conn in players(runner, version, binary)]
    frames = encoded_inputs(inputs(ticks), version, binary, runner.settings.input_fields)
    publish = host.sockets.fan_out

    def feed_row(_: None, row: list[bytes]) -> None:
        for feed, frame in zip(feeds, row, strict=True):
            feed(frame)

    def step() -> object:
        return runner.run_one_step(time.monotonic())

    def fan_out(frame: object) -> bool:
        publish(runner.match_id, frame)
        return False

    done = 0
    for row in frames:
        functools.reduce(feed_row, [row], None)
        frame = next(itertools.starmap(step, [()]))
        if frame is not None:
            list(filter(fan_out, [frame]))
        runner.tick_record = None
        frame = None  # as the tick loop lets go of it (runner.py)
        done += 1
        if runner.phase == "finished":
            break
    return done


def count(version: int, encoding: str, ticks: int) -> dict[str, int]:
    """Instructions executed inside each part's trampoline (inclusive) over one run of `ticks` ticks under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={out}",
             sys.executable, "-m", "bench.phase_instructions", "--run", str(version), encoding, str(ticks)],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )
        report = subprocess.run(
            ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
            capture_output=True, text=True, check=True,
        ).stdout
    return {name: inclusive(report, function) for name, function in PARTS}


def inclusive(report: str, function: str) -> int:
    """A function's inclusive instruction count in callgrind_annotate's report, summed over the files its code comes
    from (its own .c and the headers inlined into it); 0 when it never ran."""
    total = 0
    for line in report.splitlines():
        found = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+)", line)
        if found and found.group(2).endswith(f":{function}"):
            total += int(found.group(1).replace(",", ""))
    return total


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gameserver.settings")
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from deploy.tuning import tune_runtime

    tune_runtime()  # the collector as the servers run it


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--run"]:
        setup()
        version, encoding, ticks = int(args[1]), args[2], int(args[3])
        done = run(version, encoding == "msgpack", ticks)
        if done != ticks:
            sys.exit(f"the match ended after {done} of {ticks} ticks")
        return
    cases = [(int(args[0]), args[1])] if args else [(1, "json"), (2, "msgpack")]
    for version, encoding in cases:
        low, high = (count(version, encoding, ticks) for ticks in TICKS)
        parts = [f"{name} {(high[name] - low[name]) / (TICKS[1] - TICKS[0]):,.0f}" for name, _ in PARTS]
        print(f"v{version} {encoding}: instructions per arena match-tick of 4: {', '.join(parts)}", flush=True)


if __name__ == "__main__":
    main()
