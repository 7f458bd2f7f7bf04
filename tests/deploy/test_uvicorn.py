"""uvicorn, the documented faster alternative to daphne (docs/scale-out.md): a match plays over it as over daphne, with
match and lobby sockets on DirectSocket (deploy/uvicorn_ws.py), uvicorn's own WebSocket code doing the handshakes.

What shows that a match socket is direct: DirectSocket names the limit in its close reason and closes as soon as a
frame header announces too big a message, without waiting for the payload; through ASGI the consumer closes with the
bare code, and only once the whole message has arrived.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.games.test_multiprocess import Player
from tests.wsraw import RawClient

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.timeout(90)]

TOO_BIG_REASON = "messages are limited to 4096 bytes"  # DirectSocket's; the ASGI path closes with no reason


@pytest.fixture
def uvicorn_port(servers):
    cluster, port = servers.uvicorn()
    yield cluster, port
    # A crash in the protocol class (connection_lost, a second disconnect) shows up only in the server's log.
    assert "Traceback" not in cluster.log_of(port), cluster.log_of(port)


@pytest.fixture
def quick_ping_port(servers):
    """uvicorn pinging every second and giving up on a silent peer after another second."""
    return servers.uvicorn("--ws-ping-interval", "1", "--ws-ping-timeout", "1")


async def running_match(cluster, port) -> tuple[Player, Player]:
    match, tokens = cluster.new_pong_match(port)
    alice, bob = Player(port, match["id"], tokens["alice"]), Player(port, match["id"], tokens["bob"])
    await alice.connect()
    await bob.connect()
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running", timeout=15)
    return alice, bob


async def test_a_match_plays_over_uvicorn_with_the_same_protocol(uvicorn_port):
    cluster, port = uvicorn_port
    match, tokens = cluster.new_pong_match(port)
    alice, bob = Player(port, match["id"], tokens["alice"]), Player(port, match["id"], tokens["bob"])
    await alice.connect()
    await bob.connect()
    _, welcome = await alice.wait_for(lambda m: m["type"] == "welcome", timeout=5)
    assert welcome["seat"] == 0 and welcome["encoding"] == "json"
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running", timeout=15)
    await alice.ws.send(json.dumps({"type": "input", "seq": 7, "input": {"dy": 1}}))
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["acks"][0] == 7, timeout=5)
    # A reply written by the consumer itself, from the read callback.
    await bob.ws.send(json.dumps({"type": "ping", "t": 123}))
    _, pong = await bob.wait_for(lambda m: m["type"] == "pong", timeout=5)
    assert pong["t"] == 123
    assert alice.ws.subprotocol == "gs.v1.json"

    async with connect(f"ws://127.0.0.1:{port}/ws/matches/{match['id']}/", origin="http://127.0.0.1",
                       additional_headers={"Authorization": "Token nope"}) as ws:
        await ws.wait_closed()
        assert ws.close_code == 4001
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"ws://127.0.0.1:{port}/ws/matches/{match['id']}/", origin="http://evil.example",
                      additional_headers={"Authorization": f"Token {tokens['alice']}"})
    assert refused.value.response.status_code == 403
    await alice.ws.close()
    await bob.ws.close()


async def test_an_oversized_message_closes_a_match_socket_with_4009(uvicorn_port):
    cluster, port = uvicorn_port
    alice, bob = await running_match(cluster, port)
    await alice.ws.send("x" * 5000)
    await asyncio.wait_for(alice.reader, 5)
    assert alice.close_code == 4009
    assert alice.ws.close_reason == TOO_BIG_REASON

    # The header alone is enough: the payload never comes, and the socket is closed all the same.
    raw = RawClient()
    await raw.connect(port, f"/ws/matches/{bob.match_id}/", bob.token)
    assert (await raw.read_json())["type"] == "welcome"
    raw.send_frame(0x1, b"", declared=5000)
    assert await raw.read_close() == (4009, TOO_BIG_REASON)
    await bob.ws.close()


async def test_invalid_utf8_in_a_text_message_closes_a_match_socket_with_1007(uvicorn_port):
    cluster, port = uvicorn_port
    match, tokens = cluster.new_pong_match(port)
    raw = RawClient()
    await raw.connect(port, f"/ws/matches/{match['id']}/", tokens["alice"])
    assert (await raw.read_json())["type"] == "welcome"
    raw.send_frame(0x1, b'{"type": "ping", "t": "\xff\xfe"}')
    assert await raw.read_close() == (1007, "text messages must be UTF-8")


async def test_a_client_close_detaches_the_seat_and_it_can_come_back(uvicorn_port):
    cluster, port = uvicorn_port
    alice, bob = await running_match(cluster, port)
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["connected"] == [True, True], timeout=5)
    alice.messages.clear()  # wait_for looks at every message received: only what comes after the close counts
    await bob.ws.close()
    assert bob.ws.close_code == 1000  # the server echoed the close frame: a clean closing handshake
    await asyncio.wait_for(bob.reader, 5)
    closed_at = time.monotonic()
    stamp, _ = await alice.wait_for(lambda m: m["type"] == "snapshot" and m["connected"] == [True, False], timeout=3)
    assert stamp - closed_at < 2.5

    alice.messages.clear()
    bob.messages.clear()
    await bob.connect()
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["connected"] == [True, True], timeout=5)
    await bob.ws.send(json.dumps({"type": "input", "seq": 1, "input": {"dy": -1}}))
    await bob.wait_for(lambda m: m["type"] == "snapshot" and m["acks"][1] == 1, timeout=5)
    await alice.ws.close()
    await bob.ws.close()


async def test_lobby_and_matchmaking_sockets_work_on_direct_sockets(uvicorn_port):
    cluster, port = uvicorn_port
    tokens = {name: cluster.register(port, name) for name in ("alice", "bob")}
    status, lobby = cluster.http(port, "POST", "/api/lobbies/", {"game": "pong"}, token=tokens["alice"])
    assert status == 201, lobby
    url = f"ws://127.0.0.1:{port}/ws/lobbies/{lobby['code']}/"
    async with connect(url, origin="http://127.0.0.1", additional_headers={"Authorization": f"Token {tokens['alice']}"}) as ws:
        state = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert state["type"] == "lobby.state" and state["lobby"]["code"] == lobby["code"]
        await ws.send(json.dumps({"type": "chat", "text": "hello over uvicorn"}))
        chat = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert chat["type"] == "lobby.chat" and chat["text"] == "hello over uvicorn"
        status, _ = cluster.http(port, "POST", f"/api/lobbies/{lobby['code']}/join/", token=tokens["bob"])
        assert status == 200
        update = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert update["type"] == "lobby.update" and update["event"] == "member_joined"
        await ws.send(json.dumps({"type": "nonsense"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["error"] == "unknown_type"
        # Closed by DirectSocket from the frame header, with its reason: the lobby socket is direct.
        await ws.send("x" * 5000)
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert (ws.close_code, ws.close_reason) == (4009, TOO_BIG_REASON)

    async with connect(f"ws://127.0.0.1:{port}/ws/matchmaking/", origin="http://127.0.0.1",
                       additional_headers={"Authorization": f"Token {tokens['bob']}"}) as ws:
        state = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert state == {"type": "matchmaking.state", "ticket": None}


async def test_a_stopping_server_closes_direct_sockets_with_1012_and_exits(servers):
    # Without the engine's handover (which closes with 4010 first) uvicorn's own shutdown reaches the sockets.
    cluster, port = servers.uvicorn(ENGINE_HANDOVER_ON_SIGTERM="0")
    alice, bob = await running_match(cluster, port)
    cluster.kill(port, signal.SIGTERM)
    await asyncio.wait_for(asyncio.gather(alice.reader, bob.reader), 10)
    assert alice.close_code == bob.close_code == 1012
    # uvicorn raises the signal again once it has shut down cleanly.
    assert await asyncio.to_thread(cluster.procs[port].wait, 15) == -signal.SIGTERM
    log = cluster.log_of(port)
    assert "Finished server process" in log and "Traceback" not in log, log


async def test_uvicorn_pings_only_the_sockets_it_parses(quick_ping_port):
    cluster, port = quick_ping_port
    match, tokens = cluster.new_pong_match(port)
    # A direct socket: uvicorn's keepalive must be off for it, or its pings' answers (which it never sees any more)
    # would time out and it would fail the connection with 1011.
    raw = RawClient()
    await raw.connect(port, f"/ws/matches/{match['id']}/", tokens["alice"])
    assert (await raw.read_json())["type"] == "welcome"
    deadline = time.monotonic() + 3.5
    while (left := deadline - time.monotonic()) > 0:
        try:
            async with asyncio.timeout(left):
                opcode, _ = await raw.read_frame()
        except TimeoutError:
            break
        assert opcode not in (0x8, 0x9), opcode
    # DirectSocket answers the client's pings itself.
    bob = Player(port, match["id"], tokens["bob"])
    await bob.connect()
    await asyncio.wait_for(await bob.ws.ping(), 5)
    await bob.ws.close()
    raw.writer.close()

    # A lobby socket is direct too (JsonConsumer attaches): uvicorn neither pings it nor fails it.
    status, lobby = cluster.http(port, "POST", "/api/lobbies/", {"game": "pong"}, token=tokens["alice"])
    assert status == 201, lobby
    raw = RawClient()
    await raw.connect(port, f"/ws/lobbies/{lobby['code']}/", tokens["alice"], subprotocol=None)
    assert (await raw.read_json())["type"] == "lobby.state"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(3.5):
            await raw.read_frame()
    raw.writer.close()


async def test_lobby_sockets_get_the_direct_sockets_bounds_under_uvicorn(uvicorn_port):
    cluster, port = uvicorn_port
    token = cluster.register(port, "carol")
    status, lobby = cluster.http(port, "POST", "/api/lobbies/", {"game": "pong"}, token=token)
    assert status == 201, lobby
    raw = RawClient()
    await raw.connect(port, f"/ws/lobbies/{lobby['code']}/", token, subprotocol=None)
    assert (await raw.read_json())["type"] == "lobby.state"
    # Empty continuation frames past the fragment bound (64): the too-big code, with DirectSocket's reason.
    raw.send_frame(0x1, b"{", fin=False)
    for _ in range(100):
        raw.send_frame(0x0, b"", fin=False)
    assert await raw.read_close() == (4009, "a message may have at most 64 frames")
