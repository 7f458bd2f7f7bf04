"""wss:// end to end (docs/security.md, "wss://"): daphne's own TLS endpoint and nginx terminating TLS, real clients.

In process: what deploy/daphne_ws.py relies on in Twisted's TLS transport (public producer API only); these fail, with
a message saying so, if a Twisted upgrade changes it. Real processes: a match, a spectator and a lobby over wss:// on
daphne's TLS endpoint (match sockets in direct mode), a client that stops reading over TLS, and nginx terminating TLS
in front of two daphne processes. The certificates come from a test CA (trustme), trusted by the clients only.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import trustme
from twisted.internet import ssl as twisted_ssl
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from websockets.asyncio.client import connect
from zope.interface import implementer

from deploy.boundary_daphne import is_plain_tcp
from deploy.daphne_ws import _can_go_direct, _TwistedTransport
from deploy.nginx import render, standalone
from gameserver.directws import HIGH_WATER_BYTES, MAX_BUFFERED_BYTES, OP_TEXT, DirectSocket, encode_frame
from tests.deploy.test_uvicorn import TOO_BIG_REASON
from tests.games.test_multiprocess import Player
from tests.procs import free_port, wait_for_port
from tests.wsraw import RawClient

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca) -> trustme.LeafCert:
    return ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def tls_files(server_cert, tmp_path_factory) -> tuple[Path, Path]:
    """(certificate chain, private key) PEM files for the server."""
    folder = tmp_path_factory.mktemp("tls")
    chain, key = folder / "chain.pem", folder / "key.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in server_cert.cert_chain_pems))
    server_cert.private_key_pem.write_to_path(str(key))
    return chain, key


@pytest.fixture(scope="module")
def client_tls(ca) -> ssl.SSLContext:
    """A client's context that trusts the test CA, and verifies the certificate and host name as usual."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


# --- Twisted's TLS transport, as deploy/daphne_ws.py uses it (in process) ------------------------------------------


class _Sink:
    def on_message(self, text, data) -> None:
        pass


@implementer(IPushProducer)
class _HttpChannel:
    """Stands for twisted.web's HTTPChannel, which registers itself as its transport's producer."""

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted's name
        raise AssertionError("the HTTP channel should no longer be the transport's producer")

    resumeProducing = stopProducing = pauseProducing  # noqa: N815 - Twisted's names


def _tls_connection(ca, server_cert):
    """A server-side TLSMemoryBIOProtocol over an in-memory transport, after a real TLS handshake with a client:
    (the server's TLS transport, the in-memory transport under it, a function that moves bytes both ways)."""
    pem = b"".join(blob.bytes() for blob in server_cert.cert_chain_pems) + server_cert.private_key_pem.bytes()
    server_options = twisted_ssl.PrivateCertificate.loadPEM(pem).options()
    client_options = twisted_ssl.optionsForClientTLS("localhost", trustRoot=twisted_ssl.Certificate.loadPEM(ca.cert_pem.bytes()))
    server = TLSMemoryBIOFactory(server_options, False, Factory.forProtocol(Protocol)).buildProtocol(None)
    client = TLSMemoryBIOFactory(client_options, True, Factory.forProtocol(Protocol)).buildProtocol(None)
    server_wire, client_wire = StringTransport(), StringTransport()
    server.makeConnection(server_wire)
    client.makeConnection(client_wire)

    def pump() -> None:
        for _ in range(10):
            moved = False
            for wire, peer in ((client_wire, server), (server_wire, client)):
                data = wire.value()
                if data:
                    wire.clear()
                    peer.dataReceived(data)
                    moved = True
            if not moved:
                return

    pump()
    return server, server_wire, pump


def test_a_tls_transport_is_not_taken_for_plain_tcp(ca, server_cert):
    server, _, _ = _tls_connection(ca, server_cert)
    # The wrapper forwards unknown attributes to the connection under it: duck typing would see a plain socket.
    assert not is_plain_tcp(server)
    assert _can_go_direct(server), "Twisted's TLS transport is no longer TLSMemoryBIOProtocol: review _can_go_direct"
    assert not _can_go_direct(StringTransport()), "an unknown transport must keep the ASGI path"


def test_twisted_tls_passes_a_full_buffer_on_to_the_direct_socket(ca, server_cert):
    server, wire, _ = _tls_connection(ca, server_cert)
    adapter = _TwistedTransport(server)
    direct = DirectSocket(adapter)
    direct.attach(_Sink(), max_message_bytes=4096)
    assert direct.opened()
    server.registerProducer(_HttpChannel(), True)  # daphne leaves the channel that served the upgrade registered
    adapter.follow_buffer(Deferred())
    assert wire.producer is not None and wire.streaming, (
        "TLSMemoryBIOProtocol.registerProducer no longer registers a streaming producer with the TCP transport: "
        "deploy/daphne_ws.py _TwistedTransport cannot learn of a client that stops reading"
    )
    snapshot = encode_frame(OP_TEXT, b"s" * 1000)
    assert direct.send_wire(snapshot, droppable=True)

    wire.producer.pauseProducing()  # what the TCP transport does when its buffer is full
    assert adapter.paused, "Twisted's TLS layer no longer passes pauseProducing on to its producer"
    written = 0
    while direct.send_wire(snapshot, droppable=True):
        written += len(snapshot)
    assert HIGH_WATER_BYTES <= written <= HIGH_WATER_BYTES + len(snapshot)  # then snapshots are skipped
    assert direct.skipped_frames == 1 and direct.is_open

    wire.producer.resumeProducing()  # the client has read it all
    assert not adapter.paused and adapter.buffered_bytes() == 0
    assert direct.send_wire(snapshot, droppable=True)

    wire.producer.pauseProducing()
    reply = encode_frame(OP_TEXT, b"r" * 1000)
    written = 0
    while direct.is_open and written < 2 * MAX_BUFFERED_BYTES:
        direct.send_wire(reply)  # replies are never skipped: past the hard limit, the client is dropped
        written += len(reply)
    assert not direct.is_open and wire.disconnected, "a client that reads nothing was not dropped"
    assert MAX_BUFFERED_BYTES <= written <= MAX_BUFFERED_BYTES + 2 * len(reply)


async def test_closing_a_direct_tls_socket_closes_the_connection(ca, server_cert):
    server, wire, pump = _tls_connection(ca, server_cert)
    adapter = _TwistedTransport(server)
    adapter.follow_buffer(Deferred())
    adapter.close()
    pump()  # our close_notify out, the client's back
    # A TLS transport with a producer registered would wait for ever for it to be unregistered.
    assert wire.producer is None and wire.disconnecting, "closing a TLS socket in direct mode did not close it"


async def test_a_client_that_never_answers_the_tls_close_is_cut_off(ca, server_cert, monkeypatch):
    monkeypatch.setattr(_TwistedTransport, "close_timeout", 0.05)
    server, wire, _ = _tls_connection(ca, server_cert)
    adapter = _TwistedTransport(server)
    adapter.follow_buffer(Deferred())
    adapter.close()  # the client never sends its close_notify
    assert not wire.disconnecting
    await asyncio.sleep(0.2)
    assert wire.disconnected, "a TLS connection waited for ever for the client's close_notify"


# --- daphne's own TLS endpoint (a real process) --------------------------------------------------------------------


def https(port: int, context: ssl.SSLContext, method: str, path: str, body: dict | None = None,
          token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **({"Authorization": f"Token {token}"} if token else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def register(port: int, context: ssl.SSLContext, stem: str) -> tuple[str, str]:
    """A new user (the server is shared by the module's tests): (username, token)."""
    username = f"{stem}{uuid.uuid4().hex[:6]}"
    status, body = https(port, context, "POST", "/api/auth/register/", {"username": username, "password": PASSWORD})
    assert status == 201, body
    return username, body["token"]


def new_pong_match(port: int, context: ssl.SSLContext) -> tuple[dict, list[str]]:
    """A pong match for two new users, over HTTPS: (the match, the players' tokens)."""
    (alice, alice_token), (bob, bob_token) = register(port, context, "alice"), register(port, context, "bob")
    status, match = https(port, context, "POST", "/api/matches/", {"game": "pong", "players": [alice, bob]}, alice_token)
    assert status == 201, match
    status, match = https(port, context, "POST", f"/api/matches/{match['id']}/accept/", None, bob_token)  # the invitation
    assert status == 200 and match["status"] == "waiting", match
    return match, [alice_token, bob_token]


class WssPlayer(Player):
    """tests.games.test_multiprocess.Player over wss://."""

    def __init__(self, port: int, match_id: int, token: str, context: ssl.SSLContext):
        super().__init__(port, match_id, token)
        self.context = context

    async def connect(self, port: int | None = None) -> None:
        self.port = port or self.port
        self.ws = await connect(
            f"wss://127.0.0.1:{self.port}/ws/matches/{self.match_id}/", ssl=self.context, origin="https://127.0.0.1",
            additional_headers={"Authorization": f"Token {self.token}"}, subprotocols=["gs.v1.json"],
        )
        self.close_code = None
        self.reader = asyncio.create_task(self._read())


@pytest.fixture(scope="module")
def tls_server(tls_files, module_servers):
    """One `python -m deploy.daphne_ws -e ssl:...` process for the module, on the embedded defaults (no Redis)."""
    # The slow reader below fills the server's buffers with pongs, as fast as it can: neither the frame rate limit nor
    # the pongs-per-read bound may cut in first (it tests the transport, not the ping policy).
    return module_servers.daphne(tls=tls_files, WS_MAX_FRAMES="100000000", WS_PONGS_PER_READ="100000")


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_match_plays_over_wss_on_daphnes_tls_endpoint(tls_server, client_tls):
    cluster, port = tls_server
    match, tokens = new_pong_match(port, client_tls)
    alice, bob = (WssPlayer(port, match["id"], token, client_tls) for token in tokens)
    await alice.connect()
    await bob.connect()
    _, welcome = await alice.wait_for(lambda m: m["type"] == "welcome", timeout=5)
    assert welcome["seat"] == 0 and welcome["role"] == "player"
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running", timeout=15)
    await alice.ws.send(json.dumps({"type": "input", "seq": 7, "input": {"dy": 1}}))
    await bob.wait_for(lambda m: m["type"] == "snapshot" and m["acks"][0] == 7, timeout=5)
    await asyncio.wait_for(await alice.ws.ping(b"over TLS"), 5)  # a WebSocket ping, answered by the direct socket

    _, carol_token = register(port, client_tls, "carol")
    carol = WssPlayer(port, match["id"], carol_token, client_tls)
    await carol.connect()
    _, welcome = await carol.wait_for(lambda m: m["type"] == "welcome", timeout=5)
    assert welcome["role"] == "spectator" and welcome["seat"] is None
    await carol.wait_for(lambda m: m["type"] == "snapshot" and m["acks"][0] == 7, timeout=5)
    for player in (alice, bob, carol):
        await player.ws.close()
    assert f"WSCONNECT /ws/matches/{match['id']}/" in cluster.log_of(port)


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_match_sockets_over_tls_take_the_direct_path(tls_server, client_tls):
    """Only the direct path refuses an oversize message from its frame header alone (autobahn waits for the payload):
    the socket over TLS is direct."""
    _, port = tls_server
    match, tokens = new_pong_match(port, client_tls)
    raw = RawClient()
    await raw.connect(port, f"/ws/matches/{match['id']}/", tokens[0], tls=client_tls)
    raw.send_frame(0x1, b"", declared=5000)
    assert await raw.read_close() == (4009, TOO_BIG_REASON)


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_lobby_socket_works_over_wss(tls_server, client_tls):
    _, port = tls_server
    _, token = register(port, client_tls, "dave")
    status, lobby = https(port, client_tls, "POST", "/api/lobbies/", {"game": "pong"}, token)
    assert status == 201, lobby
    async with connect(f"wss://127.0.0.1:{port}/ws/lobbies/{lobby['code']}/", ssl=client_tls, origin="https://127.0.0.1",
                       additional_headers={"Authorization": f"Token {token}"}) as ws:
        state = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert state["type"] == "lobby.state" and state["lobby"]["code"] == lobby["code"]
        await ws.send(json.dumps({"type": "chat", "text": "hello over TLS"}))
        chat = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert chat["type"] == "lobby.chat" and chat["text"] == "hello over TLS"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def ping_without_reading(port: int, context: ssl.SSLContext, path: str, token: str, *, max_bytes: int,
                         max_seconds: float) -> tuple[bool, int, float]:
    """A wss:// client with a small receive window that sends WebSocket pings (125-byte payloads) and never reads
    their pongs: `max_bytes` of them at once, then one every 0.1 s, until the server drops the connection or
    `max_seconds` pass. Blocking, for a thread: (whether the server dropped it, bytes sent, seconds)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(max_seconds)  # a server that stopped reading would block sendall: the test fails on the timeout
    sock.connect(("127.0.0.1", port))
    tls = context.wrap_socket(sock, server_hostname="127.0.0.1")
    tls.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: gs.v1.json\r\n"
        f"Origin: https://127.0.0.1\r\nAuthorization: Token {token}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += tls.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    ping = bytes([0x89, 0x80 | 125]) + b"\x00\x00\x00\x00" + os.urandom(125)  # the zero mask leaves it as it is
    block = ping * 256
    sent, started = 0, time.monotonic()
    try:
        while sent < max_bytes:
            tls.sendall(block)
            sent += len(block)
        while time.monotonic() - started < max_seconds:
            time.sleep(0.1)
            tls.sendall(ping)  # fails once the server has reset the connection
            sent += len(ping)
    except (ConnectionError, ssl.SSLError):
        return True, sent, time.monotonic() - started
    finally:
        tls.close()
    return False, sent, time.monotonic() - started


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_client_that_stops_reading_over_tls_is_dropped_and_the_match_plays_on(tls_server, client_tls):
    cluster, port = tls_server
    match, tokens = new_pong_match(port, client_tls)
    alice, bob = (WssPlayer(port, match["id"], token, client_tls) for token in tokens)
    await alice.connect()
    await bob.connect()
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running", timeout=15)
    _, eve_token = register(port, client_tls, "eve")
    pid = cluster.procs[port].pid
    rss_before = rss_bytes(pid)
    attack_started = time.monotonic()

    dropped, sent, seconds = await asyncio.to_thread(
        ping_without_reading, port, client_tls, f"/ws/matches/{match['id']}/", eve_token,
        max_bytes=16 * 2**20, max_seconds=40,
    )
    rss_growth = rss_bytes(pid) - rss_before
    arrivals = [t for t, m in alice.messages if m["type"] == "snapshot" and t >= attack_started]
    gaps = [b - a for a, b in itertools.pairwise([attack_started, *arrivals])]
    print(f"slow TLS reader: dropped={dropped} after {sent / 2**20:.1f} MiB of pings in {seconds:.1f} s; "
          f"server RSS +{rss_growth / 2**20:.1f} MiB; largest snapshot gap for a player {max(gaps, default=0):.2f} s")
    assert dropped, f"the server kept a client that reads nothing ({sent / 2**20:.0f} MiB of pings sent)"
    assert cluster.procs[port].poll() is None
    assert rss_growth < 64 * 2**20
    last_tick = max(m["tick"] for m in alice.snapshots())
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["tick"] > last_tick, timeout=5)
    assert gaps and max(gaps) < 1.5, f"a player of the match waited {max(gaps):.2f} s for a snapshot"
    await alice.ws.close()
    await bob.ws.close()


# --- nginx terminating TLS in front of two daphne processes ------------------------------------------------------


@pytest.fixture
def tls_front(nginx_binary, cluster, tls_files, tmp_path):
    """nginx on https:// (and a plain-HTTP redirect) in front of two plain-HTTP daphne processes."""
    upstreams = [cluster.start(), cluster.start()]
    port, redirect_port = free_port(), free_port()
    runtime = tmp_path / "nginx"
    runtime.mkdir()
    chain, key = tls_files
    (runtime / "gameserver.conf").write_text(render(
        listen=f"127.0.0.1:{port}", upstreams=[f"127.0.0.1:{p}" for p in upstreams], certificate=str(chain),
        certificate_key=str(key), redirect_http=f"127.0.0.1:{redirect_port}",
    ))
    (runtime / "nginx.conf").write_text(standalone(http_config_path=str(runtime / "gameserver.conf"), runtime_dir=str(runtime)))
    proc = subprocess.Popen([nginx_binary, "-p", str(runtime), "-c", str(runtime / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=open(runtime / "stderr.log", "wb"))
    try:
        wait_for_port(port, proc)
        yield port, redirect_port, upstreams
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.redis
@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_match_plays_over_wss_through_nginx_terminating_tls(cluster, tls_front, client_tls):
    port, redirect_port, upstreams = tls_front
    match, tokens = new_pong_match(port, client_tls)
    alice, bob = (WssPlayer(port, match["id"], token, client_tls) for token in tokens)
    await alice.connect()
    await bob.connect()
    _, welcome = await bob.wait_for(lambda m: m["type"] == "welcome", timeout=5)
    assert welcome["seat"] == 1
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running", timeout=15)
    await alice.ws.send(json.dumps({"type": "input", "seq": 3, "input": {"dy": -1}}))
    await bob.wait_for(lambda m: m["type"] == "snapshot" and m["acks"][0] == 3, timeout=5)
    # Both sockets reached the process that runs the match, on plain HTTP behind nginx: the direct path on TCP.
    counts = sorted(cluster.log_of(p).count(f"WSCONNECT /ws/matches/{match['id']}/") for p in upstreams)
    assert counts == [0, 2], counts
    await alice.ws.close()
    await bob.ws.close()

    # Plain HTTP only redirects to https://.
    request = urllib.request.Request(f"http://127.0.0.1:{redirect_port}/api/games/")
    opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,), {
        "redirect_request": lambda self, *args, **kwargs: None}))
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(request, timeout=10)
    assert redirect.value.code == 301
    assert redirect.value.headers["Location"] == "https://127.0.0.1/api/games/"


# --- uvicorn's own TLS (asyncio's SSL transport: get_write_buffer_size is public, nothing to adapt) ---------------


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_match_plays_over_wss_on_uvicorn_with_its_own_tls(tls_files, client_tls, servers):
    chain, key = tls_files
    cluster, port = servers.uvicorn("--ssl-certfile", str(chain), "--ssl-keyfile", str(key))
    match, tokens = new_pong_match(port, client_tls)
    alice, bob = (WssPlayer(port, match["id"], token, client_tls) for token in tokens)
    await alice.connect()
    await bob.connect()
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running", timeout=15)
    await alice.ws.send(json.dumps({"type": "input", "seq": 5, "input": {"dy": 1}}))
    await bob.wait_for(lambda m: m["type"] == "snapshot" and m["acks"][0] == 5, timeout=5)
    await alice.ws.close()
    await bob.ws.close()
    # The direct path: refused from the frame header alone, with DirectSocket's reason.
    raw = RawClient()
    await raw.connect(port, f"/ws/matches/{match['id']}/", tokens[0], tls=client_tls)
    raw.send_frame(0x1, b"", declared=5000)
    assert await raw.read_close() == (4009, TOO_BIG_REASON)
    assert "Traceback" not in cluster.log_of(port), cluster.log_of(port)
