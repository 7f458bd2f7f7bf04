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
