"""Protocol v2 match sockets: a keyframe, then deltas shared by the match's sockets; a keyframe again when a socket
skipped a snapshot or asks for one; v1 sockets beside them get full snapshots as before."""

from __future__ import annotations

import json
import time

import msgpack
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from games.engine import delta, protocol
from games.engine.protocol import MAX_RATE_VIOLATIONS, RATE_BURST
from games.engine.snapshots import snapshot_body
from gameserver.directws import EXTENSION, HIGH_WATER_BYTES, OP_TEXT, DirectSocket
from gameserver.ws import CloseCode
from tests.games.conftest import ORIGIN, Client, as_message, connect, create_match, token_header
from tests.wsraw import encode_client_frame

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def pong_match(quick_games, alice, bob):
    return await database_sync_to_async(create_match)("pong-quick", [alice, bob])


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ([], ("", 1, False)),
        (["gs.v2.json", "gs.v1.json"], ("gs.v2.json", 2, False)),
        (["gs.v1.json", "gs.v2.json"], ("gs.v1.json", 1, False)),  # the client's order of preference
        (["gs.v9.json", "gs.v2.msgpack"], ("gs.v2.msgpack", 2, True)),
        (["gs.v9.json"], None),
    ],
)
def test_subprotocol_negotiation(offered, chosen):
    assert protocol.choose_subprotocol(offered) == chosen


class StreamReader:
    """What a v2 client keeps: the state of the last keyframe with every delta since applied to it."""

    def __init__(self):
        self.n: int | None = None
        self.body: dict | None = None
        self.keys: list[str] | None = None  # msgpack: the key table of the last keyframe
        self.keyframes = 0
        self.deltas = 0

    def take(self, message: dict) -> dict | None:
        """The full snapshot body this message gives, or None for other messages (and the join snapshot)."""
        if message["type"] == "snapshot" and "n" in message:
            self.n, self.body, self.keys = message["n"], snapshot_body(message), message.get("keys")
            self.keyframes += 1
            return self.body
        if message["type"] == "delta":
            assert message["base"] == self.n, f"a delta on {message['base']} sent to a socket holding {self.n}"
            self.n, self.body = message["n"], delta.apply(self.body, message["patch"], self.keys)
            self.deltas += 1
            return self.body
        return None


def is_subsequence(part: list, whole: list) -> bool:
    it = iter(whole)
    return all(any(item == other for other in it) for item in part)


async def read_until_over(client: Client, limit: int = 400) -> list[dict]:
    messages = []
    for _ in range(limit):
        message = await client.receive(5)
        messages.append(message)
        if message["type"] in ("match_end", "__closed__"):
            return messages
    raise AssertionError("the match did not end")


@pytest.mark.parametrize("subprotocol", ["gs.v2.json", "gs.v2.msgpack"])
async def test_v2_gets_a_keyframe_then_deltas_that_rebuild_every_v1_snapshot(engine_host, pong_match, alice, bob, subprotocol):
    a = await connect(alice, pong_match.pk, subprotocols=[subprotocol, "gs.v1.json"])
    welcome = await a.receive()
    assert (welcome["type"], welcome["v"]) == ("welcome", 2)
    assert welcome["encoding"] == ("msgpack" if subprotocol.endswith("msgpack") else "json")
    b = await connect(bob, pong_match.pk)  # no subprotocol: v1
    assert (await b.receive())["v"] == 1
    v2 = []
    reader = StreamReader()
    while (reader.body or {}).get("phase") != "running":
        v2.append(await a.receive())
        reader.take(v2[-1])
    await a.send({"type": "input", "seq": 1, "input": {"dy": 1}})
    v2 += await read_until_over(a)
    v1 = await read_until_over(b)

    assert not [m for m in v1 if m["type"] == "delta" or "n" in m], "v1 sockets get full snapshots only"
    full = [snapshot_body(m) for m in v1 if m["type"] == "snapshot"]
    if subprotocol.endswith("msgpack"):  # v2 msgpack stream frames carry 32-bit floats
        full = [msgpack.unpackb(msgpack.packb(body, use_single_float=True)) for body in full]
    reader = StreamReader()
    rebuilt = [body for body in map(reader.take, v2) if body is not None]
    assert reader.keyframes == 1 and reader.deltas >= 30
    # Alice's first snapshots came before Bob joined; from his first one on, both sockets saw the same ticks.
    common = next(i for i, body in enumerate(rebuilt) if body in full)
    assert common <= 3
    assert is_subsequence(rebuilt[common:], full), "a rebuilt state differs from the v1 snapshot of the same tick"
    assert len(rebuilt) - common >= len(full) - 3
    assert rebuilt[-1]["phase"] == "finished" and rebuilt[-1]["acks"][0] == 1
    assert v2[-1]["type"] == "match_end"
    assert await a.closed_with() == CloseCode.MATCH_OVER


async def test_deltas_are_smaller_than_snapshots_and_carry_events(engine_host, pong_match, alice, bob):
    a = await connect(alice, pong_match.pk, subprotocols=["gs.v2.json"])
    b = await connect(bob, pong_match.pk, subprotocols=["gs.v2.json"])
    messages = await read_until_over(a)
    await read_until_over(b)
    deltas = [m for m in messages if m["type"] == "delta"]
    snapshots = [m for m in messages if m["type"] == "snapshot"]
    assert max(len(json.dumps(m)) for m in deltas) < min(len(json.dumps(m)) for m in snapshots)
    assert any(m.get("events") for m in deltas), "pong's bounces come as events in deltas"


async def test_a_keyframe_request_gets_the_next_snapshot_whole(engine_host, pong_match, alice, bob):
    a = await connect(alice, pong_match.pk, subprotocols=["gs.v2.json"])
    b = await connect(bob, pong_match.pk, subprotocols=["gs.v2.json"])
    reader = StreamReader()
    while reader.deltas < 5:
        reader.take(await a.receive())
    held = reader.n
    await a.send({"type": "keyframe"})
    while True:
        message = await a.receive()
        if message["type"] in ("snapshot", "delta"):
            break
    # Deltas already on their way may come first; the keyframe follows within a tick.
    while message["type"] == "delta":
        reader.take(message)
        message = await a.receive()
    assert message["type"] == "snapshot" and message["n"] > held
    assert message["n"] - held <= 3
    await a.close()
    await b.close()


async def test_v1_sockets_do_not_know_keyframe_requests(engine_host, pong_match, alice):
    a = await connect(alice, pong_match.pk)
    await a.send({"type": "keyframe"})
    error = await a.until(lambda m: m["type"] == "error")
    assert error["error"] == "unknown_type"
    await a.close()


async def test_keyframe_request_spam_is_rate_limited_and_costs_one_keyframe_a_tick(engine_host, pong_match, alice, bob):
    a = await connect(alice, pong_match.pk, subprotocols=["gs.v2.json"])
    b = await connect(bob, pong_match.pk, subprotocols=["gs.v2.json"])
    await a.until(lambda m: m["type"] == "delta")
    started = time.monotonic()
    for _ in range(int(RATE_BURST) + MAX_RATE_VIOLATIONS + 1):
        await a.send({"type": "keyframe"})
    messages = []
    while True:
        message = await a.receive()
        messages.append(message)
        if message["type"] == "__closed__":
            break
    elapsed = time.monotonic() - started
    assert message["code"] == CloseCode.RATE_LIMITED
    assert [m["error"] for m in messages if m["type"] == "error"] == ["rate_limited"]
    keyframes = [m for m in messages if m["type"] == "snapshot"]
    assert len(keyframes) <= elapsed * 30 + 2  # pong-quick ticks at 30 Hz: at most one keyframe a tick
    await b.close()


# --- direct sockets (the daphne_ws path): a slow client skips snapshots ----------------------------------------------


class BackloggedTransport:
    """The server's connection as DirectSocket sees it, with a write backlog the test sets (a client not reading)."""

    def __init__(self):
        self.written = bytearray()
        self.buffered = 0

    def write(self, data: bytes) -> None:
        self.written += data

    def buffered_bytes(self) -> int:
        return self.buffered

    def close(self) -> None: ...

    def write_eof(self) -> None: ...

    def abort(self) -> None: ...

    def messages(self) -> list[dict]:
        out, data = [], bytes(self.written)
        while data:
            opcode, length, at = data[0] & 0x0F, data[1] & 0x7F, 2
            if length == 126:
                length, at = int.from_bytes(data[2:4]), 4
            elif length == 127:
                length, at = int.from_bytes(data[2:10]), 10
            payload, data = data[at : at + length], data[at + length :]
            if opcode == OP_TEXT:
                out.append(as_message(json.loads(payload)))
        return out


def direct_application(sock: DirectSocket):
    """The application as deploy/daphne_ws.py runs it: the socket is offered as the extension, the handshake completes
    on websocket.accept, and from then on everything the consumer sends goes through the DirectSocket."""
    from gameserver.asgi import application

    async def app(scope, receive, send):
        scope = {**scope, "extensions": {**scope.get("extensions", {}), EXTENSION: {"socket": sock}}}

        async def through_socket(message):
            if message["type"] == "websocket.accept":
                await send(message)
                sock.opened()
            elif sock.active:
                sock.send_asgi(message)
            else:
                await send(message)

        return await application(scope, receive, through_socket)

    return app


async def test_a_client_that_skipped_a_snapshot_gets_a_keyframe_next(engine_host, pong_match, alice, bob):
    transport = BackloggedTransport()
    sock = DirectSocket(transport)
    comm = WebsocketCommunicator(
        direct_application(sock), f"/ws/matches/{pong_match.pk}/", headers=[ORIGIN, await token_header(alice)],
        subprotocols=["gs.v2.json"],
    )
    assert (await comm.connect())[0]
    b = await connect(bob, pong_match.pk, subprotocols=["gs.v2.json"])
    reader_b = StreamReader()
    while reader_b.deltas < 5:
        reader_b.take(await b.receive())

    transport.buffered = HIGH_WATER_BYTES + 1  # alice stops reading: her snapshots without events are skipped
    sent_before = len(transport.messages())
    while reader_b.deltas < 10:
        reader_b.take(await b.receive())
    transport.buffered = 0
    while reader_b.deltas < 15:
        reader_b.take(await b.receive())
    sock.feed(encode_client_frame(OP_TEXT, b'{"type": "ping", "t": 7}'))  # the direct path reads too

    messages = transport.messages()
    assert messages[0]["type"] == "welcome" and messages[0]["v"] == 2
    assert any(m["type"] == "pong" and m["t"] == 7 for m in messages)
    stream = [m for m in messages if m["type"] == "delta" or (m["type"] == "snapshot" and "n" in m)]
    numbers = [m["n"] for m in stream]
    gap = next(i for i in range(len(stream)) if i >= 1 and numbers[i] > numbers[i - 1] + 1 and i >= sent_before - 3)
    assert stream[gap]["type"] == "snapshot", "after skipped snapshots the socket gets a keyframe, not a delta"
    reader = StreamReader()
    for message in stream:
        reader.take(message)  # asserts every delta's base is the number the socket holds
    assert reader.keyframes == 2
    await comm.disconnect()
    await b.close()


async def test_v2_msgpack_deltas_are_binary(engine_host, pong_match, alice, bob):
    a = await connect(alice, pong_match.pk, subprotocols=["gs.v2.msgpack"])
    b = await connect(bob, pong_match.pk, subprotocols=["gs.v2.json"])
    await a.receive()
    for _ in range(20):
        output = await a.comm.receive_output(3)
        assert output.get("bytes") is not None
        if as_message(msgpack.unpackb(output["bytes"], raw=False, strict_map_key=False))["type"] == "delta":
            break
    else:
        raise AssertionError("no delta")
    await a.close()
    await b.close()


def test_a_tick_goes_to_the_players_before_the_spectators():
    """200 spectators' writes take milliseconds: the players' snapshots must not wait behind them."""
    from games.engine.fanout import LocalSockets

    sent = []

    class Sock:
        def __init__(self, seat):
            self.match_id, self.seat = 1, seat
            self.out = self
            self.deltas, self.binary, self.snapshot_n = False, False, None

        def send(self, frame):
            sent.append(self.seat)

    sockets = LocalSockets()
    spectators = [Sock(None) for _ in range(20)]
    players = [Sock(seat) for seat in range(4)]
    for sock in [*spectators[:10], *players[:2], *spectators[10:], *players[2:]]:
        sockets.add(sock)
    sockets.fan_out(1, protocol.Frame({"type": "snapshot", "tick": 1}))
    assert sorted(sent[:4]) == [0, 1, 2, 3] and sent[4:] == [None] * 20
    sockets.discard(players[0])
    sent.clear()
    sockets.fan_out(1, protocol.Frame({"type": "snapshot", "tick": 2}))
    assert sorted(sent[:3]) == [1, 2, 3] and len(sent) == 23


def test_between_ticks_the_stream_keeps_no_snapshot_and_the_next_delta_fits():
    """After a tick's fan-out (sent()) the stream lets go of the snapshot, which is freed then, while in the cache;
    what the next delta needs it keeps per format (delta.Shadow), for the formats whose sockets were sent the number:
    a socket of another format gets a keyframe, which fits as well, never a patch against nothing."""
    import sys

    from games.engine.snapshots import SnapshotStream

    def snapshot(tick):
        return protocol.Frame({"type": "snapshot", "tick": tick, "state": {"x": tick}}, droppable=True)

    stream = SnapshotStream()
    one = snapshot(1)
    held = sys.getrefcount(one.message)
    stream.advance(one)
    first = stream.frame_for(None, binary=False)
    assert first.message["n"] == 1 and first.message["state"] == {"x": 1}
    during = sys.getrefcount(one.message)  # (counted outside the asserts: pytest's rewriting holds what they read)
    stream.sent()
    after = sys.getrefcount(one.message)
    assert during == held + 1 and after == held  # the stream held it until sent(), and holds nothing of it after
    stream.advance(snapshot(2))
    patch = stream.frame_for(1, binary=False)
    assert patch.message == [2, {"tick": 2, "state": {"x": 2}}]
    assert stream.frame_for(1, binary=False) is patch  # shared by every socket of the tick
    late = stream.frame_for(1, binary=True)  # no msgpack socket was sent number 1
    assert late.message["n"] == 2 and late.message["tick"] == 2 and "keys" in late.message
    stream.sent()
    stream.advance(snapshot(3))
    assert stream.frame_for(2, binary=False).message == [3, {"tick": 3, "state": {"x": 3}}]
    # A msgpack socket was sent number 2: a delta now, written as msgpack by the diff itself (no message object).
    numbered = msgpack.unpackb(stream.frame_for(2, binary=True).binary(), strict_map_key=False)
    assert numbered == [3, {late.message["keys"].index("tick"): 3, late.message["keys"].index("state"): {
        late.message["keys"].index("x"): 3}}]
    stream.sent()
    stream.advance(snapshot(4))
    assert msgpack.unpackb(stream.frame_for(3, binary=True).binary(), strict_map_key=False)[0] == 4
    stream.sent()  # no JSON socket was sent number 4
    stream.advance(snapshot(5))
    assert stream.frame_for(4, binary=False).message["n"] == 5
