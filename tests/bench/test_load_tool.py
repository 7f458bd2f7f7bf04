"""A small run of the load tool (bench/load.py) against a real daphne process: it connects, plays and reports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.procs import ROOT

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.timeout(90)]


def test_eight_bots_for_three_seconds_play_at_the_tick_rate_and_are_reported(tmp_path):
    out = tmp_path / "load.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "bench.load", "--bots", "8", "--window", "3", "--ramp", "1", "--bot-procs", "2",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=80,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "snap/bot/s" in result.stdout  # the table
    record = json.loads(out.read_text().splitlines()[-1])
    assert record["connected"] == 8 and record["connect_failed"] == 0 and record["dropped"] == 0
    assert record["errors"] == 0, record["error_codes"]
    assert record["snapshots_per_bot_s"] > 10  # 20 Hz on an idle box; CI boxes are shared
    assert record["inputs_per_bot_s"] > 10
    assert record["samples"] > 0 and 0 < record["p50_ms"] <= record["p99_ms"]
    assert record["server_cores"] > 0 and record["server_rss_mb"] > 0
