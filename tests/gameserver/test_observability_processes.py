"""Metrics, readiness and logs of real daphne processes: two on Redis sharing a match (each scraped on its own), the
owner's SIGTERM handover seen from its readiness and metrics, and readiness through a Redis outage. Production-shaped,
so in the PostgreSQL and Redis pass only (services_pass)."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.games.test_multiprocess import owner_port, start_match_across_processes
from tests.games.test_redis_faults import OwnRedis
from tests.procs import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.services_pass, pytest.mark.timeout(90)]

TOKEN = "metrics-token-for-tests-0123456789abcdef"


def get(port: int, path: str, token: str | None = None) -> tuple[int, str, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of a process's /metrics: (name, sorted labels) -> value."""
    status, body, _ = get(port, "/metrics", TOKEN)
    assert status == 200, body
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)



async def test_each_process_reports_its_own_share_of_a_match_and_a_sigterm_handover(cluster):
    cluster.env.update(METRICS_TOKEN=TOKEN, SHUTDOWN_DRAIN_SECONDS="3", LOG_FORMAT="json")
    ports, match_id, alice, bob = await start_match_across_processes(cluster)
    owner = owner_port(cluster, ports, match_id)
    survivor = ports[1] if owner == ports[0] else ports[0]
    on_owner, on_survivor = (alice, bob) if alice.port == owner else (bob, alice)

    # Protected: no token, or a wrong one, and the endpoint is not there.
    assert get(owner, "/metrics")[0] == 404
    assert get(owner, "/metrics", "not-the-token")[0] == 404

    await on_survivor.ws.send(json.dumps({"type": "ping", "t": 1}))
    await on_survivor.wait_for(lambda m: m["type"] == "pong", timeout=5)
    owned, relayed = scrape(owner), scrape(survivor)
    assert value(owned, "gameserver_matches", role="owned") == 1
    assert value(owned, "gameserver_matches", role="relayed") == 0
    assert value(relayed, "gameserver_matches", role="owned") == 0
    assert value(relayed, "gameserver_matches", role="relayed") == 1
    for samples in (owned, relayed):
        assert value(samples, "gameserver_sockets_open", kind="match") == 1
        # Each process counts the snapshots it wrote to its own player (20 running ticks at least, seen above).
        assert value(samples, "gameserver_ws_messages_sent_total", kind="match") >= 20
        assert value(samples, "gameserver_ws_sent_bytes_total", kind="match") > 1000
    assert value(relayed, "gameserver_ws_messages_received_total", kind="match") >= 1
    # Ticks are measured where the match runs, per game.
    assert value(owned, "gameserver_tick_duration_seconds_count", game="pong") >= 20
    assert value(owned, "gameserver_tick_lateness_seconds_count", game="pong") >= 20
    assert value(relayed, "gameserver_tick_duration_seconds_count", game="pong") == 0
    takeovers_before = value(relayed, "gameserver_lease_takeovers_total")

    assert get(owner, "/health/ready")[0] == 200
    cluster.kill(owner, signal.SIGTERM)
    # Handing over, then draining: not ready (so a balancer stops sending players), still alive, still scrapable.
    status, body, headers = await wait_until(lambda: (r := get(owner, "/health/ready"))[0] == 503 and r, 2.0, "not ready")
    assert json.loads(body)["checks"]["draining"] is True
    assert headers["Retry-After"]
    assert get(owner, "/health/live")[0] == 200
    assert value(await asyncio.to_thread(scrape, owner), "gameserver_handovers_total") == 1
    await on_owner.reader
    assert on_owner.close_code == 4010
    await on_owner.connect(survivor)
    await wait_until(lambda: value(scrape(survivor), "gameserver_matches", role="owned") == 1, 10.0, "the takeover")
    assert value(scrape(survivor), "gameserver_lease_takeovers_total") == takeovers_before + 1
    assert cluster.procs[owner].wait(timeout=10) is not None
    assert get(survivor, "/health/ready")[0] == 200

    # LOG_FORMAT=json: one object per line, tagged with the process, and with the match and user it concerns.
    pid = cluster.procs[owner].pid
    records = [json.loads(line) for line in cluster.log_of(owner).splitlines() if line.startswith("{")]
    assert records and all(record["process"].endswith(f":{pid}") for record in records)
    started = [r for r in records if f"match {match_id}: running here" in r["message"]]
    assert started and started[0]["match_id"] == match_id and started[0]["user_id"] is not None
    await on_owner.ws.close()
    await on_survivor.ws.close()


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        pytest.fail("redis-server is needed to take Redis away")
    directory = tmp_path / "redis"
    directory.mkdir()
    server = OwnRedis(directory, persistent=False)
    server.start()
    yield server
    server.stop()


async def test_readiness_fails_while_redis_is_away_and_recovers(tmp_path, private_redis):
    from tests.procs import drop_database, make_cluster

    cluster = make_cluster(tmp_path, private_redis.url)
    cluster.env.update(METRICS_TOKEN=TOKEN)
    try:
        port = cluster.start()
        status, body, _ = get(port, "/health/ready")
        assert status == 200 and json.loads(body)["checks"]["redis"] == "ok", body

        private_redis.stop()
        status, body, headers = get(port, "/health/ready")
        assert status == 503, body
        assert json.loads(body)["checks"] == {"database": "ok", "redis": "unreachable", "draining": False}
        assert headers["Retry-After"]
        assert get(port, "/health/live")[0] == 200
        assert value(scrape(port), "gameserver_matches", role="owned") == 0  # metrics need no Redis

        private_redis.start()
        await wait_until(lambda: get(port, "/health/ready")[0] == 200, 10.0, "ready again")
    finally:
        cluster.stop_all()
        drop_database(cluster.env["DATABASE_URL"])
