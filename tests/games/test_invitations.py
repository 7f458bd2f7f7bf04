"""Consent to play: POST /api/matches/ invites the other players, who accept or decline; deadlines cancel matches
whose invitations or players never came (the sweep)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from games import services
from games.models import Match
from lobby import matchmaker
from tests.accounts.test_api import assert_error

pytestmark = pytest.mark.django_db


def invite(api_as, host, *names, game="pong"):
    response = api_as(host).post("/api/matches/", {"game": game, "players": list(names)}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_the_invited_player_sees_the_invitation_and_the_match_is_playable_once_they_accept(api_as, alice, bob):
    match = invite(api_as, alice, "alice", "bob")
    assert match["status"] == "invited" and match["join_deadline"] is None and match["invite_expires_at"]
    assert [m["id"] for m in api_as(bob).get("/api/matches/invitations/").json()["results"]] == [match["id"]]
    assert api_as(alice).get("/api/matches/invitations/").json()["results"] == []  # the host accepted by inviting

    accepted = api_as(bob).post(f"/api/matches/{match['id']}/accept/").json()
    assert accepted["status"] == "waiting" and accepted["join_deadline"]
    assert all(p["accepted"] for p in accepted["players"])
    assert api_as(bob).get("/api/matches/invitations/").json()["results"] == []


def test_a_match_waits_for_every_invited_player(api_as, alice, bob, carol):
    match = invite(api_as, alice, "alice", "bob", "carol", game="arena")
    assert api_as(bob).post(f"/api/matches/{match['id']}/accept/").json()["status"] == "invited"
    assert api_as(bob).post(f"/api/matches/{match['id']}/accept/").json()["status"] == "invited"  # repeat: no change
    assert api_as(carol).post(f"/api/matches/{match['id']}/accept/").json()["status"] == "waiting"


def test_declining_cancels_the_match_for_everyone(api_as, alice, bob):
    match = invite(api_as, alice, "alice", "bob")
    body = api_as(bob).post(f"/api/matches/{match['id']}/decline/").json()
    assert (body["status"], body["end_reason"]) == ("cancelled", "invitation_declined")
    assert_error(api_as(bob).post(f"/api/matches/{match['id']}/accept/"), 409, "invitation_closed")


def test_only_seated_players_can_answer(api_as, alice, bob, carol):
    match = invite(api_as, alice, "alice", "bob")
    assert_error(api_as(carol).post(f"/api/matches/{match['id']}/accept/"), 404, "not_found")
    assert_error(api_as(carol).post(f"/api/matches/{match['id']}/decline/"), 404, "not_found")
    assert_error(api_as(bob).post("/api/matches/999999/accept/"), 404, "not_found")
    assert Match.objects.get(pk=match["id"]).status == "invited"


def test_a_match_for_the_caller_alone_needs_no_invitation(api_as, alice, quick_games):
    from dataclasses import replace

    from games.rules import GAMES
    from games.rules.pong import PongGame

    GAMES["solo"] = PongGame(replace(GAMES["pong"].settings, slug="solo", min_players=1))
    try:
        assert invite(api_as, alice, "alice", game="solo")["status"] == "waiting"
    finally:
        GAMES.pop("solo")


def test_lobby_matchmaking_and_admin_matches_need_no_invitation(alice, bob, admin_client):
    assert services.match_create(game="pong", users=[alice, bob], source="lobby").status == "waiting"
    [made] = services.match_create_many(game="pong", seatings=[[alice.pk, bob.pk]], source="matchmaking")
    made.refresh_from_db()
    assert made.status == "waiting" and made.join_deadline is not None
    admin_client.post("/admin/games/match/add/", {"game": "pong", "players": [alice.pk, bob.pk]})
    assert Match.objects.get(source="admin").status == "waiting"


@pytest.mark.django_db(transaction=True)
async def test_an_invited_match_cannot_be_joined_before_everyone_accepted(alice, bob, engine_host):
    from channels.db import database_sync_to_async

    from tests.games.conftest import connect

    match = await database_sync_to_async(services.match_create)(game="pong", users=[alice, bob], invited_by=alice)
    client = await connect(alice, match.pk)
    assert await client.closed_with() == 4003
    await client.close()


def test_expired_invitations_and_matches_nobody_joined_are_cancelled_by_the_sweep(alice, bob, carol, settings):
    invited = services.match_create(game="pong", users=[alice, bob], invited_by=alice)
    nobody_came = services.match_create(game="pong", users=[bob, carol], source="lobby")
    fresh = services.match_create(game="pong", users=[alice, carol], source="lobby")
    assert services.match_cancel_overdue() == 0

    later = timezone.now() + timedelta(seconds=settings.MATCH_INVITE_TIMEOUT_SECONDS + 1)
    Match.objects.filter(pk=fresh.pk).update(join_deadline=later + timedelta(hours=1))
    assert services.match_cancel_overdue(now=later) == 2
    assert services.match_cancel_overdue(now=later) == 0  # exactly one sweep cancels each match
    reasons = dict(Match.objects.values_list("pk", "end_reason"))
    assert reasons[invited.pk] == "invitation_expired" and reasons[nobody_came.pk] == "no_show"
    assert Match.objects.get(pk=fresh.pk).status == "waiting"


def test_a_match_nobody_joined_is_cancelled_after_its_join_deadline_not_before(alice, bob, settings):
    match = services.match_create(game="pong", users=[alice, bob], source="lobby")
    deadline = match.join_deadline
    assert deadline == pytest.approx(match.created_at + timedelta(seconds=settings.MATCH_JOIN_TIMEOUT_SECONDS), abs=timedelta(seconds=1))
    # A runner decides at the deadline itself; the sweep cancels 10 s later (docs/architecture.md, docs/protocol.md).
    assert services.match_cancel_overdue(now=deadline + timedelta(seconds=9)) == 0
    assert services.match_cancel_overdue(now=deadline + timedelta(seconds=11)) == 1
    assert Match.objects.get(pk=match.pk).end_reason == "no_show"


@pytest.mark.django_db(transaction=True)  # the loop's step closes the database connection after it
def test_the_matchmaker_loop_and_the_command_sweep_too(alice, bob):
    past = timezone.now() - timedelta(hours=1)
    first = services.match_create(game="pong", users=[alice, bob], source="lobby")
    Match.objects.filter(pk=first.pk).update(join_deadline=past)
    matchmaker._step_logged()
    assert Match.objects.get(pk=first.pk).end_reason == "no_show"

    second = services.match_create(game="pong", users=[alice, bob], invited_by=alice)
    Match.objects.filter(pk=second.pk).update(invite_expires_at=past)
    call_command("cancel_overdue_matches")
    assert Match.objects.get(pk=second.pk).end_reason == "invitation_expired"


def test_creating_matches_is_throttled_per_user_so_invitations_cannot_flood_someone(api_as, alice, bob, carol, monkeypatch):
    """Every invitation is announced on each page the invited player has open: one user may not send them without
    end (THROTTLE_INVITE). Reading one's matches is not limited by it."""
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "invite", "2/hour")
    cache.delete(ScopedRateThrottle.cache_format % {"scope": "invite", "ident": alice.pk})
    invite(api_as, alice, "alice", "bob")
    invite(api_as, alice, "alice", "carol")
    response = api_as(alice).post("/api/matches/", {"game": "pong", "players": ["alice", "bob"]}, format="json")
    assert response.status_code == 429 and response.json()["error"] == "throttled"
    assert Match.objects.filter(players__user=alice).count() == 2  # the third was never created, nor announced
    assert api_as(alice).get("/api/matches/").status_code == 200
    invite(api_as, bob, "bob", "carol")  # per user: bob's budget is his own
