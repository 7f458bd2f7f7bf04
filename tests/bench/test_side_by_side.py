"""bench/side_by_side.py: two trees' servers and load tools at once, each on a PostgreSQL database of its own. Here
this tree against itself, with a few bots: both sides play and are reported, and what it made is gone after."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.procs import ROOT

# It starts servers of its own (once is enough: the first pass) and needs PostgreSQL for their databases.
pytestmark = [pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.embedded_only, pytest.mark.timeout(120)]

POSTGRES = "postgres://postgres@127.0.0.1:5432"


def side_databases() -> list[str]:
    psycopg = pytest.importorskip("psycopg")
    try:
        with psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=3) as conn:
            return [row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'gs_side_%'")]
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 (scripts/test requires it in CI)")


def test_both_trees_play_at_once_and_the_ratio_is_reported(tmp_path):
    before = side_databases()
    out = tmp_path / "side.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "bench.side_by_side", "--against", str(ROOT), "--bots", "8", "--ramp", "1",
         "--window", "3", "--args", "--protocol 2 --encoding msgpack", "--against-args", "--protocol 1",
         "--postgres", POSTGRES, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    records = {r["label"]: r for r in map(json.loads, out.read_text().splitlines())}
    this, other = records["side 1 this"], records["side 1 other"]
    assert (this["protocol"], this["encoding"], other["protocol"], other["encoding"]) == (2, "msgpack", 1, "json")
    for record in (this, other):
        assert record["connected"] == 8 and record["errors"] == 0 and record["snapshots_per_bot_s"] > 10
    ratio = float(re.search(r"median of 1: ([0-9.]+)", result.stdout).group(1))
    assert ratio == pytest.approx(this["cpu_us_per_player_tick"] / other["cpu_us_per_player_tick"], abs=0.001)
    assert side_databases() == before  # its databases dropped
