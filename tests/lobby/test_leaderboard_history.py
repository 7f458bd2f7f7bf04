"""Leaderboards (paginated, with the caller's rank) and match history with rating changes."""

from __future__ import annotations

import pytest

from games.rules.base import MatchResult
from games.services import match_create, match_finish
from lobby.models import Rating
from lobby.ratings import DEFAULT_SKILL
from tests.lobby.conftest import assert_error

pytestmark = pytest.mark.django_db


def play(users, placings, game="arena"):
    match = match_create(game=game, users=users)
    result = MatchResult(placings=placings, scores=[10 - p for p in placings], winner_seats=[0], reason="time_limit")
    match_finish(match_id=match.pk, result=result, ticks=1, duration_seconds=1.0, abandoned_seats=[],
                 connected_seats=range(len(users)), input_log=[])
    return match


def test_leaderboard_orders_by_rating_and_gives_my_rank(api_as, alice, bob, carol):
    play([alice, bob, carol], [1, 2, 3])
    body = api_as(carol).get("/api/leaderboards/arena/?limit=2").json()
    assert body["count"] == 3
    assert [(e["rank"], e["user"]["username"]) for e in body["results"]] == [(1, "alice"), (2, "bob")]
    assert body["me"]["rank"] == 3 and body["me"]["user"]["username"] == "carol"
    second_page = api_as(carol).get("/api/leaderboards/arena/?limit=2&offset=2").json()
    assert [(e["rank"], e["user"]["username"]) for e in second_page["results"]] == [(3, "carol")]


def test_leaderboard_me_is_null_when_unrated(api_as, alice, bob, make_user):
    play([alice, bob], [1, 2], game="pong")
    assert api_as(make_user("newcomer")).get("/api/leaderboards/pong/").json()["me"] is None


def test_leaderboard_of_unknown_game_is_not_found(api_as, alice):
    assert_error(api_as(alice).get("/api/leaderboards/chess/"), 404, "unknown_game")


def test_history_lists_finished_matches_with_rating_changes(api_as, alice, bob):
    first = play([alice, bob], [1, 2], game="pong")
    second = play([alice, bob], [2, 1], game="pong")
    match_create(game="pong", users=[alice, bob])  # still waiting: not history yet
    body = api_as(alice).get("/api/history/").json()
    assert [e["match"]["id"] for e in body["results"]] == [second.pk, first.pk]
    latest, earliest = body["results"]
    assert earliest["placing"] == 1 and earliest["rating"]["delta"] > 0
    assert latest["placing"] == 2 and latest["rating"]["delta"] < 0
    assert latest["players"] == 2 and latest["game"] == "pong" and latest["abandoned"] is False
    assert earliest["rating"]["after"] == pytest.approx(latest["rating"]["before"], abs=1e-3)


def test_history_of_another_player(api_as, alice, bob, carol):
    play([alice, bob], [1, 2], game="pong")
    body = api_as(carol).get(f"/api/history/{bob.pk}/").json()
    assert body["count"] == 1 and body["results"][0]["placing"] == 2
    assert_error(api_as(carol).get("/api/history/999999/"), 404, "user_not_found")


def test_match_ratings_lists_every_players_change(api_as, alice, bob):
    match = play([alice, bob], [1, 2], game="pong")
    body = api_as(alice).get(f"/api/matches/{match.pk}/ratings/").json()
    by_name = {entry["username"]: entry["rating"] for entry in body}
    assert set(by_name) == {"alice", "bob"}
    assert by_name["alice"]["delta"] > 0 > by_name["bob"]["delta"]
    for user in (alice, bob):
        # Both were newcomers; afterwards the change ends at the rating the leaderboard shows.
        assert by_name[user.username]["before"] == pytest.approx(DEFAULT_SKILL.ordinal, abs=1e-3)
        assert by_name[user.username]["after"] == pytest.approx(Rating.objects.get(user=user, game="pong").ordinal, abs=1e-3)


def test_match_ratings_is_empty_before_the_result(api_as, alice, bob):
    match = match_create(game="pong", users=[alice, bob])
    assert api_as(alice).get(f"/api/matches/{match.pk}/ratings/").json() == []


def test_history_names_the_opponents_with_their_placing(api_as, alice, bob, carol):
    match = play([alice, bob, carol], [2, 1, 3])
    entry = api_as(alice).get("/api/history/").json()["results"][0]
    assert entry["match"]["id"] == match.pk and entry["players"] == 3
    # Everyone but alice, in seat order, with links' ids and how they placed.
    assert entry["opponents"] == [
        {"id": bob.pk, "username": "bob", "seat": 1, "placing": 1},
        {"id": carol.pk, "username": "carol", "seat": 2, "placing": 3},
    ]
    # Someone else's history names the owner of that history as an opponent, not themselves.
    carols = api_as(alice).get(f"/api/history/{carol.pk}/").json()["results"][0]
    assert [o["username"] for o in carols["opponents"]] == ["alice", "bob"]


def test_shown_ratings_are_whole_numbers_of_the_ordinal_times_100(api_as, alice, bob):
    match = play([alice, bob], [1, 2], game="pong")
    winner = Rating.objects.get(user=alice, game="pong")
    board = api_as(alice).get("/api/leaderboards/pong/").json()
    assert board["me"]["display_rating"] == round(winner.ordinal * 100)
    assert isinstance(board["me"]["display_rating"], int)
    # A newcomer shows 0; one win between newcomers is worth a few hundred points, one loss costs some.
    by_name = {e["username"]: e["rating"] for e in api_as(bob).get(f"/api/matches/{match.pk}/ratings/").json()}
    assert by_name["alice"]["display_before"] == 0 == by_name["bob"]["display_before"]
    assert 100 < by_name["alice"]["display_delta"] < 1000
    assert -1000 < by_name["bob"]["display_delta"] < -100
    history = api_as(bob).get("/api/history/").json()["results"][0]["rating"]
    assert history == by_name["bob"]
    assert history["display_after"] == history["display_before"] + history["display_delta"]


def test_shown_rating_changes_add_up_over_several_matches(api_as, alice, bob):
    for placings in ([1, 2], [2, 1], [1, 2], [1, 2]):
        play([alice, bob], placings, game="pong")
    changes = [e["rating"] for e in reversed(api_as(alice).get("/api/history/").json()["results"])]
    # Each match starts where the one before ended, on screen as well: no drift from rounding each delta.
    for earlier, later in zip(changes, changes[1:], strict=False):
        assert later["display_before"] == earlier["display_after"]
    total = sum(c["display_delta"] for c in changes)
    shown = api_as(alice).get("/api/leaderboards/pong/").json()["me"]["display_rating"]
    assert total == shown
