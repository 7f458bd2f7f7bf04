"""bench/phase_instructions.py: the server path with each part inside its own trampoline, counted by callgrind."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.procs import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.mark.parametrize("version, encoding", [(1, "json"), (2, "msgpack")])
def test_the_path_runs_the_ticks_it_is_asked_for(version, encoding):
    done = subprocess.run(
        [sys.executable, "-m", "bench.phase_instructions", "--run", str(version), encoding, "12"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_each_part_is_counted_apart():
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed")
    from bench.phase_instructions import count, inclusive

    parts = count(2, "msgpack", 10)
    # Ten ticks of each part: tens of thousands of instructions a tick or more, and far from the run's billions.
    assert all(10 * 5_000 < parts[name] < 10 * 5_000_000 for name in ("inputs", "tick", "fan-out")), parts
    assert inclusive("  1,234 ( 0.01%)  /x/Python/bltinmodule.c:filter_next [/lib]", "filter_next") == 1234
    assert inclusive("  1,234 ( 0.01%)  /x/Python/bltinmodule.c:filter_next [/lib]", "map_next") == 0
