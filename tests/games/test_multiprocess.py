"""Two real daphne processes on the real Redis: one match played across both, then its owner SIGKILLed or SIGTERMed."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = [pytest.mark.redis, pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.timeout(120)]


class Player:
    """One player's socket and everything it received, with arrival times."""

    read_error: Exception | None = None  # what broke reading the socket, other than a close (wait_for reports it)

    def __init__(self, port: int, match_id: int, token: str):
        self.port, self.match_id, self.token = port, match_id, token
        self.messages: list[tuple[float, dict]] = []
        self.close_code: int | None = None

    async def connect(self, port: int | None = None) -> None:
        self.port = port or self.port
        self.ws = await connect(
            f"ws://127.0.0.1:{self.port}/ws/matches/{self.match_id}/",
            origin="http://127.0.0.1",
            additional_headers={"Authorization": f"Token {self.token}"},
            subprotocols=["gs.v1.json"],
        )
        self.close_code = None
        self.read_error = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.messages.append((time.monotonic(), json.loads(raw)))
        except ConnectionClosed:
            pass  # an abnormal close (a killed server): close_code says which
        except Exception as exc:  # anything else is a broken message or a broken test: wait_for reports it
            self.read_error = exc
        self.close_code = self.ws.close_code

    def snapshots(self, since: float = 0.0) -> list[dict]:
        return [m for t, m in self.messages if m["type"] == "snapshot" and m["phase"] == "running" and t >= since]

    async def wait_for(self, predicate, timeout: float) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            assert self.read_error is None, f"reading the socket failed: {self.read_error!r}"
            for stamp, message in self.messages[seen:]:
                if predicate(message):
                    return stamp, message
            seen = len(self.messages)
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out; last messages: {[(m['type'], m.get('phase'), m.get('tick')) for _, m in self.messages[-5:]]}")


def owner_port(cluster, ports, match_id) -> int:
    """The process that took the match last (on a loaded machine a stalled owner can lose it to the other)."""
    starts = [
        (line[:23], port)
        for port in ports
        for line in cluster.log_of(port).splitlines()
        if f"match {match_id}: running here" in line
    ]
    assert starts, "no process runs the match"
    return max(starts)[1]


async def start_match_across_processes(cluster):
    port_a, port_b = cluster.start(), cluster.start()
    token_a, token_b = cluster.register(port_a, "alice"), cluster.register(port_b, "bob")
    match = cluster.new_match(port_a, "pong", ["alice", "bob"], {"alice": token_a, "bob": token_b})
    alice, bob = Player(port_a, match["id"], token_a), Player(port_b, match["id"], token_b)
    await alice.connect()
    await bob.connect()
    for player in (alice, bob):
        await player.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running" and m["tick"] >= 20, timeout=15)
    return (port_a, port_b), match["id"], alice, bob


def assert_identical_ticks(alice: Player, bob: Player) -> None:
    seen_a = {m["tick"]: (m["state"], m["acks"]) for m in alice.snapshots()}
    seen_b = {m["tick"]: (m["state"], m["acks"]) for m in bob.snapshots()}
    common = set(seen_a) & set(seen_b)
    assert len(common) >= 10, (sorted(seen_a)[-5:], sorted(seen_b)[-5:])
    assert all(seen_a[tick] == seen_b[tick] for tick in common)


async def test_players_on_two_processes_see_the_same_ticks_and_survive_sigkill_of_the_owner(cluster):
    ports, match_id, alice, bob = await start_match_across_processes(cluster)
    assert_identical_ticks(alice, bob)

    owner = owner_port(cluster, ports, match_id)
    survivor = ports[1] if owner == ports[0] else ports[0]
    on_owner, on_survivor = (alice, bob) if alice.port == owner else (bob, alice)
    last_tick = max(m["tick"] for m in on_survivor.snapshots())
    killed_at = time.monotonic()
    cluster.kill(owner, signal.SIGKILL)
    cluster.procs[owner].wait(timeout=5)

    await on_owner.reader
    await on_owner.connect(survivor)  # the dropped player reconnects to any process
    resumed_at, resumed = await on_survivor.wait_for(
        lambda m: m["type"] == "snapshot" and m["phase"] == "running" and m["tick"] > last_tick, timeout=10
    )
    takeover = resumed_at - killed_at
    print(f"takeover after SIGKILL: {takeover:.2f} s (ticks {last_tick} -> {resumed['tick']})")
    assert takeover < 3.0
    ticks = [m["tick"] for m in on_survivor.snapshots()]
    assert ticks == sorted(ticks)  # no rollback: the successor replayed the journal after the checkpoint
    assert "running here (from checkpoint)" in cluster.log_of(survivor)

    await on_owner.wait_for(lambda m: m["type"] == "welcome" and m["seat"] is not None, timeout=5)
    await on_owner.ws.send(json.dumps({"type": "leave"}))
    _, end = await on_survivor.wait_for(lambda m: m["type"] == "match_end", timeout=10)
    assert end["status"] == "finished" and end["reason"] == "forfeit"

    status, stored = cluster.http(survivor, "GET", f"/api/matches/{match_id}/", token=on_survivor.token)
    assert stored["status"] == "finished"
    assert sorted(p["placing"] for p in stored["players"]) == [1, 2]
    recorded = sum(cluster.log_of(p).count(f"match {match_id} finished") for p in ports)
    assert recorded == 1


async def test_sigterm_hands_the_match_to_the_other_process(cluster):
    ports, match_id, alice, bob = await start_match_across_processes(cluster)
    owner = owner_port(cluster, ports, match_id)
    survivor = ports[1] if owner == ports[0] else ports[0]
    on_owner, on_survivor = (alice, bob) if alice.port == owner else (bob, alice)
    last_tick = max(m["tick"] for m in on_survivor.snapshots())
    stopped_at = time.monotonic()
    cluster.kill(owner, signal.SIGTERM)

    await on_owner.reader
    assert on_owner.close_code == 4010  # "server restarting: reconnect now"
    await on_owner.connect(survivor)
    resumed_at, resumed = await on_survivor.wait_for(
        lambda m: m["type"] == "snapshot" and m["phase"] == "running" and m["tick"] > last_tick, timeout=10
    )
    print(f"handover after SIGTERM: {resumed_at - stopped_at:.2f} s")
    assert resumed_at - stopped_at < 1.5
    assert cluster.procs[owner].wait(timeout=10) is not None
    await on_owner.ws.close()
    await on_survivor.ws.close()
