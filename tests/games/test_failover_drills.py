"""SIGKILL drills with real processes (bench/failover.py): the owner of a match played across processes is killed
three times; the relayed player never sees a tick or an ack go backwards, the input acked just before each kill is
kept, and the takeover is quick."""

from __future__ import annotations

import json
import statistics

import pytest

from bench.failover import run_drills, summary

pytestmark = [pytest.mark.redis, pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.timeout(120)]

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
