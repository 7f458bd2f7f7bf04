"""The live-match console against two real daphne processes on Redis: the process that does not run the match lists
it with its owner, players and spectators, and its notice, kick and end reach the match and the sockets on both."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.games.test_multiprocess import Player, owner_port, start_match_across_processes
from tests.procs import wait_until

# Production-shaped (two processes on Redis): in the PostgreSQL and Redis pass only, like the observability tests.
pytestmark = [pytest.mark.redis, pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.services_pass, pytest.mark.timeout(120)]

PASSWORD = "operator password for tests"


class Operator:
    """A staff user's browser session on one process's admin."""

    def __init__(self, port: int, username: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        page = self.opener.open(f"{self.base}/admin/login/", timeout=10).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        self.post("/admin/login/", {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token,
                                    "next": "/admin/"})

    def csrf(self) -> str:
        return next(cookie.value for cookie in self.jar if cookie.name == "csrftoken")

    def post(self, path: str, fields: dict) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{self.base}{path}", data=urllib.parse.urlencode(fields).encode(),
                                         headers={"X-CSRFToken": self.csrf()}, method="POST")
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def live(self) -> dict:
        with self.opener.open(f"{self.base}/admin/games/match/live/data/", timeout=10) as response:
            return json.loads(response.read())

    def act(self, match_id: int, action: str, **fields) -> float:
        """Posts an action; returns when the answer came (monotonic)."""
        status, body = self.post(f"/admin/games/match/live/{match_id}/{action}/", fields)
        assert status == 200, body
        return time.monotonic()



async def test_the_console_on_one_process_sees_and_steers_a_match_run_by_the_other(cluster):
    ports, match_id, alice, bob = await start_match_across_processes(cluster)
    owner = owner_port(cluster, ports, match_id)
    other = ports[1] if owner == ports[0] else ports[0]
    cluster.manage("shell", "-c", f"from gameserver.accounts.models import User; "
                                  f"User.objects.create_superuser('operator', password={PASSWORD!r})")
    carol_token = cluster.register(other, "carol")
    carol = Player(other, match_id, carol_token)  # a spectator, on the process that does not run the match
    await carol.connect()
    operator = await asyncio.to_thread(Operator, other, "operator")

    def listed():
        rows = [r for r in operator.live()["matches"] if r["match_id"] == match_id]
        return rows and rows[0]["spectators"] == 1 and rows[0]["tick"] and rows[0]
    row = await wait_until(listed, 10, "the match in the console")
    assert row["owner"].endswith(f":{cluster.procs[owner].pid}")
    assert row["phase"] == "running" and row["game"] == "pong" and row["tick_ms"] is not None
    assert [(p["username"], p["state"]) for p in row["players"]] == [("alice", "connected"), ("bob", "connected")]
    assert len(row["processes"]) == 2
    later = await wait_until(lambda: (r := listed()) and r["tick"] > row["tick"] and r, 5, "the tick to move on")
    assert later["tick"] > row["tick"]

    # A notice reaches the sockets on both processes within about a tick of the answer.
    sent = await asyncio.to_thread(operator.act, match_id, "notice", text="Maintenance at noon")
    for socket in (alice, bob, carol):
        arrived, message = await socket.wait_for(lambda m: m["type"] == "notice", timeout=5)
        assert message["text"] == "Maintenance at noon"
        assert arrived - sent < 1.0

    # Ending with the result: the owner stops play at its next tick and records it; everyone gets it.
    await asyncio.to_thread(operator.act, match_id, "end", result="1")
    for socket in (alice, bob, carol):
        _, end = await socket.wait_for(lambda m: m["type"] == "match_end", timeout=5)
        assert (end["status"], end["reason"]) == ("finished", "ended_by_admin")
    assert json.loads(cluster.manage("replay", str(match_id), "--verify"))["verified"] is True

    # A kick, in a second match: bob's socket on its process closes with 4014, and the owner removes his seat.
    tokens = {"alice": alice.token, "bob": bob.token}
    second = cluster.new_match(ports[0], "pong", ["alice", "bob"], tokens)["id"]
    alice2, bob2 = Player(alice.port, second, alice.token), Player(bob.port, second, bob.token)
    await alice2.connect()
    await bob2.connect()
    await alice2.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running", timeout=15)
    await asyncio.to_thread(operator.act, second, "kick", seat="1")
    await asyncio.wait_for(bob2.reader, 5)
    assert bob2.close_code == 4014
    _, end = await alice2.wait_for(lambda m: m["type"] == "match_end", timeout=5)
    assert end["reason"] == "forfeit" and [r["abandoned"] for r in end["results"]] == [False, True]
    for socket in (alice, bob, carol, alice2):
        await socket.ws.close()
