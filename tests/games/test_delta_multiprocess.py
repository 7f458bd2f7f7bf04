"""Protocol v2 across two real daphne processes: a relayed player's delta stream stays exact through a relay that
misses snapshots (it stalls and loses its pub/sub connection to Redis), and a client that loses a delta gets a
keyframe."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import msgpack
import pytest
from websockets.asyncio.client import connect

from bench.load import _socket_inodes, _tcp_table
from games.engine import delta
from games.engine.snapshots import snapshot_body
from tests.games.conftest import as_message
from tests.games.test_multiprocess import owner_port
from tests.games.test_redis_faults import OwnRedis
from tests.procs import drop_database, make_cluster

pytestmark = [pytest.mark.redis, pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
def own_cluster(tmp_path):
    """Two processes on a Redis of the test's own: cutting its pub/sub connections touches nobody else's."""
    directory = tmp_path / "redis"
    directory.mkdir()
    redis_server = OwnRedis(directory, persistent=False)
    redis_server.start()
    cluster = make_cluster(tmp_path, redis_server.url)
    yield cluster, redis_server
    cluster.stop_all()
    drop_database(cluster.env["DATABASE_URL"])
    redis_server.stop()


class Socket:
    """A match socket with everything it received. For v2 it keeps the stream as a client must: `states` is the full
    snapshot body after each keyframe or delta; `drop_next_delta` makes it lose one, as a network might."""

    def __init__(self, port: int, match_id: int, token: str, subprotocol: str):
        self.port, self.match_id, self.token, self.subprotocol = port, match_id, token, subprotocol
        self.messages: list[dict] = []
        self.states: list[dict] = []
        self.n: int | None = None
        self.body: dict | None = None
        self.keyframes_at: list[int] = []  # index in states of each keyframe
        self.drop_next_delta = False
        self.keyframe_requests = 0

    async def open(self) -> None:
        self.ws = await connect(
            f"ws://127.0.0.1:{self.port}/ws/matches/{self.match_id}/", origin="http://127.0.0.1",
            additional_headers={"Authorization": f"Token {self.token}"}, subprotocols=[self.subprotocol],
        )
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message = as_message(msgpack.unpackb(raw, raw=False, strict_map_key=False) if isinstance(raw, bytes) else json.loads(raw))
            self.messages.append(message)
            await self._follow(message)

    async def _follow(self, message: dict) -> None:
        if message["type"] == "snapshot" and "n" in message:
            self.n, self.body, self.keys = message["n"], snapshot_body(message), message.get("keys")
            self.keyframes_at.append(len(self.states))
            self.states.append(self.body)
        elif message["type"] == "delta":
            if self.drop_next_delta:
                self.drop_next_delta = False
                return
            if message["base"] != self.n:
                if self.n is not None:  # a gap: ask once, then wait for the keyframe
                    self.n = None
                    self.keyframe_requests += 1
                    await self.ws.send(json.dumps({"type": "keyframe"}))
                return
            self.n, self.body = message["n"], delta.apply(self.body, message["patch"], self.keys)
            self.states.append(self.body)

    def running_ticks(self, bodies) -> dict[int, tuple]:
        return {b["tick"]: (b["state"], b["acks"]) for b in bodies if b["phase"] == "running"}

    async def wait_for(self, predicate, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, self.messages[-3:]
            await asyncio.sleep(0.02)


def full_snapshots(sock: Socket) -> list[dict]:
    return [snapshot_body(m) for m in sock.messages if m["type"] == "snapshot"]


def assert_same_ticks(v2: Socket, v1: Socket, *, at_least: int) -> None:
    bodies = full_snapshots(v1)
    if v2.subprotocol.endswith("msgpack"):  # v2 msgpack stream frames carry 32-bit floats
        bodies = [msgpack.unpackb(msgpack.packb(body, use_single_float=True)) for body in bodies]
    rebuilt, full = v2.running_ticks(v2.states), v1.running_ticks(bodies)
    common = set(rebuilt) & set(full)
    assert len(common) >= at_least, (sorted(rebuilt)[-3:], sorted(full)[-3:])
    assert all(rebuilt[t] == full[t] for t in common), "a rebuilt state differs from the full snapshot of its tick"


def cut_pubsub_connections(redis_server: OwnRedis, pid: int) -> int:
    """Closes, on the Redis side, the pub/sub connections of one process: what it is sent meanwhile is lost."""
    _, inodes = _socket_inodes(pid)
    ports = {local for inode, (local, _, _) in _tcp_table().items() if inode in inodes}
    client = redis_server.client()
    cut = 0
    for entry in client.client_list():
        if int(entry.get("sub", 0)) + int(entry.get("psub", 0)) and int(entry["addr"].rsplit(":", 1)[1]) in ports:
            client.client_kill_filter(_id=entry["id"])
            cut += 1
    return cut


async def test_a_relayed_v2_player_follows_the_stream_through_a_relay_gap_and_a_lost_delta(own_cluster):
    cluster, redis_server = own_cluster
    port_a, port_b = cluster.start(), cluster.start()
    tokens = {name: cluster.register(port_a, name) for name in ("alice", "bob", "carol")}
    match = cluster.new_match(port_a, "arena", ["alice", "bob"], tokens)  # 120 s: idle players never end it early
    alice = Socket(port_a, match["id"], tokens["alice"], "gs.v2.json")
    await alice.open()
    await alice.wait_for(lambda: alice.states)  # alice's process owns the match before the others come
    bob = Socket(port_b, match["id"], tokens["bob"], "gs.v2.msgpack")
    carol = Socket(port_b, match["id"], tokens["carol"], "gs.v1.json")  # a spectator on the relay, full snapshots
    await bob.open()
    await carol.open()
    assert owner_port(cluster, (port_a, port_b), match["id"]) == port_a

    await bob.wait_for(lambda: len(bob.running_ticks(bob.states)) >= 20)
    assert_same_ticks(bob, carol, at_least=15)
    assert_same_ticks(alice, carol, at_least=15)

    # The relay misses snapshots: it stalls, Redis drops its pub/sub connection meanwhile (as it does to a subscriber
    # past its output buffer limit), and what the owner publishes until it has subscribed again is lost.
    before_cut = len(carol.messages)
    relay = cluster.procs[port_b]
    relay.send_signal(signal.SIGSTOP)
    try:
        assert cut_pubsub_connections(redis_server, relay.pid) >= 1
        await asyncio.sleep(1.5)
    finally:
        relay.send_signal(signal.SIGCONT)

    def jumped() -> bool:
        ticks = [b["tick"] for b in full_snapshots(carol)[-40:] if b["phase"] == "running"]
        return len(carol.messages) > before_cut + 10 and any(b - a >= 5 for a, b in zip(ticks, ticks[1:], strict=False))

    await carol.wait_for(jumped, timeout=20)
    await bob.wait_for(lambda: bob.states[-1]["tick"] > full_snapshots(carol)[-1]["tick"] - 2)
    # The relay diffs each snapshot it gets against the last one it got: the gap is inside one delta, never a
    # delta on a base bob does not hold.
    assert bob.keyframes_at == [0] and bob.keyframe_requests == 0
    assert_same_ticks(bob, carol, at_least=25)

    # A delta lost on the way to the client: it asks, and the relay sends a keyframe within a few ticks.
    held = len(bob.states)
    bob.drop_next_delta = True
    await bob.wait_for(lambda: len(bob.keyframes_at) == 2, timeout=5)
    assert bob.keyframe_requests == 1 and bob.keyframes_at[1] == held
    await bob.wait_for(lambda: len(bob.states) > held + 10)
    assert_same_ticks(bob, carol, at_least=35)
    for sock in (alice, bob, carol):
        await sock.ws.close()
