"""Instructions per written msgpack delta (delta.shadow_delta) over an arena match's snapshots, counted by valgrind:
the number docs/benchmarks.md quotes for changes to the compiled writer.

    .venv/bin/python -m bench.written_delta            # 4 players moving every tick, no bullets (bench.load's match)
    .venv/bin/python -m bench.written_delta --fire     # and firing every 10th input

The snapshots are bench/delta_fanout.py's (400 ticks of arena with 4 players). Only the deltas are counted: they run
inside itertools.starmap, which callgrind's --toggle-collect names, and nothing else on the path calls it.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_all(fire: bool) -> int:
    """Every delta of the match, each written by shadow_delta as the stream writes it. Returns how many."""
    from bench.delta_fanout import arena_snapshots
    from games.engine import delta
    from games.engine.snapshots import shared_key_table, snapshot_body

    if not delta.COMPILED:
        sys.exit("the compiled writer is not built: .venv/bin/python -m deploy.build_ext")
    bodies = [snapshot_body(message) for message in arena_snapshots(fire)]
    _, numbers = shared_key_table(bodies[0])
    shadow = delta.Shadow()
    delta.keep(shadow, bodies[0])

    def write(body: dict, n: int) -> bytes:
        return delta.shadow_delta(shadow, body, numbers, n, None)

    list(itertools.starmap(write, zip(bodies[1:], itertools.count(2))))
    return len(bodies) - 1


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gameserver.settings")
    fire = "--fire" in sys.argv
    if "--run" in sys.argv:
        import django

        django.setup()
        write_all(fire)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--toggle-collect=starmap_next", f"--callgrind-out-file={out}",
             sys.executable, "-m", "bench.written_delta", "--run", *(["--fire"] if fire else [])],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )
        summary = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
    from bench.delta_fanout import TICKS

    deltas = TICKS - 1
    print(f"{int(summary.group(1)) / deltas:,.0f} instructions per written delta ({'with' if fire else 'no'} bullets)")


if __name__ == "__main__":
    main()
