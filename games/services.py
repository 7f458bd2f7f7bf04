"""Match state changes: create a match for a set of players, start it, record its result exactly once, cancel it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from games.models import Match, MatchPlayer
from games.rules import UnknownGame, get_game
from games.rules.base import MatchResult
from games.signals import match_finished
from gameserver.accounts.models import User


class MatchError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@transaction.atomic
def match_create(*, game: str, users: Sequence[User], source: str = "api", seed: int | None = None) -> Match:
    """Create a match with one seat per user, in the given order. Lobbies and matchmaking call this."""
    try:
        rules = get_game(game)
    except UnknownGame:
        raise MatchError("unknown_game", f"There is no game called {game!r}.") from None
    settings = rules.settings
    if len({user.pk for user in users}) != len(users):
        raise MatchError("duplicate_player", "A player can take only one seat.")
    if not settings.min_players <= len(users) <= settings.max_players:
        raise MatchError(
            "wrong_player_count",
            f"{settings.name} needs {settings.min_players} to {settings.max_players} players, not {len(users)}.",
        )
    if any(not user.is_active for user in users):
        raise MatchError("inactive_player", "A banned or disabled user cannot join a match.")
    match = Match.objects.create(game=game, source=source, **({"seed": seed} if seed is not None else {}))
    MatchPlayer.objects.bulk_create(MatchPlayer(match=match, user=user, seat=seat) for seat, user in enumerate(users))
    return match


@transaction.atomic
def match_create_many(*, game: str, seatings: Sequence[Sequence[int]], source: str) -> list[Match]:
    """Bulk match_create for the matchmaker: one match per list of user ids (in seat order), in a few queries.

    The caller guarantees what match_create checks one by one: distinct, active users and a seat count the game
    allows; the game and the counts are checked here anyway because they are cheap.
    """
    settings = get_game(game).settings
    for user_ids in seatings:
        if not settings.min_players <= len(user_ids) <= settings.max_players or len(set(user_ids)) != len(user_ids):
            raise MatchError("wrong_player_count", f"Bad seating for {settings.name}: {list(user_ids)}.")
    matches = Match.objects.bulk_create([Match(game=game, source=source) for _ in seatings])
    MatchPlayer.objects.bulk_create(
        (
            MatchPlayer(match=match, user_id=user_id, seat=seat)
            for match, user_ids in zip(matches, seatings, strict=True)
            for seat, user_id in enumerate(user_ids)
        ),
        batch_size=500,
    )
    return matches


def match_start(*, match_id: int) -> bool:
    """Mark a waiting match as running; False if it was not waiting (already started by an earlier owner)."""
    return bool(
        Match.objects.filter(pk=match_id, status=Match.Status.WAITING).update(
            status=Match.Status.RUNNING, started_at=timezone.now()
        )
    )


@transaction.atomic
def match_finish(
    *,
    match_id: int,
    result: MatchResult,
    ticks: int,
    duration_seconds: float,
    abandoned_seats: Sequence[int],
    input_log: list[list[Any]],
) -> bool:
    """Record a finished match's result. Only the first call for a match records anything and returns True:
    whichever process finishes the match, and however often, the result and its effects happen once."""
    claimed = Match.objects.filter(pk=match_id, status__in=Match.ACTIVE).update(
        status=Match.Status.FINISHED,
        finished_at=timezone.now(),
        duration_seconds=duration_seconds,
        ticks=ticks,
        end_reason=result.reason,
        input_log=input_log,
    )
    if not claimed:
        return False
    abandoned = set(abandoned_seats)
    seats = list(MatchPlayer.objects.select_for_update().filter(match_id=match_id))
    for seat in seats:
        seat.placing = result.placings[seat.seat]
        seat.score = result.scores[seat.seat]
        seat.abandoned = seat.seat in abandoned
    MatchPlayer.objects.bulk_update(seats, ["placing", "score", "abandoned"])
    match = Match.objects.get(pk=match_id)
    match_finished.send(sender=Match, match=match)
    return True


def match_cancel(*, match_id: int, reason: str) -> bool:
    """Cancel a match that never got going (players did not arrive); no result, no rating change."""
    return bool(
        Match.objects.filter(pk=match_id, status__in=Match.ACTIVE).update(
            status=Match.Status.CANCELLED, finished_at=timezone.now(), end_reason=reason[:40]
        )
    )
