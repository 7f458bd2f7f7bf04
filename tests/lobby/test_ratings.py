"""Ratings: properties of the openskill update (hypothesis), and the update once per finished match via the signal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from games.rules.base import MatchResult
from games.services import match_create, match_finish
from lobby.models import Rating, RatingChange
from lobby.ratings import DEFAULT_SKILL, Skill, rate, rating_reset

skills = st.builds(Skill, mu=st.floats(0, 50), sigma=st.floats(0.5, 8.5))


@settings(max_examples=200, deadline=None)
@given(players=st.lists(skills, min_size=2, max_size=8))
def test_the_winner_does_not_lose_rating(players):
    ranks = [1] + list(range(2, len(players) + 1))
    winner = rate([(skill, rank) for skill, rank in zip(players, ranks, strict=True)])[0]
    assert winner.mu >= players[0].mu - 1e-9
    assert winner.ordinal >= players[0].ordinal - 1e-9


@settings(max_examples=200, deadline=None)
@given(players=st.lists(skills, min_size=2, max_size=8))
def test_the_last_does_not_gain_rating(players):
    ranks = list(range(1, len(players) + 1))
    last = rate([(skill, rank) for skill, rank in zip(players, ranks, strict=True)])[-1]
    assert last.mu <= players[-1].mu + 1e-9


@settings(max_examples=100, deadline=None)
@given(skill=skills, count=st.integers(2, 8))
def test_a_draw_between_equals_changes_little(skill, count):
    after = rate([(skill, 1)] * count)
    for new in after:
        assert abs(new.mu - skill.mu) < 0.01
        assert new.sigma <= skill.sigma + 1e-9


def finish(match, placings, abandoned=(), connected=None):
    """Record a result; every seat connected unless `connected` names the seats whose player ever did."""
    result = MatchResult(placings=placings, scores=[0] * len(placings), winner_seats=[0], reason="score_limit")
    return match_finish(
        match_id=match.pk, result=result, ticks=1, duration_seconds=1.0, abandoned_seats=abandoned,
        connected_seats=range(len(placings)) if connected is None else connected, input_log=[],
    )


@pytest.mark.django_db
def test_finished_match_updates_ratings_once_and_records_changes(alice, bob, carol):
    match = match_create(game="arena", users=[alice, bob, carol], source="api")
    assert finish(match, [1, 2, 3])
    assert not finish(match, [3, 2, 1])
    ratings = {r.user.username: r for r in Rating.objects.select_related("user")}
    assert ratings["alice"].ordinal > ratings["bob"].ordinal > ratings["carol"].ordinal
    assert ratings["alice"].matches == 1 and ratings["alice"].wins == 1 and ratings["carol"].wins == 0
    changes = {c.user.username: c for c in RatingChange.objects.select_related("user")}
    assert len(changes) == 3
    assert changes["alice"].ordinal_before == pytest.approx(DEFAULT_SKILL.ordinal)
    assert changes["alice"].ordinal_after == pytest.approx(ratings["alice"].ordinal)


@pytest.mark.django_db
def test_abandoning_counts_as_a_loss(alice, bob):
    match = match_create(game="pong", users=[alice, bob])
    # The leaver had the better placing when the match ended; leaving still ranks them last.
    finish(match, [1, 2], abandoned=[0])
    alice_rating = Rating.objects.get(user=alice)
    bob_rating = Rating.objects.get(user=bob)
    assert alice_rating.mu < bob_rating.mu
    assert RatingChange.objects.get(user=alice).rank == 3


@pytest.mark.django_db
def test_rating_reset_returns_to_newcomer(alice, bob):
    finish(match_create(game="pong", users=[alice, bob]), [1, 2])
    rating = Rating.objects.get(user=alice)
    rating_reset(rating=rating)
    rating.refresh_from_db()
    assert (rating.mu, rating.sigma, rating.matches) == (DEFAULT_SKILL.mu, DEFAULT_SKILL.sigma, 0)


@pytest.mark.django_db
def test_a_player_who_never_connected_keeps_their_rating(alice, bob, carol):
    match = match_create(game="arena", users=[alice, bob, carol])
    # carol never connected: removed at the join deadline, she would have been ranked last (abandoned) before.
    finish(match, [1, 2, 3], abandoned=[2], connected=[0, 1])
    assert not Rating.objects.filter(user=carol).exists()
    assert not RatingChange.objects.filter(user=carol).exists()
    assert sorted(c.rank for c in RatingChange.objects.all()) == [1, 2]


@pytest.mark.django_db
def test_nobody_is_rated_when_fewer_than_two_players_connected(alice, bob):
    match = match_create(game="pong", users=[alice, bob])
    finish(match, [1, 2], abandoned=[1], connected=[0])
    assert not RatingChange.objects.exists()
    assert not Rating.objects.exists()


@pytest.mark.django_db
def test_a_player_who_connected_then_left_is_still_rated_last(alice, bob, carol):
    match = match_create(game="arena", users=[alice, bob, carol])
    finish(match, [2, 1, 3], abandoned=[0], connected=[0, 1, 2])
    assert RatingChange.objects.get(user=alice).rank == 4
