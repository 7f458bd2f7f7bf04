"""A small run of the load tool (bench/load.py) against a real daphne process: it connects, plays and reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.procs import ROOT

# The load tool starts servers of its own: once (the first pass) is enough to know it works.
pytestmark = [pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.embedded_only, pytest.mark.timeout(90)]


def test_eight_bots_for_three_seconds_play_at_the_tick_rate_and_are_reported(tmp_path):
    out = tmp_path / "load.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "bench.load", "--bots", "8", "--spectators", "3", "--window", "3", "--ramp", "1",
         "--bot-procs", "2", "--out", str(out)],
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
    # Three spectators per match (two matches of four), reported apart: they watch, they send no inputs.
    assert record["spectators"] == 6 and record["spectators_dropped"] == 0
    assert record["spectator_snapshots_per_s"] > 10
    assert 40 < record["interval_p99_ms"] <= record["interval_max_ms"]



@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_bots_speaking_protocol_2_follow_the_delta_stream_and_wire_bytes_are_reported(tmp_path, encoding):
    out = tmp_path / "load.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "bench.load", "--bots", "8", "--window", "3", "--ramp", "1", "--bot-procs", "1",
         "--protocol", "2", "--encoding", encoding, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=80,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.read_text().splitlines()[-1])
    assert (record["protocol"], record["encoding"]) == (2, encoding)
    assert record["connected"] == 8 and record["dropped"] == 0 and record["errors"] == 0, record["error_codes"]
    # Acks come through deltas: a bot that did not apply them would never see its inputs acknowledged.
    assert record["samples"] > 0 and record["snapshots_per_bot_s"] > 10
    assert record["keyframes"] >= 8 and record["gaps"] == 0
    # The bots' own connections are part of what the loopback carried (other traffic on the machine only adds).
    assert 50 < record["socket_bytes_per_player_tick"] <= record["wire_bytes_per_player_tick"] * 1.05


@pytest.mark.redis
def test_a_short_soak_replaces_finished_matches_and_samples_each_server(tmp_path, real_redis_url):
    out = tmp_path / "soak.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "bench.load", "--soak", "16", "--match-seconds", "3", "--sample-every", "5",
         "--bots", "8", "--servers", "2", "--redis", real_redis_url, "--ramp", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=80,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "late/match" in result.stdout  # the time series
    report = json.loads(out.read_text().splitlines()[-1])
    # Matches end (everyone leaves after 3 s) and new ones replace them: more matches ended than the first round's 2.
    assert report["matches_ended"] > 2, report
    assert report["connect_errors"] == 0 and report["error_codes"] == {}, report
    assert set(report["close_codes"]) <= {"4013", "open at the end"}, report["close_codes"]
    assert len(report["finished_matches"]) > 2 and max(m["round"] for m in report["finished_matches"]) >= 2
    assert len(report["samples"]) >= 3
    for sample in report["samples"]:
        assert len(sample["servers"]) == 2 and all(s["rss_mb"] > 0 and s["fds"] > 0 for s in sample["servers"])
        assert all(0 < s["cores"] < 2 for s in sample["servers"]), sample["servers"]  # both play matches: CPU used
        assert sample["redis_keys"] is not None


def test_callgrind_runs_the_first_server_under_valgrind_and_reads_the_windows_dump(tmp_path):
    from bench.load import callgrind_argv, callgrind_window_instructions

    argv = callgrind_argv(["python", "-m", "deploy.daphne_ws", "-p", "1", "gameserver.asgi:application"], "daphne", tmp_path)
    assert argv[:2] == ["valgrind", "--tool=callgrind"] and f"--callgrind-out-file={tmp_path}/callgrind.out.%p" in argv
    # daphne gets 120 s for a handshake, inserted before the application's path (its last argument)
    assert argv[-3:] == ["--websocket_connect_timeout", "120", "gameserver.asgi:application"]
    # The dump made at the window's end (callgrind_control --dump) is the one with a suffix; the final one at exit is not.
    (tmp_path / "callgrind.out.42").write_text("summary: 999999\n")
    (tmp_path / "callgrind.out.42.1").write_text("events: Ir\nsummary: 331425933\ntotals: 331425933\n")
    assert callgrind_window_instructions(tmp_path, 42) == 331425933
    with pytest.raises(RuntimeError, match="no callgrind dump of process 7"):
        callgrind_window_instructions(tmp_path, 7)


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_a_terminated_run_stops_the_server_it_started(tmp_path):
    """SIGTERM (a `timeout`, a tool stopping it) goes through the run's cleanup: by default it ended the process at once
    and left its daphne running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.load", "--bots", "4", "--ramp", "1", "--window", "60", "--out", str(tmp_path / "o")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    servers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not servers:
            assert proc.poll() is None and time.monotonic() < deadline, "no server started"
            servers = [c for c in _children(proc.pid) if b"deploy.daphne_ws" in Path(f"/proc/{c}/cmdline").read_bytes()]
            time.sleep(0.2)
        time.sleep(2)  # its bots are connecting
        proc.terminate()
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        assert not _running(servers[0]), "the server outlived the load tool"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in servers:  # (had the test failed: not left running)
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
