"""SIGKILL failover drills: one arena match across real server processes, its owner killed again and again.

Each drill: the player on the owner sends an input and waits until a snapshot acknowledges it, then the owner gets
SIGKILL at once. The other player (relayed by the other process, which takes the match over) reports the takeover
time (kill to the first snapshot of the new owner), the rollback in ticks (highest tick either player saw from the
dead owner minus the first tick of the new one, 0 if not below) and whether acks ever went backwards and the acked
input survived. The killed player then reconnects to a fresh process, which relays for it, and the next drill kills
the new owner.

    .venv/bin/python -m bench.failover --drills 10 --redis redis://127.0.0.1:6379/13
    ENGINE_JOURNAL=0 .venv/bin/python -m bench.failover --drills 5 --redis ...   # checkpoints only, for comparison

`--node-cost` measures instead what one Redis node spends per journal append: the writer's flushes for 250 matches
(one 4-input record each, as 1,000 arena players make per tick), as fast as one client sends them, against a
redis-server of its own; the node's CPU (INFO cpu) divided by the appends gives the appends a second one core carries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# After the kill, snapshots still in flight from the dead owner arrive within this long (loopback).
IN_FLIGHT_SECONDS = 0.2


@dataclass
class Drill:
    takeover_seconds: float
    rollback_ticks: int
    tick_before: int  # the highest tick either player saw from the dead owner
    tick_after: int  # the first tick from the new owner
    acked_input_kept: bool  # the input acked just before the kill is acked by the new owner too
    acks_monotonic: bool  # the relayed player never saw an ack go backwards
    ticks_monotonic: bool  # nor a tick


def running_snapshots(player, since: float = 0.0, until: float = float("inf")) -> list[tuple[float, dict]]:
    return [
        (stamp, m) for stamp, m in player.messages
        if m["type"] == "snapshot" and m["phase"] == "running" and since <= stamp < until
    ]


def monotonic(values: list[int]) -> bool:
    return all(later >= earlier for earlier, later in zip(values, values[1:], strict=False))


async def until(check, timeout: float):
    """Polls `check` until it returns something true, and returns that."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing after {timeout} s")
        await asyncio.sleep(0.005)
    return found


async def run_drills(cluster, drills: int) -> tuple[int, list[Drill]]:
    """(match id, one Drill per kill). Starts 2 + drills processes in all (one new relay per drill)."""
    from tests.games.test_multiprocess import Player

    ports = [cluster.start(), cluster.start()]
    tokens = {name: cluster.register(ports[0], name) for name in ("alice", "bob")}
    match = cluster.new_match(ports[0], "arena", ["alice", "bob"], tokens)
    alice, bob = Player(ports[0], match["id"], tokens["alice"]), Player(ports[1], match["id"], tokens["bob"])
    seqs = [0, 0]  # per seat: alice 0, bob 1
    await alice.connect()
    await asyncio.sleep(0.3)  # alice's process takes the lease: bob's relays
    await bob.connect()
    for player in (alice, bob):
        await player.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running" and m["tick"] >= 10, timeout=20)

    results = [await kill_the_owner(cluster, match["id"], (alice, bob), seqs) for _ in range(drills)]
    return match["id"], results


async def kill_the_owner(cluster, match_id: int, players: tuple, seqs: list[int]) -> Drill:
    """One drill; `players` are (seat 0, seat 1), `seqs` their last input seq."""
    from tests.games.test_multiprocess import owner_port

    alive = [port for port, proc in cluster.procs.items() if proc.poll() is None]
    owner = owner_port(cluster, alive, match_id)
    local_seat = 0 if players[0].port == owner else 1
    local, relayed = players[local_seat], players[1 - local_seat]
    seqs[local_seat] += 1
    seq = seqs[local_seat]
    await local.ws.send(json.dumps({"type": "input", "seq": seq, "input": {"dx": 1 if seq % 2 else -1, "dy": 0}}))
    await local.wait_for(lambda m: m["type"] == "snapshot" and m["acks"][local_seat] >= seq, timeout=5)
    killed_at = time.monotonic()
    cluster.kill(owner, signal.SIGKILL)
    cluster.procs[owner].wait(timeout=10)

    # The first snapshot that arrived after the dead owner's last ones could have.
    after = killed_at + IN_FLIGHT_SECONDS
    resumed_at, resumed = (await until(lambda: running_snapshots(relayed, since=after), 15))[0]
    tick_before = max(m["tick"] for p in players for _, m in running_snapshots(p, until=after))
    stream = [m for _, m in running_snapshots(relayed)]
    drill = Drill(
        takeover_seconds=round(resumed_at - killed_at, 3),
        rollback_ticks=max(0, tick_before - resumed["tick"]),
        tick_before=tick_before,
        tick_after=resumed["tick"],
        acked_input_kept=resumed["acks"][local_seat] >= seq,
        acks_monotonic=all(monotonic([m["acks"][s] for m in stream]) for s in (0, 1)),
        ticks_monotonic=monotonic([m["tick"] for m in stream]),
    )
    # The killed player comes back through a new process, which relays for it.
    await local.reader
    await local.connect(cluster.start())
    since = time.monotonic()
    await until(lambda: running_snapshots(local, since=since), 10)
    return drill


def summary(results: list[Drill]) -> dict:
    takeovers = [d.takeover_seconds for d in results]
    return {
        "drills": len(results),
        "takeover_median_s": round(statistics.median(takeovers), 3),
        "takeover_max_s": max(takeovers),
        "rollback_ticks_max": max(d.rollback_ticks for d in results),
        "acked_inputs_kept": sum(d.acked_input_kept for d in results),
        "acks_monotonic": all(d.acks_monotonic for d in results),
        "ticks_monotonic": all(d.ticks_monotonic for d in results),
    }


def sample_record(n: int) -> bytes:
    inputs = ",".join(f'[{seat},{n},{{"dx":0.7071,"dy":-0.7071,"fire":false,"aim":1.5708}}]' for seat in range(4))
    return f"[{n},null,[{inputs}],[]]".encode()


async def node_cost(url: str, matches: int, seconds: float) -> dict:
    """Journal flushes of `matches` matches against the Redis at `url` for `seconds`: appends, and the node's CPU."""
    import redis.asyncio as redis

    from games.engine.store import RedisStore

    prefix = f"nodecost{time.time_ns()}"
    store = RedisStore(url, prefix=prefix)
    admin = redis.Redis.from_url(url)
    for match_id in range(1, matches + 1):
        assert await store.acquire(match_id, "bench")

    async def cpu() -> float:
        info = await admin.info("cpu")
        return info["used_cpu_user"] + info["used_cpu_sys"]

    cpu_before, started, client_before, flushes, n = await cpu(), time.monotonic(), time.process_time(), 0, 0
    while time.monotonic() - started < seconds:
        n += 1
        record = sample_record(n)
        written = await store.append_journal("bench", [(match_id, [record]) for match_id in range(1, matches + 1)])
        assert all(w is written[0] for w in written)
        flushes += 1
        if n % 20 == 0:  # what the checkpoint round does once a second: keep the lists short
            for match_id in range(1, matches + 1):
                await admin.ltrim(f"{prefix}:jrnl:{match_id}", 20, -1)
    elapsed, cpu_spent, client_cpu = time.monotonic() - started, await cpu() - cpu_before, time.process_time() - client_before
    keys = [key async for key in admin.scan_iter(f"{prefix}:*")]
    if keys:
        await admin.delete(*keys)
    await admin.aclose()
    await store.close()
    appends = flushes * matches
    return {
        "matches": matches,
        "flushes_per_s": round(flushes / elapsed, 1),
        "appends_per_s": round(appends / elapsed),
        "redis_cpu_us_per_append": round(cpu_spent / appends * 1e6, 2),
        "appends_per_redis_core_s": round(appends / cpu_spent) if cpu_spent else None,
        "client_cpu_us_per_flush": round(client_cpu / flushes * 1e6, 1),
        "client_cpu_us_per_append": round(client_cpu / appends * 1e6, 2),
    }


def main() -> None:
    import os

    from tests.procs import drop_database, make_cluster

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drills", type=int, default=5)
    parser.add_argument("--redis", required=True, help="REDIS_URL for the servers (keys use a fresh prefix)")
    parser.add_argument("--node-cost", type=float, default=0.0, metavar="SECONDS",
                        help="measure a Redis node's CPU per journal append for this long instead (use a Redis of its own)")
    parser.add_argument("--matches", type=int, default=250, help="with --node-cost")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    if args.node_cost:
        print(json.dumps({"label": args.label, **asyncio.run(node_cost(args.redis, args.matches, args.node_cost))}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        cluster = make_cluster(Path(tmp), args.redis)
        try:
            _, results = asyncio.run(run_drills(cluster, args.drills))
        finally:
            cluster.stop_all()
            drop_database(cluster.env["DATABASE_URL"])
    for drill in results:
        print(json.dumps(asdict(drill)))
    print(json.dumps({"label": args.label, "journal": os.environ.get("ENGINE_JOURNAL", "1"), **summary(results)}))


if __name__ == "__main__":
    main()
