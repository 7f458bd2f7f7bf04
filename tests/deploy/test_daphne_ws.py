"""`python -m deploy.daphne_ws`, the server scripts/run and the Procfile start: match sockets in direct mode.

These run one real process on the embedded defaults and check what only the direct path does (an oversize message is
refused from its frame header; protocol errors get standard close codes), that ASGI events still reach a direct socket
(logging out closes it with 4012), that a closed socket frees its seat, and that lobby sockets work on it too.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from tests.games.test_multiprocess import Player
from tests.wsraw import RawClient

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
def server(servers):
    return servers.daphne()  # in-process channel layer


async def test_a_match_plays_over_direct_sockets(server):
    cluster, port = server
    match, tokens = cluster.new_pong_match(port)
    alice, bob = Player(port, match["id"], tokens["alice"]), Player(port, match["id"], tokens["bob"])
    await alice.connect()
    await bob.connect()
    _, welcome = await alice.wait_for(lambda m: m["type"] == "welcome", timeout=5)
    assert welcome["seat"] == 0 and welcome["encoding"] == "json"
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running", timeout=15)
    await alice.ws.send(json.dumps({"type": "input", "seq": 7, "input": {"dy": 1}}))
    await bob.wait_for(lambda m: m["type"] == "snapshot" and m["acks"][0] == 7, timeout=5)
    await alice.ws.send(json.dumps({"type": "ping", "t": 123}))
    _, pong = await alice.wait_for(lambda m: m["type"] == "pong", timeout=5)
    assert pong["t"] == 123
    await alice.ws.send("not json")
    _, error = await alice.wait_for(lambda m: m["type"] == "error", timeout=5)
    assert error["error"] == "malformed"
    # A WebSocket-level ping is answered too (the websockets client checks its pong).
    await asyncio.wait_for(await alice.ws.ping(b"are you there"), 5)


async def test_an_oversize_message_is_refused_from_its_header_with_4009(server):
    cluster, port = server
    match, tokens = cluster.new_pong_match(port)
    raw = RawClient()
    await raw.connect(port, f"/ws/matches/{match['id']}/", tokens["alice"])
    # Only the header of a 5,000-byte text frame: the server must not wait for a payload it will refuse.
    raw.send_frame(0x1, b"", declared=5000)
    assert (await raw.read_close())[0] == 4009


@pytest.mark.parametrize(
    "send, code",
    [
        (lambda raw: raw.send_frame(0x1, b'{"type": "ping", "t": "\xff\xfe"}'), 1007),  # text that is not UTF-8
        (lambda raw: raw.send_frame(0x1, b'{"type": "ping"}', masked=False), 1002),  # clients must mask
        (lambda raw: raw.send_frame(0x3, b"?"), 1002),  # reserved opcode
        (lambda raw: raw.send_frame(0x0, b"more"), 1002),  # a continuation of nothing
    ],
)
async def test_protocol_errors_close_with_the_standard_codes(server, send, code):
    cluster, port = server
    match, tokens = cluster.new_pong_match(port)
    raw = RawClient()
    await raw.connect(port, f"/ws/matches/{match['id']}/", tokens["alice"])
    send(raw)
    assert (await raw.read_close())[0] == code


async def test_a_closed_socket_frees_its_seat_and_reconnecting_takes_it_back(server):
    cluster, port = server
    match, tokens = cluster.new_pong_match(port)
    alice, bob = Player(port, match["id"], tokens["alice"]), Player(port, match["id"], tokens["bob"])
    await alice.connect()
    await bob.connect()
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running", timeout=15)
    await bob.ws.close()
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["connected"] == [True, False], timeout=5)
    await bob.connect()
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["connected"] == [True, True], timeout=5)


async def test_logging_out_closes_a_direct_socket_with_4012(server):
    cluster, port = server
    match, tokens = cluster.new_pong_match(port)
    alice = Player(port, match["id"], tokens["alice"])
    await alice.connect()
    await alice.wait_for(lambda m: m["type"] == "welcome", timeout=5)
    status, _ = cluster.http(port, "POST", "/api/auth/logout/", {}, token=tokens["alice"])
    assert status in (200, 204)
    async with asyncio.timeout(5):
        await alice.reader
    assert alice.close_code == 4012


async def test_lobby_sockets_still_work_on_the_same_server(server):
    cluster, port = server
    token = cluster.register(port, "carol")
    status, lobby = cluster.http(port, "POST", "/api/lobbies/", {"game": "pong"}, token=token)
    assert status == 201, lobby
    async with connect(f"ws://127.0.0.1:{port}/ws/lobbies/{lobby['code']}/", origin="http://127.0.0.1",
                       additional_headers={"Authorization": f"Token {token}"}) as ws:
        state = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert state["type"] == "lobby.state" and state["lobby"]["code"] == lobby["code"]
        await ws.send(json.dumps({"type": "chat", "text": "hello"}))
        chat = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert chat["type"] == "lobby.chat" and chat["text"] == "hello"


def test_the_launcher_refuses_proxy_headers():
    # daphne's --proxy-headers takes the leftmost X-Forwarded-For address, which a client writes: per-address limits
    # would be escaped. The launcher says so and points at TRUSTED_PROXY_COUNT.
    import subprocess
    import sys

    from tests.procs import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "deploy.daphne_ws", "--proxy-headers", "-p", "0", "gameserver.asgi:application"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "TRUSTED_PROXY_COUNT" in result.stderr
