"""Attacks on authentication and identity, against real server processes (loopback only, bounded in count and time).

- parallel password guesses all count, and at most LOGIN_FAILURE_LIMIT of them are ever checked;
- a forged X-Forwarded-For does not get a client out of its per-address bucket, connecting directly
  (TRUSTED_PROXY_COUNT=0) or through the nginx recipe (TRUSTED_PROXY_COUNT=1);
- a WebSocket ticket issued before logout is refused;
- two deployments on one Redis with different prefixes share no ticket and no throttle.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from deploy.nginx import render, standalone
from tests.procs import drop_database, free_port, make_cluster, wait_for_port

pytestmark = [pytest.mark.redis, pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.timeout(180)]

PASSWORD = "correct horse battery staple"
LIMIT = 5
# Login failures are counted in fixed windows aligned on the clock (gameserver/throttle.py): a test whose guesses and
# final login straddle the end of one starts counting afresh (a CI run failed so, crossing 14:35:00 with the default
# 300 s). A day-long window ends only at midnight UTC.
THROTTLE_ENV = {"LOGIN_FAILURE_LIMIT": str(LIMIT), "LOGIN_FAILURE_WINDOW_SECONDS": "86400"}


def post(port: int, path: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method="POST", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def guesses_with_forged_addresses(port: int, count: int) -> list[int]:
    """`count` wrong logins in parallel, each for another (unknown) username and with another forged address in
    X-Forwarded-For, so that only the per-address bucket can stop them."""

    def guess(i: int) -> int:
        forged = {"X-Forwarded-For": f"10.{i}.{i}.{i}"}
        return post(port, "/api/auth/login/", {"username": f"nobody{i}", "password": "guess"}, forged)[0]

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(guess, range(count)))


async def ticket_close_code(port: int, ticket: str) -> int | None:
    """Open the matchmaking socket with a ticket: None when it is served, else the close code."""
    async with connect(f"ws://127.0.0.1:{port}/ws/matchmaking/?ticket={ticket}", origin="http://127.0.0.1", open_timeout=10) as ws:
        try:
            message = json.loads(await ws.recv())
        except ConnectionClosed:
            return ws.close_code
        assert message["type"] == "matchmaking.state", message
        return None


@pytest.fixture
def direct(cluster):
    cluster.env.update(TRUSTED_PROXY_COUNT="0", **THROTTLE_ENV)
    return cluster.start()


@pytest.fixture
def behind_nginx(nginx_binary, cluster, tmp_path):
    """One daphne process with TRUSTED_PROXY_COUNT=1 behind nginx with the recipe's configuration."""
    cluster.env.update(TRUSTED_PROXY_COUNT="1", **THROTTLE_ENV)
    upstream = cluster.start()
    port = free_port()
    runtime = tmp_path / "nginx"
    runtime.mkdir()
    (runtime / "gameserver.conf").write_text(render(listen=f"127.0.0.1:{port}", upstreams=[f"127.0.0.1:{upstream}"]))
    (runtime / "nginx.conf").write_text(standalone(http_config_path=str(runtime / "gameserver.conf"), runtime_dir=str(runtime)))
    proc = subprocess.Popen([nginx_binary, "-p", str(runtime), "-c", str(runtime / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=open(runtime / "stderr.log", "wb"))
    try:
        wait_for_port(port, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_parallel_guesses_at_one_account_all_count(cluster, direct):
    cluster.register(direct, "alice")
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda _: post(direct, "/api/auth/login/", {"username": "alice", "password": "guess"})[0], range(20)))
    # Each guess takes a place in the account's and the address's counters at once; one that is past the limit in
    # either is refused, so at most LIMIT passwords are checked (fewer when the two orders interleave).
    assert set(statuses) <= {401, 429} and 1 <= statuses.count(401) <= LIMIT, statuses
    # The account stays locked for the window, the right password included.
    assert post(direct, "/api/auth/login/", {"username": "alice", "password": PASSWORD})[0] == 429


def test_direct_a_forged_forwarded_for_does_not_change_the_counted_address(direct):
    statuses = guesses_with_forged_addresses(direct, 20)
    assert sorted(statuses) == [401] * LIMIT + [429] * (20 - LIMIT), statuses


def test_behind_nginx_forged_leftmost_addresses_land_in_one_bucket(behind_nginx):
    statuses = guesses_with_forged_addresses(behind_nginx, 20)
    assert sorted(statuses) == [401] * LIMIT + [429] * (20 - LIMIT), statuses


def test_behind_nginx_clients_are_told_apart_by_the_address_nginx_saw(behind_nginx):
    """The bucket is the client's, not nginx's: a request claiming another client further right still counts as us,
    and sign-ups through nginx are counted against the client's address too."""
    for i in range(LIMIT):
        assert post(behind_nginx, "/api/auth/login/", {"username": f"x{i}", "password": "guess"})[0] == 401
    status, body = post(behind_nginx, "/api/auth/register/", {"username": "newcomer", "password": PASSWORD},
                        {"X-Forwarded-For": "1.1.1.1, 2.2.2.2"})
    assert status == 201, body  # sign-up has its own budget
    assert post(behind_nginx, "/api/auth/login/", {"username": "newcomer", "password": PASSWORD},
                {"X-Forwarded-For": "1.1.1.1, 2.2.2.2"})[0] == 429


async def test_a_ticket_issued_before_logout_is_refused(cluster, direct):
    token = cluster.register(direct, "alice")
    headers = {"Authorization": f"Token {token}"}
    status, body = post(direct, "/api/auth/ws-ticket/", {}, headers)
    assert status == 201, body
    spare_status, spare = post(direct, "/api/auth/ws-ticket/", {}, headers)
    assert spare_status == 201
    assert await ticket_close_code(direct, spare["ticket"]) is None  # tickets work before logout
    assert post(direct, "/api/auth/logout/", {}, headers)[0] == 204
    assert await ticket_close_code(direct, body["ticket"]) == 4001


async def test_two_deployments_on_one_redis_share_no_ticket_and_no_throttle(tmp_path, real_redis_url):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    deployments = [make_cluster(tmp_path / name, real_redis_url) for name in ("a", "b")]
    try:
        for deployment in deployments:
            deployment.env.update(THROTTLE_ENV)
        port_a, port_b = (deployment.start() for deployment in deployments)
        # User 1 is alice on A and mallory on B: a ticket found by id on the wrong deployment opens it as mallory.
        token_a = deployments[0].register(port_a, "alice")
        deployments[1].register(port_b, "mallory")
        status, body = post(port_a, "/api/auth/ws-ticket/", {}, {"Authorization": f"Token {token_a}"})
        assert status == 201, body
        assert await ticket_close_code(port_b, body["ticket"]) == 4001
        assert await ticket_close_code(port_a, body["ticket"]) is None  # B never saw it: still good on A

        for i in range(LIMIT + 1):
            post(port_a, "/api/auth/login/", {"username": f"x{i}", "password": "guess"})
        assert post(port_a, "/api/auth/login/", {"username": "alice", "password": PASSWORD})[0] == 429
        assert post(port_b, "/api/auth/login/", {"username": "mallory", "password": PASSWORD})[0] == 200
    finally:
        for deployment in deployments:
            deployment.stop_all()
            drop_database(deployment.env["DATABASE_URL"])
