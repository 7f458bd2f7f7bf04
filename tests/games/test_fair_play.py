"""Fair play in one process: a cancel from the admin stops the running match within a tick, a player who never
connected is not rated, and a runner whose lease may have expired publishes nothing until it is confirmed."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.db import database_sync_to_async

from games import selectors
from games.engine.runner import MatchRunner
from games.engine.store import MemoryStore
from games.models import Match, MatchPlayer
from lobby.models import RatingChange
from tests.games.conftest import connect, create_match

pytestmark = pytest.mark.django_db(transaction=True)


def is_running(message):
    return message["type"] == "snapshot" and message["phase"] == "running"


async def test_the_admins_cancel_stops_a_running_match_within_a_tick(engine_host, quick_games, alice, bob, carol, admin_client):
    match = await database_sync_to_async(create_match)("pong", [alice, bob])
    a, b = await connect(alice, match.pk), await connect(bob, match.pk)
    watcher = await connect(carol, match.pk)  # a spectator is told too
    for client in (a, b):
        await client.until(is_running, timeout=10)

    cancelled_at = time.monotonic()
    response = await database_sync_to_async(admin_client.post)(
        "/admin/games/match/", {"action": "cancel", "_selected_action": [match.pk]}
    )
    assert response.status_code == 302
    for client in (a, b, watcher):
        end = await client.until(lambda m: m["type"] == "match_end", timeout=2)
        assert (end["status"], end["reason"]) == ("cancelled", "cancelled_by_admin")
        assert await client.closed_with(timeout=2) == 4013
    assert time.monotonic() - cancelled_at < 1.0

    await asyncio.sleep(0.3)
    stored = await database_sync_to_async(Match.objects.get)(pk=match.pk)
    assert (stored.status, stored.end_reason, stored.ticks) == ("cancelled", "cancelled_by_admin", None)
    assert match.pk not in engine_host.runners
    for client in (a, b, watcher):
        await client.close()


async def test_a_player_who_never_connected_is_not_rated(engine_host, quick_games, alice, bob, carol, settings):
    settings.MATCH_JOIN_TIMEOUT_SECONDS = 0.3
    match = await database_sync_to_async(create_match)("arena-quick", [alice, bob, carol])
    a, b = await connect(alice, match.pk), await connect(bob, match.pk)
    end = await a.until(lambda m: m["type"] == "match_end", timeout=10)
    assert end["status"] == "finished"

    seats = await database_sync_to_async(lambda: {p.user.username: p for p in MatchPlayer.objects.select_related("user")})()
    assert (seats["alice"].connected, seats["bob"].connected, seats["carol"].connected) == (True, True, False)
    rated = await database_sync_to_async(lambda: sorted(RatingChange.objects.values_list("user__username", flat=True)))()
    assert rated == ["alice", "bob"]
    for client in (a, b):
        await client.close()


class RecordingHost:
    """What a runner needs of its host, recording what it publishes."""

    def __init__(self):
        self.store = MemoryStore()
        self.published: list[tuple[float, int]] = []
        self.ended = False
        self.tasks: list[asyncio.Task] = []

    def publish(self, mid, frame):
        self.published.append((time.monotonic(), frame.message["tick"]))
        return None  # (MatchHost.publish: no relay listening)

    def spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.append(task)
        return task

    async def match_ended(self, mid, end):
        self.ended = True

    def may_tick_without_lease(self, now):
        return False  # Redis answers: the lease alone decides


async def test_a_runner_holds_its_ticks_while_its_lease_may_have_expired(quick_games, alice, bob):
    match = await database_sync_to_async(create_match)("pong-quick", [alice, bob])
    info = await database_sync_to_async(selectors.match_info)(match_id=match.pk)
    host = RecordingHost()
    runner = MatchRunner(host, info, None)
    for seat in (0, 1):
        runner.seat_presence(seat, local_delta=1)
    runner.lease_confirmed(time.monotonic() + 0.5)
    task = asyncio.get_running_loop().create_task(runner.run())
    try:
        await asyncio.sleep(1.0)
        expired_at = time.monotonic()
        assert host.published, "ticks go out while the lease is confirmed"
        assert not [t for t, _ in host.published if t > expired_at - 0.45]
        assert runner.stats.fenced > 0
        held_back = len(host.published)

        runner.lease_confirmed(time.monotonic() + 0.5)  # the next renewal kept the lease: ticks resume
        await asyncio.sleep(0.3)
        assert len(host.published) > held_back
    finally:
        task.cancel()
        await asyncio.gather(task, *host.tasks, return_exceptions=True)
