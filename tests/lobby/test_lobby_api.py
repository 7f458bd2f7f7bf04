"""Lobby REST API: create, list, join by code, leave and host succession, ready, kick, start, rematch, errors."""

from __future__ import annotations

import pytest

from games.models import Match
from games.services import match_cancel
from lobby.models import Lobby
from tests.lobby.conftest import assert_error

pytestmark = pytest.mark.django_db


def create(client, **body):
    response = client.post("/api/lobbies/", {"game": "arena", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_lobby_makes_caller_host_and_member(api_as, alice):
    lobby = create(api_as(alice), size=4)
    assert lobby["host"]["username"] == "alice"
    assert [m["username"] for m in lobby["members"]] == ["alice"]
    assert lobby["size"] == 4 and lobby["status"] == "open" and lobby["public"] is True
    assert len(lobby["code"]) == 8


def test_size_defaults_to_the_games_maximum(api_as, alice):
    assert create(api_as(alice))["size"] == 8


@pytest.mark.parametrize(
    "body, field",
    [
        ({"game": "chess"}, "game"),
        ({}, "game"),
        ({"game": 12}, "game"),
        ({"game": "arena", "size": "big"}, "size"),
        ({"game": "arena", "public": "perhaps"}, "public"),
    ],
)
def test_create_with_bad_fields_is_a_validation_error(api_as, alice, body, field):
    body = assert_error(api_as(alice).post("/api/lobbies/", body, format="json"), 400, "validation_error")
    assert field in body["fields"]


def test_create_with_size_outside_the_games_range_is_refused(api_as, alice):
    response = api_as(alice).post("/api/lobbies/", {"game": "pong", "size": 3}, format="json")
    assert_error(response, 400, "bad_size")


def test_anonymous_cannot_create(api):
    assert_error(api.post("/api/lobbies/", {"game": "arena"}, format="json"), 401, "not_authenticated")


def test_list_shows_open_public_lobbies_filtered_by_game(api_as, alice, bob, carol):
    arena = create(api_as(alice))
    create(api_as(bob), game="pong")
    create(api_as(carol), public=False)
    body = api_as(alice).get("/api/lobbies/?game=arena").json()
    assert [item["code"] for item in body["results"]] == [arena["code"]]
    assert body["results"][0]["members"] == 1
    assert api_as(alice).get("/api/lobbies/").json()["count"] == 2
    assert_error(api_as(alice).get("/api/lobbies/?game=chess"), 400, "validation_error")


def test_list_is_paginated(api_as, make_user):
    for i in range(3):
        create(api_as(make_user(f"host{i}")))
    body = api_as(make_user("reader")).get("/api/lobbies/?limit=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]


def test_join_private_lobby_by_code_in_the_body(api_as, alice, bob):
    lobby = create(api_as(alice), public=False)
    response = api_as(bob).post("/api/lobbies/join/", {"code": lobby["code"].lower()}, format="json")
    assert response.status_code == 200
    assert [m["username"] for m in response.json()["members"]] == ["alice", "bob"]


@pytest.mark.parametrize("code", ["", "short", "0OIL0OIL", 12345678, None])
def test_join_by_malformed_code_is_a_validation_error(api_as, alice, code):
    body = assert_error(
        api_as(alice).post("/api/lobbies/join/", {"code": code}, format="json"), 400, "validation_error"
    )
    assert "code" in body["fields"]


def test_join_unknown_code_is_not_found(api_as, alice):
    assert_error(api_as(alice).post("/api/lobbies/join/", {"code": "ABCDEFGH"}, format="json"), 404, "lobby_not_found")
    assert_error(api_as(alice).post("/api/lobbies/nonsense!/join/"), 404, "lobby_not_found")


def test_join_full_lobby_is_refused(api_as, alice, bob, carol):
    lobby = create(api_as(alice), game="pong")
    api_as(bob).post(f"/api/lobbies/{lobby['code']}/join/")
    assert_error(api_as(carol).post(f"/api/lobbies/{lobby['code']}/join/"), 409, "lobby_full")


def test_join_closed_lobby_is_refused(api_as, alice, bob):
    lobby = create(api_as(alice))
    api_as(alice).post(f"/api/lobbies/{lobby['code']}/leave/")
    assert_error(api_as(bob).post(f"/api/lobbies/{lobby['code']}/join/"), 409, "lobby_closed")


def test_joining_a_second_lobby_is_refused(api_as, alice, bob):
    first = create(api_as(alice))
    create(api_as(bob))
    assert_error(api_as(bob).post(f"/api/lobbies/{first['code']}/join/"), 409, "already_in_lobby")


def test_host_leaving_passes_host_to_next_member_and_empty_lobby_closes(api_as, alice, bob, carol):
    lobby = create(api_as(alice))
    code = lobby["code"]
    api_as(bob).post(f"/api/lobbies/{code}/join/")
    api_as(carol).post(f"/api/lobbies/{code}/join/")
    after = api_as(alice).post(f"/api/lobbies/{code}/leave/").json()
    assert after["host"]["username"] == "bob"
    api_as(bob).post(f"/api/lobbies/{code}/leave/")
    after = api_as(carol).post(f"/api/lobbies/{code}/leave/").json()
    assert after["status"] == "closed" and after["members"] == [] and after["host"] is None


def test_leave_when_not_a_member_is_forbidden(api_as, alice, bob):
    lobby = create(api_as(alice))
    assert_error(api_as(bob).post(f"/api/lobbies/{lobby['code']}/leave/"), 403, "not_a_member")


def test_ready_and_unready(api_as, alice, bob):
    code = create(api_as(alice))["code"]
    api_as(bob).post(f"/api/lobbies/{code}/join/")
    ready = api_as(bob).post(f"/api/lobbies/{code}/ready/", {"ready": True}, format="json").json()
    assert {m["username"]: m["ready"] for m in ready["members"]} == {"alice": False, "bob": True}
    unready = api_as(bob).post(f"/api/lobbies/{code}/ready/", {"ready": False}, format="json").json()
    assert {m["username"]: m["ready"] for m in unready["members"]}["bob"] is False
    response = api_as(bob).post(f"/api/lobbies/{code}/ready/", {"ready": "sure"}, format="json")
    assert_error(response, 400, "validation_error")


def test_host_kicks_a_member(api_as, alice, bob):
    code = create(api_as(alice))["code"]
    api_as(bob).post(f"/api/lobbies/{code}/join/")
    after = api_as(alice).post(f"/api/lobbies/{code}/kick/", {"user_id": bob.pk}, format="json").json()
    assert [m["username"] for m in after["members"]] == ["alice"]


def test_kick_errors(api_as, alice, bob, carol):
    code = create(api_as(alice))["code"]
    api_as(bob).post(f"/api/lobbies/{code}/join/")
    kick = f"/api/lobbies/{code}/kick/"
    assert_error(api_as(bob).post(kick, {"user_id": alice.pk}, format="json"), 403, "not_host")
    assert_error(api_as(alice).post(kick, {"user_id": carol.pk}, format="json"), 404, "not_a_member")
    assert_error(api_as(alice).post(kick, {"user_id": alice.pk}, format="json"), 400, "cannot_kick_self")
    assert_error(api_as(alice).post(kick, {"user_id": "bob"}, format="json"), 400, "validation_error")


def test_start_creates_a_lobby_match_and_points_members_to_it(api_as, alice, bob):
    code = create(api_as(alice))["code"]
    api_as(bob).post(f"/api/lobbies/{code}/join/")
    api_as(bob).post(f"/api/lobbies/{code}/ready/", {"ready": True}, format="json")
    lobby = api_as(alice).post(f"/api/lobbies/{code}/start/").json()
    assert lobby["status"] == "in_match"
    match = Match.objects.get(pk=lobby["match"]["id"])
    assert match.source == "lobby" and match.game == "arena"
    assert list(match.players.values_list("user__username", flat=True)) == ["alice", "bob"]
    assert lobby["match"]["ws"] == f"/ws/matches/{match.pk}/"


def test_start_errors(api_as, alice, bob):
    code = create(api_as(alice))["code"]
    start = f"/api/lobbies/{code}/start/"
    assert_error(api_as(alice).post(start), 409, "not_enough_players")
    api_as(bob).post(f"/api/lobbies/{code}/join/")
    assert_error(api_as(bob).post(start), 403, "not_host")
    assert_error(api_as(alice).post(start), 409, "players_not_ready")
    api_as(bob).post(f"/api/lobbies/{code}/ready/", {"ready": True}, format="json")
    api_as(alice).post(start)
    assert_error(api_as(alice).post(start), 409, "lobby_in_match")


def test_rematch_reopens_lobby_after_its_match_ended(api_as, alice, bob):
    code = create(api_as(alice))["code"]
    api_as(bob).post(f"/api/lobbies/{code}/join/")
    api_as(bob).post(f"/api/lobbies/{code}/ready/", {"ready": True}, format="json")
    match_id = api_as(alice).post(f"/api/lobbies/{code}/start/").json()["match"]["id"]
    assert_error(api_as(alice).post(f"/api/lobbies/{code}/rematch/"), 409, "match_in_progress")
    match_cancel(match_id=match_id, reason="test")
    assert api_as(alice).post(f"/api/lobbies/{code}/rematch/").json()["status"] == "open"
    api_as(bob).post(f"/api/lobbies/{code}/ready/", {"ready": True}, format="json")
    second = api_as(alice).post(f"/api/lobbies/{code}/start/").json()["match"]["id"]
    assert second != match_id
    assert Lobby.objects.get(code=code).match_id == second


def test_rematch_without_a_match_is_refused(api_as, alice):
    code = create(api_as(alice))["code"]
    assert_error(api_as(alice).post(f"/api/lobbies/{code}/rematch/"), 409, "no_match")


def test_detail_by_code(api_as, alice, bob):
    code = create(api_as(alice), public=False)["code"]
    assert api_as(bob).get(f"/api/lobbies/{code}/").json()["code"] == code
    assert_error(api_as(bob).get("/api/lobbies/ZZZZZZZZ/"), 404, "lobby_not_found")
