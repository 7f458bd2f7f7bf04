"""Redis going away under two real server processes with relayed players (issue 11).

Each test starts a Redis of its own on a free loopback port (never the machine's shared one), runs matches whose two
players sit on different processes (so every match has a local player on its owner and a relayed one on the other),
then restarts that Redis empty, restarts it with its data (AOF), or stops it for 10 s. What must hold, seen from the
players and from Redis: no match is cancelled or starts again (no countdown after play began, ticks never go back to
the start), no socket is closed with 1011, a player who leaves is seen as gone and the match ends as it should, the
result is recorded once, and nothing of the match is left in Redis afterwards (leases, checkpoints, group
subscriptions)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.games.test_multiprocess import Player, owner_port
from tests.procs import free_port, wait_for_port

pytestmark = [pytest.mark.redis, pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.services_pass, pytest.mark.timeout(90)]

MATCHES = 3
# Arena: two idle players never end a match on points (it would last 120 s), so the only way one ends during a test is
# a player leaving (last_player_standing): a ghost seat would keep it going. Idle pong paddles end matches on points.
GAME = "arena"


class OwnRedis:
    """A redis-server of the test's own: `persistent` keeps an append-only file (fsync always) in its directory, so a
    restart brings the data back; otherwise a restart starts empty."""

    def __init__(self, directory: Path, *, persistent: bool):
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = free_port()
        self.directory = directory
        self.args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(directory),
                     "--appendonly", "yes" if persistent else "no", "--appendfsync", "always", "--daemonize", "no"]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.directory / "redis.log", "ab")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # as a crash would: with fsync always, the AOF has every write anyway
            self.proc.wait(timeout=10)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)


@pytest.fixture
def own_redis(tmp_path, request):
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        pytest.fail("redis-server is needed for the Redis fault tests")
    directory = tmp_path / "redis"
    directory.mkdir()
    server = OwnRedis(directory, persistent=request.param == "with_data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fault_cluster(tmp_path, own_redis):
    from tests.procs import drop_database, make_cluster

    cluster = make_cluster(tmp_path, own_redis.url)
    yield cluster
    cluster.stop_all()
    drop_database(cluster.env["DATABASE_URL"])


async def start_split_matches(cluster) -> tuple[tuple[int, int], list[tuple[int, Player, Player]]]:
    """MATCHES matches of GAME, each with one player on each process; the first to connect alternates, so both
    processes own some."""
    ports = (cluster.start(), cluster.start())
    matches = []
    for i in range(MATCHES):
        names = [f"alice{i}", f"bob{i}"]
        tokens = {name: cluster.register(ports[0], name) for name in names}
        match = cluster.new_match(ports[0], GAME, names, tokens)
        one, two = Player(ports[0], match["id"], tokens[names[0]]), Player(ports[1], match["id"], tokens[names[1]])
        first, second = (one, two) if i % 2 == 0 else (two, one)
        await first.connect()
        await asyncio.sleep(0.3)
        await second.connect()
        matches.append((match["id"], one, two))
    for _, one, two in matches:
        for player in (one, two):
            await player.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running" and m["tick"] >= 10, timeout=20)
    return ports, matches


def assert_never_restarted(player: Player) -> None:
    """Once play began, no countdown or waiting phase again and no tick back near the start."""
    began = False
    highest = 0
    for _, message in player.messages:
        if message["type"] != "snapshot":
            continue
        if message["phase"] == "running":
            began = True
        elif began and message["phase"] in ("waiting", "countdown"):
            raise AssertionError(f"match {player.match_id}: {message['phase']} again after play began (restarted)")
        if began:
            # An owner change may resume from a checkpoint up to a round old; never from the start.
            assert message["tick"] >= highest - 30, f"match {player.match_id}: tick {message['tick']} after {highest}"
            highest = max(highest, message["tick"])


async def ticks_advance(player: Player, timeout: float) -> None:
    start = max((m["tick"] for m in player.snapshots()), default=0)
    await player.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running" and m["tick"] > start + 15, timeout)


async def run_fault(cluster, own_redis, fault) -> None:
    ports, matches = await start_split_matches(cluster)
    owners = {mid: owner_port(cluster, ports, mid) for mid, _, _ in matches}

    async def relayed_player(mid, one, two):
        return two if one.port == owners[mid] else one

    await fault(matches, relayed_player)

    # Every match still in play plays on, for both players, within a few seconds of Redis being back.
    for _, one, two in matches:
        for player in (one, two):
            if not any(m["type"] == "match_end" for _, m in player.messages):
                await ticks_advance(player, timeout=15)

    # The relayed player of each match still in play leaves: the other sees them gone, and the match ends.
    for mid, one, two in matches:
        if any(m["type"] == "match_end" for p in (one, two) for _, m in p.messages):
            continue
        leaver = await relayed_player(mid, one, two)
        await leaver.ws.send(json.dumps({"type": "leave"}))
    for _, one, two in matches:
        for player in (one, two):
            _, end = await player.wait_for(lambda m: m["type"] == "match_end", timeout=15)
            assert end["status"] == "finished", end
            assert end["reason"] == "last_player_standing", end
    for _, one, two in matches:
        for player in (one, two):
            await asyncio.wait_for(player.reader, 10)
            assert player.close_code == 4013, (player.match_id, player.close_code)
            assert_never_restarted(player)

    for mid, _, _ in matches:
        status, stored = cluster.http(ports[0], "GET", f"/api/matches/{mid}/", token=matches[0][1].token)
        assert status == 200 and stored["status"] == "finished", stored
        recorded = sum(cluster.log_of(port).count(f"match {mid} finished") for port in ports)
        assert recorded == 1, f"match {mid} recorded {recorded} times"
    logs = "".join(cluster.log_of(port) for port in ports)
    assert "server_error" not in logs
    for mid, _, _ in matches:  # started once; any other start resumed a checkpoint
        assert logs.count(f"match {mid}: running here (new)") == 1, f"match {mid} was started anew"

    # Nothing of the matches is left in Redis (a lease still renewed would mean a runner outlived its match).
    await asyncio.sleep(3)
    redis = own_redis.client()
    prefix = cluster.env["ENGINE_PREFIX"]
    left = sorted(k.decode() for k in redis.scan_iter(f"{prefix}:*") if b":lease:" in k or b":ckpt:" in k or b":log:" in k)
    assert left == [], left
    channels = sorted(c.decode() for c in redis.pubsub_channels())
    assert not [c for c in channels for mid, _, _ in matches if c.endswith(f"gs.m{mid}") or c.endswith(f"gs.c{mid}")], channels
    groups = sorted(k.decode() for k in redis.scan_iter(f"{cluster.env['CHANNEL_PREFIX']}*group*"))
    assert groups == [], groups


@pytest.mark.parametrize("own_redis", ["empty"], indirect=True)
async def test_an_empty_redis_restart_cancels_and_restarts_nothing(own_redis, fault_cluster):
    async def fault(matches, relayed_player):
        own_redis.stop()
        own_redis.start()

    started = time.monotonic()
    await run_fault(fault_cluster, own_redis, fault)
    print(f"empty restart: {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("own_redis", ["with_data"], indirect=True)
async def test_a_redis_restart_with_its_data_cancels_and_restarts_nothing(own_redis, fault_cluster):
    async def fault(matches, relayed_player):
        own_redis.stop()
        await asyncio.sleep(1)
        own_redis.start()

    await run_fault(fault_cluster, own_redis, fault)


@pytest.mark.parametrize("own_redis", ["empty"], indirect=True)
async def test_redis_down_for_10_s_keeps_owners_ticking_and_a_player_who_left_meanwhile_is_gone(own_redis, fault_cluster):
    async def fault(matches, relayed_player):
        down_at = time.monotonic()
        own_redis.stop()
        # A relayed player leaves while Redis is down: once it is back, the owner hears it and the match ends.
        mid, one, two = matches[-1]
        leaver = await relayed_player(mid, one, two)
        other = one if leaver is two else two
        await leaver.ws.send(json.dumps({"type": "leave"}))
        # The owner's local player keeps playing through the outage.
        for mid, one, two in matches:
            local = one if (await relayed_player(mid, one, two)) is two else two
            await ticks_advance(local, timeout=5)
        await asyncio.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
        back_at = time.monotonic()
        own_redis.start()
        ended_at, end = await other.wait_for(lambda m: m["type"] == "match_end", timeout=15)
        assert end["reason"] == "last_player_standing" and ended_at > back_at, end  # no ghost seat
        # The leaver's socket is told too, though the owner's one-off "end" may go out before the leaver's process has
        # its pub/sub subscription back: that process finds the match over when it next looks at the free lease.
        told_at, _ = await leaver.wait_for(lambda m: m["type"] == "match_end", timeout=15)
        print(f"the leaver's match ended {ended_at - back_at:.1f} s after Redis was back; the leaver was told "
              f"{told_at - back_at:.1f} s after")

    await run_fault(fault_cluster, own_redis, fault)
