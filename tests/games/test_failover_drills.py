"""SIGKILL drills with real processes (bench/failover.py): the owner of a match played across processes is killed
three times; the relayed player never sees a tick or an ack go backwards, the input acked just before each kill is
kept, and the takeover is quick. Then the same with the engine's keys and the relay layer on two Redis nodes."""

from __future__ import annotations

import json
import statistics

import pytest

from bench.failover import run_drills, summary

pytestmark = [pytest.mark.redis, pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.services_pass, pytest.mark.timeout(120)]

DRILLS = 3


async def test_sigkill_of_the_owner_rolls_nothing_back(cluster):
    match_id, drills = await run_drills(cluster, DRILLS)
    print(json.dumps(summary(drills)))
    for drill in drills:
        assert drill.rollback_ticks == 0, drill
        assert drill.acked_input_kept, drill
        assert drill.acks_monotonic and drill.ticks_monotonic, drill
        assert drill.takeover_seconds < 3.0, drill  # a loaded machine; the median below is the target
    assert statistics.median(d.takeover_seconds for d in drills) < 1.5, drills

    logs = "".join(cluster.log_of(port) for port in cluster.procs)
    assert logs.count(f"match {match_id}: running here (new)") == 1
    assert logs.count(f"match {match_id}: running here (from checkpoint)") == DRILLS


@pytest.fixture
def two_nodes(tmp_path):
    """Two redis-servers of the test's own for the engine."""
    from tests.games.conftest import redis_nodes

    def directory(index):
        path = tmp_path / f"redis-node-{index}"
        path.mkdir()
        return path

    with redis_nodes(directory) as nodes:
        yield nodes


async def test_sigkill_drills_with_engine_keys_and_relays_sharded_over_two_redis_nodes(cluster, two_nodes):
    cluster.env["ENGINE_REDIS_URLS"] = ",".join(node.url for node in two_nodes)
    match_id, drills = await run_drills(cluster, 2)
    print(json.dumps(summary(drills)))
    assert all(d.rollback_ticks == 0 and d.acked_input_kept and d.acks_monotonic for d in drills), drills
    prefix = cluster.env["ENGINE_PREFIX"]
    home, other = two_nodes[match_id % 2].client(), two_nodes[1 - match_id % 2].client()
    # The match's keys live on its home node only. (Its journal can be empty for a moment, just trimmed by a
    # checkpoint, and Redis drops an empty list: the checkpoint and log are the keys that always stay.)
    keys = [f"{prefix}:{kind}:{match_id}" for kind in ("lease", "ckpt", "log")]
    assert all(home.exists(key) for key in keys), [key for key in keys if not home.exists(key)]
    assert not any(other.exists(key) for key in (*keys, f"{prefix}:jrnl:{match_id}"))
    # The relay layer uses the engine's nodes, not REDIS_URL: the match's relay group lives on one of them.
    import redis

    relay_group = f"gs.m{match_id}".encode()
    carriers = [
        client for client in (*(node.client() for node in two_nodes), redis.Redis.from_url(cluster.env["REDIS_URL"]))
        if any(channel.endswith(relay_group) and prefix.encode() in channel for channel in client.pubsub_channels())
    ]
    assert len(carriers) == 1 and carriers[0].connection_pool.connection_kwargs["port"] in {n.port for n in two_nodes}
