"""Skill ratings with openskill's Plackett-Luce model, which ranks any number of free-for-all players at once.

`rate()` is pure (tested with hypothesis); `on_match_finished` applies it once per finished match, inside the
transaction that records the result, and stores each player's change for match history. Only players who connected
to the match are rated: a no-show's rating never changes, and with fewer than two players who connected nobody's does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone
from openskill.models import PlackettLuce

from games.models import Match, MatchPlayer
from games.signals import match_finished
from lobby.models import Rating, RatingChange

# limit_sigma: the dynamics factor tau would otherwise let a very certain winner's mu - 3 sigma dip by a hair,
# and a displayed rating that drops after a win reads as a bug.
MODEL = PlackettLuce(limit_sigma=True)
DEFAULT_MU = MODEL.mu
DEFAULT_SIGMA = MODEL.sigma


@dataclass(frozen=True, slots=True)
class Skill:
    mu: float
    sigma: float

    @property
    def ordinal(self) -> float:
        return self.mu - 3 * self.sigma


DEFAULT_SKILL = Skill(DEFAULT_MU, DEFAULT_SIGMA)

# What players see: the ordinal (mu - 3 sigma) times 100, rounded to a whole number. A newcomer shows 0; one win
# between newcomers is worth a few hundred points, a win between veterans tens. The scale only spreads the numbers
# so that rounding keeps every change visible; the order is the ordinal's.
DISPLAY_SCALE = 100


def display_rating(ordinal: float) -> int:
    return round(ordinal * DISPLAY_SCALE)


def rate(players: Sequence[tuple[Skill, int]]) -> list[Skill]:
    """New skills for players given as (skill, rank); rank 1 wins, equal ranks are a draw."""
    teams = [[MODEL.rating(mu=skill.mu, sigma=skill.sigma)] for skill, _ in players]
    rated = MODEL.rate(teams, ranks=[rank for _, rank in players])
    return [Skill(team[0].mu, team[0].sigma) for team in rated]


def ranks_for(seats: Sequence[MatchPlayer]) -> list[int]:
    """Ranks for the rating update: the placing, except that an abandoned seat (or one without a placing) is last."""
    last = max((seat.placing for seat in seats if seat.placing is not None), default=0) + 1
    return [last if seat.abandoned or seat.placing is None else seat.placing for seat in seats]


@receiver(match_finished, dispatch_uid="lobby.ratings.on_match_finished")
def on_match_finished(sender, match: Match, **kwargs) -> None:
    rating_update_for_match(match=match)


@transaction.atomic
def rating_update_for_match(*, match: Match) -> list[RatingChange]:
    """Update the rating of every seat whose player connected, for one finished match; RatingChange's unique
    constraint makes a repeat fail."""
    seats = list(MatchPlayer.objects.filter(match=match, connected=True).order_by("seat"))
    if len(seats) < 2:
        return []
    user_ids = [seat.user_id for seat in seats]
    existing = {
        r.user_id: r
        for r in Rating.objects.select_for_update().filter(game=match.game, user_id__in=user_ids).order_by("user_id")
    }
    missing = [uid for uid in user_ids if uid not in existing]
    if missing:
        Rating.objects.bulk_create(
            [_new_rating(user_id=uid, game=match.game) for uid in missing], ignore_conflicts=True
        )
        existing = {
            r.user_id: r
            for r in Rating.objects.select_for_update()
            .filter(game=match.game, user_id__in=user_ids)
            .order_by("user_id")
        }
    ratings = [existing[uid] for uid in user_ids]
    ranks = ranks_for(seats)
    new = rate([(Skill(r.mu, r.sigma), rank) for r, rank in zip(ratings, ranks, strict=True)])
    now = timezone.now()
    changes = []
    for rating, rank, skill in zip(ratings, ranks, new, strict=True):
        changes.append(
            RatingChange(
                match=match,
                user_id=rating.user_id,
                game=match.game,
                mu_before=rating.mu,
                sigma_before=rating.sigma,
                mu_after=skill.mu,
                sigma_after=skill.sigma,
                ordinal_before=rating.ordinal,
                ordinal_after=skill.ordinal,
                rank=rank,
            )
        )
        rating.mu, rating.sigma, rating.ordinal = skill.mu, skill.sigma, skill.ordinal
        rating.matches += 1
        rating.wins += rank == 1
        rating.updated_at = now
    RatingChange.objects.bulk_create(changes)
    Rating.objects.bulk_update(ratings, ["mu", "sigma", "ordinal", "matches", "wins", "updated_at"])
    return changes


def _new_rating(*, user_id: int, game: str) -> Rating:
    return Rating(user_id=user_id, game=game, mu=DEFAULT_MU, sigma=DEFAULT_SIGMA, ordinal=DEFAULT_SKILL.ordinal)


def rating_reset(*, rating: Rating) -> None:
    """Put a rating back to a newcomer's (admin action); its history stays."""
    Rating.objects.filter(pk=rating.pk).update(
        mu=DEFAULT_MU, sigma=DEFAULT_SIGMA, ordinal=DEFAULT_SKILL.ordinal, matches=0, wins=0
    )
