"""The live-match console in one process (embedded mode): what it lists, and its actions (end with or without the
result, kick, notice) reaching the running match within a tick, each in the admin log; bad requests get errors.
Across two processes on Redis: tests/games/test_live_console_processes.py."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from channels.db import database_sync_to_async
from django.contrib.admin.models import LogEntry
from django.test import AsyncClient

from games import selectors
from games.engine import live, messages
from games.models import Match
from games.replay import match_replay
from games.rules import GAMES
from games.rules.pong import GAME as PONG
from games.rules.pong import PongGame
from gameserver.closecodes import CloseCode
from tests.games.conftest import connect, create_match

pytestmark = pytest.mark.django_db(transaction=True)

LIVE = "/admin/games/match/live/"


@pytest.fixture
def pong_long():
    GAMES["pong-long"] = PongGame(replace(PONG.settings, slug="pong-long", countdown_seconds=0.1, match_seconds=60.0))
    yield
    GAMES.pop("pong-long", None)


@pytest.fixture
def staff(make_user):
    return make_user("operator", is_staff=True, is_superuser=True)


@pytest.fixture
async def running(engine_host, pong_long, alice, bob, carol):
    """A pong match played by alice and bob, watched by carol: (match, alice's, bob's and carol's sockets)."""
    match = await database_sync_to_async(create_match)("pong-long", [alice, bob])
    sockets = [await connect(user, match.pk) for user in (alice, bob, carol)]
    for client in sockets:
        assert (await client.receive())["type"] == "welcome"
    await sockets[0].until(lambda m: m["type"] == "snapshot" and m["phase"] == "running" and m["tick"] >= 3)
    yield match, *sockets
    for client in sockets:
        await client.close()


async def operator_client(user) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


async def test_the_console_lists_a_live_match_with_players_phase_tick_owner_and_spectators(engine_host, running, staff):
    match, *_ = running
    await engine_host.publish_live()
    rows = await database_sync_to_async(selectors.live_matches)()
    row = next(r for r in rows if r["match_id"] == match.pk)
    assert row["game"] == "pong-long"
    assert row["phase"] == "running" and row["tick"] >= 3
    assert row["owner"] == live.PROCESS_NAME
    assert row["spectators"] == 1
    assert row["tick_ms"] is not None and row["tick_ms"] >= 0
    assert [(p["username"], p["state"]) for p in row["players"]] == [("alice", "connected"), ("bob", "connected")]

    client = await operator_client(staff)
    page = await client.get(LIVE)
    assert page.status_code == 200 and b"js/pages/console.js" in page.content
    data = (await client.get(LIVE + "data/")).json()
    assert [r["match_id"] for r in data["matches"]] == [match.pk]


async def test_a_notice_reaches_every_socket_of_the_match_and_is_logged(running, staff):
    match, alice, bob, carol = running
    client = await operator_client(staff)
    response = await client.post(f"{LIVE}{match.pk}/notice/", {"text": "  Server restarts in 5 minutes  "})
    assert response.status_code == 200, response.content
    for socket in (alice, bob, carol):
        notice = await socket.until(lambda m: m["type"] == "notice", timeout=2)
        assert notice == {"type": "notice", "text": "Server restarts in 5 minutes"}
    entry = await LogEntry.objects.aget(object_id=str(match.pk))
    assert entry.user_id == staff.pk and "Server restarts in 5 minutes" in entry.get_change_message()


async def test_kicking_a_seat_closes_its_socket_with_4014_and_removes_it_at_the_next_tick(running, staff):
    match, alice, bob, carol = running
    client = await operator_client(staff)
    response = await client.post(f"{LIVE}{match.pk}/kick/", {"seat": "1"})
    assert response.status_code == 200, response.content
    assert await bob.closed_with() == CloseCode.KICKED
    # Pong ends as a forfeit when a seat is removed: the kick took effect in the match itself.
    end = await alice.until(lambda m: m["type"] == "match_end", timeout=3)
    assert end["reason"] == "forfeit"
    assert [r["abandoned"] for r in end["results"]] == [False, True]
    assert "Kicked bob (seat 1)" in (await LogEntry.objects.aget(object_id=str(match.pk))).get_change_message()


async def test_ending_with_the_result_records_it_at_the_current_tick_and_replays(running, staff):
    match, alice, bob, carol = running
    client = await operator_client(staff)
    response = await client.post(f"{LIVE}{match.pk}/end/", {"result": "1"})
    assert response.status_code == 200, response.content
    for socket in (alice, bob, carol):
        end = await socket.until(lambda m: m["type"] == "match_end", timeout=2)
        assert (end["status"], end["reason"]) == ("finished", "ended_by_admin")
        assert await socket.closed_with() == CloseCode.MATCH_OVER
    stored = await Match.objects.aget(pk=match.pk)
    assert stored.status == "finished" and stored.end_reason == "ended_by_admin" and stored.ticks >= 3
    replayed = await database_sync_to_async(match_replay)(match_id=match.pk)
    assert replayed.verified, replayed.differences
    assert "recording the result" in (await LogEntry.objects.aget(object_id=str(match.pk))).get_change_message()


async def test_ending_without_a_result_cancels_the_match(running, staff):
    match, alice, bob, carol = running
    client = await operator_client(staff)
    assert (await client.post(f"{LIVE}{match.pk}/end/", {"result": "0"})).status_code == 200
    end = await alice.until(lambda m: m["type"] == "match_end", timeout=2)
    assert (end["status"], end["reason"]) == ("cancelled", "cancelled_by_admin")
    assert (await Match.objects.aget(pk=match.pk)).status == "cancelled"
    assert await LogEntry.objects.filter(object_id=str(match.pk)).acount() == 1


@pytest.mark.parametrize(
    ("action", "data", "status", "code"),
    [
        ("kick", {"seat": "7"}, 400, "bad_seat"),
        ("kick", {"seat": "-1"}, 400, "bad_seat"),
        ("kick", {}, 400, "bad_seat"),
        ("notice", {"text": "   "}, 400, "bad_notice"),
        ("notice", {"text": "x" * 501}, 400, "bad_notice"),
        ("teleport", {}, 404, "unknown_action"),
    ],
)
async def test_bad_console_requests_get_a_documented_error_and_change_nothing(running, staff, action, data, status, code):
    match, *_ = running
    client = await operator_client(staff)
    response = await client.post(f"{LIVE}{match.pk}/{action}/", data)
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert not await LogEntry.objects.filter(object_id=str(match.pk)).aexists()


async def test_console_actions_on_a_match_that_is_not_live_are_refused(engine_host, pong_long, alice, bob, staff):
    match = await database_sync_to_async(create_match)("pong-long", [alice, bob])
    await Match.objects.filter(pk=match.pk).aupdate(status="finished")
    client = await operator_client(staff)
    response = await client.post(f"{LIVE}{match.pk}/notice/", {"text": "hello"})
    assert (response.status_code, response.json()["error"]) == (409, "match_not_live")
    response = await client.post(f"{LIVE}999999/end/", {"result": "1"})
    assert (response.status_code, response.json()["error"]) == (404, "not_found")
    assert (await client.get(f"{LIVE}{match.pk}/end/")).status_code == 405


async def test_only_staff_see_the_console_and_only_those_who_may_change_matches_act(running, make_user):
    match, *_ = running
    player = await operator_client(await database_sync_to_async(make_user)("player"))
    assert (await player.get(LIVE)).status_code == 302  # to the admin's login
    viewer = await database_sync_to_async(make_user)("viewer", is_staff=True)
    from django.contrib.auth.models import Permission

    await viewer.user_permissions.aadd(await Permission.objects.aget(codename="view_match"))
    client = await operator_client(viewer)
    assert (await client.get(LIVE + "data/")).status_code == 200
    assert (await client.post(f"{LIVE}{match.pk}/notice/", {"text": "hi"})).status_code == 403
    assert not await LogEntry.objects.aexists()


def test_console_messages_are_checked_at_the_boundary():
    for message in (messages.Finish(3, "ended_by_admin"), messages.Remove(3, 1), messages.Notice(3, "hello")):
        assert messages.from_layer(messages.to_layer(message)) == [message]
    for bad in (messages.Notice(3, ""), messages.Notice(3, "x" * 501), messages.Finish(3, "")):
        with pytest.raises(messages.RelayMessageError):
            messages.from_layer(messages.to_layer(bad))


async def test_a_process_that_stops_writing_its_summary_drops_out_of_the_console(engine_host, running, monkeypatch):
    match, *_ = running
    await engine_host.publish_live()
    assert match.pk in live.live_matches(live.read_summaries())
    monkeypatch.setattr(live, "LIVE_TTL_SECONDS", 0.05)
    await asyncio.sleep(0.1)
    assert match.pk not in live.live_matches(live.read_summaries())
