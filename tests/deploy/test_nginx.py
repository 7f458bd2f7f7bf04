"""The scale-out recipe for real: nginx (deploy/nginx.py's configuration) in front of two daphne processes on Redis.
A match's players land in one process; when it is SIGKILLed they reconnect through nginx and play on."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from deploy.nginx import render, standalone
from tests.games.test_multiprocess import Player
from tests.procs import free_port, wait_for_port

pytestmark = [pytest.mark.redis, pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.timeout(120)]
METRICS_TOKEN = "nginx-recipe-metrics-token-0123456789"


def metrics_status(port: int) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def front(nginx_binary, cluster, tmp_path):
    """Two daphne processes and nginx in front of them, as a foreground child stopped by its pid."""
    cluster.env["METRICS_TOKEN"] = METRICS_TOKEN
    ports = [cluster.start(), cluster.start()]
    port = free_port()
    runtime = tmp_path / "nginx"
    runtime.mkdir()
    (runtime / "gameserver.conf").write_text(render(listen=f"127.0.0.1:{port}", upstreams=[f"127.0.0.1:{p}" for p in ports]))
    (runtime / "nginx.conf").write_text(standalone(http_config_path=str(runtime / "gameserver.conf"), runtime_dir=str(runtime)))
    proc = subprocess.Popen([nginx_binary, "-p", str(runtime), "-c", str(runtime / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=open(runtime / "stderr.log", "wb"))
    try:
        wait_for_port(port, proc)
        yield port, ports
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def connections_to(cluster, port: int, match_id: int) -> int:
    return cluster.log_of(port).count(f"WSCONNECT /ws/matches/{match_id}/")


async def test_a_matchs_players_meet_in_one_process_behind_nginx_and_survive_its_sigkill(cluster, front):
    nginx_port, ports = front
    tokens = {name: cluster.register(nginx_port, name) for name in ("alice", "bob")}
    match = cluster.new_match(nginx_port, "pong", ["alice", "bob"], tokens)
    alice, bob = (Player(nginx_port, match["id"], tokens[name]) for name in ("alice", "bob"))
    await alice.connect()
    await bob.connect()
    for player in (alice, bob):
        await player.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running" and m["tick"] >= 10, timeout=15)

    # Both sockets went to the process that runs the match: no relay in between.
    counts = {p: connections_to(cluster, p, match["id"]) for p in ports}
    owner = next(p for p in ports if counts[p])
    assert sorted(counts.values()) == [0, 2], counts
    assert f"match {match['id']}: running here" in cluster.log_of(owner)
    survivor = next(p for p in ports if p != owner)

    last_tick = max(m["tick"] for m in alice.snapshots())
    killed_at = time.monotonic()
    cluster.kill(owner, signal.SIGKILL)
    cluster.procs[owner].wait(timeout=5)
    await asyncio.gather(alice.reader, bob.reader)

    # Same address, same URL: nginx finds the owner gone and sends both to the other process, which takes over.
    await alice.connect()
    await bob.connect()
    for player in (alice, bob):
        resumed_at, resumed = await player.wait_for(
            lambda m: m["type"] == "snapshot" and m["phase"] == "running" and m["tick"] > last_tick, timeout=15
        )
    print(f"resumed behind nginx {resumed_at - killed_at:.2f} s after SIGKILL (tick {last_tick} -> {resumed['tick']})")
    assert connections_to(cluster, survivor, match["id"]) == 2
    assert "running here (from checkpoint)" in cluster.log_of(survivor)
    await alice.ws.close()
    await bob.ws.close()


async def test_http_api_works_through_nginx_and_metrics_only_at_each_process(cluster, front):
    nginx_port, ports = front
    status, body = cluster.http(nginx_port, "GET", "/api/games/")
    assert status == 200
    assert {game["slug"] for game in body} >= {"arena", "pong"}
    assert cluster.http(nginx_port, "GET", "/health/ready")[0] == 200  # readiness passes through, for outside probes
    # Metrics are scraped at each process's own address; nginx does not serve them, token or not.
    assert [metrics_status(port) for port in ports] == [200, 200]
    assert metrics_status(nginx_port) == 404


def test_the_health_check_option_polls_readiness_on_both_upstreams():
    config = render(listen="80", upstreams=["10.0.0.1:8001", "10.0.0.2:8001"], health_check=True)
    assert config.count("health_check uri=/health/ready") == 2
    assert "zone gameserver_matches 64k;" in config and "zone gameserver 64k;" in config
    assert "health_check" not in render(listen="80", upstreams=["10.0.0.1:8001"])
