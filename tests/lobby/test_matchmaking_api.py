"""Matchmaking tickets over REST: create (alone or as a lobby party), read status, cancel, and every refusal."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from lobby import matchmaker
from lobby.models import Ticket
from tests.lobby.conftest import assert_error

pytestmark = pytest.mark.django_db

TICKETS = "/api/matchmaking/tickets/"


def queue(client, game="pong", **body):
    response = client.post(TICKETS, {"game": game, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_ticket_is_searching_with_wait_and_estimate(api_as, alice):
    ticket = queue(api_as(alice))
    assert ticket["status"] == "searching"
    assert ticket["party"] == [{"id": alice.pk, "username": "alice"}]
    assert 0.0 <= ticket["waited_seconds"] < 1.0
    assert ticket["estimated_wait_seconds"] == 30.0  # docs/lobby.md: 30 s before any ticket of the game was matched
    lifetime = datetime.fromisoformat(ticket["expires_at"]) - datetime.fromisoformat(ticket["created_at"])
    assert abs(lifetime - timedelta(minutes=10)) < timedelta(seconds=1)  # tickets expire after 10 minutes
    assert ticket["match"] is None
    assert api_as(alice).get(f"{TICKETS}{ticket['id']}/").json()["status"] == "searching"


def test_the_wait_estimate_is_the_median_wait_of_matched_tickets(api_as, make_user):
    now = timezone.now()
    for waited in (10, 12, 14, 60):
        ticket = queue(api_as(make_user(f"waited{waited}")))
        Ticket.objects.filter(pk=ticket["id"]).update(created_at=now - timedelta(seconds=waited))
    assert matchmaker.run_one_step(now=now).matched_tickets == 4
    cache.clear()  # the estimate is cached for a few seconds; this test does not wait for it
    assert queue(api_as(make_user("newcomer")))["estimated_wait_seconds"] == 13.0  # the median; the mean is 24


def test_second_active_ticket_is_refused(api_as, alice):
    queue(api_as(alice))
    assert_error(api_as(alice).post(TICKETS, {"game": "arena"}, format="json"), 409, "ticket_exists")


def test_cancel_then_queue_again(api_as, alice):
    ticket = queue(api_as(alice))
    cancelled = api_as(alice).delete(f"{TICKETS}{ticket['id']}/").json()
    assert cancelled["status"] == "cancelled" and cancelled["estimated_wait_seconds"] is None
    assert_error(api_as(alice).delete(f"{TICKETS}{ticket['id']}/"), 409, "ticket_not_searching")
    queue(api_as(alice))


def test_someone_elses_ticket_cannot_be_read_or_cancelled(api_as, alice, bob):
    ticket = queue(api_as(alice))
    assert_error(api_as(bob).get(f"{TICKETS}{ticket['id']}/"), 404, "ticket_not_found")
    assert_error(api_as(bob).delete(f"{TICKETS}{ticket['id']}/"), 404, "ticket_not_found")
    assert_error(api_as(bob).delete(f"{TICKETS}999999/"), 404, "ticket_not_found")


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "game"),
        ({"game": "chess"}, "game"),
        ({"game": ["pong"]}, "game"),
        ({"game": "pong", "lobby": "bad"}, "lobby"),
    ],
)
def test_ticket_with_bad_fields_is_a_validation_error(api_as, alice, body, field):
    body = assert_error(api_as(alice).post(TICKETS, body, format="json"), 400, "validation_error")
    assert field in body["fields"]


def test_matched_ticket_points_to_its_match(api_as, alice, bob):
    ticket = queue(api_as(alice))
    queue(api_as(bob))
    assert matchmaker.run_one_step().matches == 1
    body = api_as(alice).get(f"{TICKETS}{ticket['id']}/").json()
    assert body["status"] == "matched"
    assert body["match"]["ws"] == f"/ws/matches/{body['match']['id']}/"
    assert_error(api_as(alice).delete(f"{TICKETS}{ticket['id']}/"), 409, "ticket_not_searching")
    queue(api_as(alice))


def lobby_of(api_as, host, *members, game="arena"):
    code = api_as(host).post("/api/lobbies/", {"game": game}, format="json").json()["code"]
    for member in members:
        api_as(member).post(f"/api/lobbies/{code}/join/")
    return code


def test_lobby_queues_as_one_party_ticket(api_as, alice, bob):
    code = lobby_of(api_as, alice, bob)
    assert_error(api_as(alice).post(TICKETS, {"game": "arena", "lobby": code}, format="json"), 409, "players_not_ready")
    api_as(bob).post(f"/api/lobbies/{code}/ready/", {"ready": True}, format="json")
    ticket = queue(api_as(alice), game="arena", lobby=code)
    assert sorted(p["username"] for p in ticket["party"]) == ["alice", "bob"]
    # Bob is on the party's ticket: he sees it and may cancel it, but cannot queue again.
    assert api_as(bob).get(f"{TICKETS}{ticket['id']}/").json()["id"] == ticket["id"]
    assert_error(api_as(alice).post(f"/api/lobbies/{code}/start/"), 409, "ticket_active")
    assert api_as(bob).delete(f"{TICKETS}{ticket['id']}/").json()["status"] == "cancelled"


def test_party_ticket_errors(api_as, alice, bob):
    code = lobby_of(api_as, alice, bob)
    assert_error(api_as(bob).post(TICKETS, {"game": "arena", "lobby": code}, format="json"), 403, "not_host")
    assert_error(api_as(alice).post(TICKETS, {"game": "pong", "lobby": code}, format="json"), 400, "wrong_game")
    assert_error(api_as(alice).post(TICKETS, {"game": "arena"}, format="json"), 409, "in_lobby")
    assert_error(
        api_as(alice).post(TICKETS, {"game": "arena", "lobby": "ZZZZZZZZ"}, format="json"), 404, "lobby_not_found"
    )


def test_queued_user_cannot_create_or_join_a_lobby(api_as, alice, bob):
    queue(api_as(alice))
    assert_error(api_as(alice).post("/api/lobbies/", {"game": "arena"}, format="json"), 409, "ticket_active")
    code = lobby_of(api_as, bob)
    assert_error(api_as(alice).post(f"/api/lobbies/{code}/join/"), 409, "ticket_active")
