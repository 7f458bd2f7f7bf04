"""Games and matches REST API, and creating matches from the admin."""

from __future__ import annotations

import pytest

from games.models import Match
from tests.accounts.test_api import assert_error

pytestmark = pytest.mark.django_db


def test_games_are_listed_with_their_settings(api):
    games = {g["slug"]: g for g in api.get("/api/games/").json()}
    assert games["pong"]["max_players"] == 2
    assert games["arena"]["min_players"] == 2 and games["arena"]["max_players"] == 8
    assert games["pong"]["pause_on_disconnect"] is True and games["arena"]["pause_on_disconnect"] is False


def test_create_match_seats_players_in_order(api_as, alice, bob):
    response = api_as(alice).post("/api/matches/", {"game": "pong", "players": ["bob", "alice"]}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert [(p["seat"], p["username"]) for p in body["players"]] == [(0, "bob"), (1, "alice")]
    # bob did not agree yet: the match waits for his answer (tests/games/test_invitations.py).
    assert body["status"] == "invited" and body["ws_path"] == f"/ws/matches/{body['id']}/"
    assert [p["accepted"] for p in body["players"]] == [False, True]


@pytest.mark.parametrize(
    "payload, status, code",
    [
        ({"game": "chess", "players": ["alice", "bob"]}, 400, "unknown_game"),
        ({"game": "pong", "players": ["alice"]}, 400, "wrong_player_count"),
        ({"game": "pong", "players": ["alice", "alice"]}, 400, "duplicate_player"),
        ({"game": "pong", "players": ["alice", "nobody"]}, 400, "unknown_player"),
        ({"game": "pong", "players": ["bob", "carol"]}, 403, "not_a_player"),
        ({"game": "pong", "players": "alice"}, 400, "validation_error"),
        ({"players": ["alice", "bob"]}, 400, "validation_error"),
    ],
)
def test_create_match_errors(api_as, alice, bob, carol, payload, status, code):
    assert_error(api_as(alice).post("/api/matches/", payload, format="json"), status, code)


def test_banned_player_cannot_be_seated(api_as, alice, bob):
    from gameserver.accounts.services import user_ban

    user_ban(user=bob)
    assert_error(api_as(alice).post("/api/matches/", {"game": "pong", "players": ["alice", "bob"]}, format="json"), 400, "inactive_player")


def test_match_list_shows_only_the_callers_matches(api_as, alice, bob, carol):
    api_as(alice).post("/api/matches/", {"game": "pong", "players": ["alice", "bob"]}, format="json")
    api_as(bob).post("/api/matches/", {"game": "pong", "players": ["bob", "carol"]}, format="json")
    assert len(api_as(alice).get("/api/matches/").json()["results"]) == 1
    assert len(api_as(bob).get("/api/matches/").json()["results"]) == 2


def test_match_detail_and_missing_match(api_as, alice, bob):
    match_id = api_as(alice).post("/api/matches/", {"game": "pong", "players": ["alice", "bob"]}, format="json").json()["id"]
    assert api_as(alice).get(f"/api/matches/{match_id}/").json()["game"] == "pong"
    assert_error(api_as(alice).get("/api/matches/999999/"), 404, "not_found")


def test_admin_creates_a_match_for_chosen_users(admin_client, alice, bob):
    response = admin_client.post("/admin/games/match/add/", {"game": "pong", "players": [alice.pk, bob.pk]}, follow=True)
    assert response.status_code == 200
    match = Match.objects.get(source="admin")
    assert sorted(match.players.values_list("user__username", flat=True)) == ["alice", "bob"]


def test_admin_refuses_a_wrong_player_count(admin_client, alice):
    response = admin_client.post("/admin/games/match/add/", {"game": "pong", "players": [alice.pk]})
    assert response.status_code == 200 and b"needs 2 to 2 players" in response.content
    assert not Match.objects.exists()


def test_admin_rematch_and_cancel(admin_client, alice, bob):
    from games.services import match_create

    match = match_create(game="pong", users=[bob, alice])
    admin_client.post("/admin/games/match/", {"action": "rematch", "_selected_action": [match.pk]})
    rematch = Match.objects.exclude(pk=match.pk).get()
    assert (rematch.game, rematch.source, rematch.status) == ("pong", "admin", "waiting")
    assert list(rematch.players.order_by("seat").values_list("seat", "user__username")) == [(0, "bob"), (1, "alice")]
    admin_client.post("/admin/games/match/", {"action": "cancel", "_selected_action": [match.pk]})
    match.refresh_from_db()
    assert (match.status, match.end_reason) == ("cancelled", "cancelled_by_admin")
    assert Match.objects.get(pk=rematch.pk).status == "waiting"  # only the selected match


def test_match_list_rejects_an_unknown_status_filter(api_as, alice):
    assert_error(api_as(alice).get("/api/matches/?status=paused"), 400, "validation_error")


def test_admin_cannot_delete_a_match_that_is_not_over(admin_client, alice, bob):
    from games.services import match_create

    match = match_create(game="pong", users=[alice, bob])
    assert admin_client.post(f"/admin/games/match/{match.pk}/delete/", {"post": "yes"}).status_code == 403
    admin_client.post("/admin/games/match/", {"action": "delete_selected", "_selected_action": [match.pk], "post": "yes"})
    assert Match.objects.filter(pk=match.pk).exists()
    admin_client.post("/admin/games/match/", {"action": "cancel", "_selected_action": [match.pk]})
    admin_client.post(f"/admin/games/match/{match.pk}/delete/", {"post": "yes"})
    assert not Match.objects.filter(pk=match.pk).exists()
