"""Match state changes: create a match (or invite players to one), accept or decline, start it, record its result
exactly once, cancel it, and cancel what passed its deadline."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from games.engine import control
from games.models import Match, MatchPlayer
from games.rules import UnknownGame, get_game
from games.rules.base import MatchResult
from games.signals import match_cancelled, match_created, match_finished
from gameserver.accounts.models import User

log = logging.getLogger(__name__)

# A waiting match that is still waiting this long after its join deadline has nobody running it (a runner decides at
# the deadline itself): the sweep cancels it as "no_show". The margin keeps the sweep from racing a runner's start.
NO_SHOW_MARGIN = timedelta(seconds=10)
SWEEP_BATCH = 500


class MatchError(Exception):
    def __init__(self, code: str, message: str, status_code: int = 400):
        super().__init__(message)
        self.code = code
        self.status_code = status_code


def _join_deadline(now: datetime) -> datetime:
    return now + timedelta(seconds=django_settings.MATCH_JOIN_TIMEOUT_SECONDS)


@transaction.atomic
def match_create(
    *, game: str, users: Sequence[User], source: str = "api", seed: int | None = None, invited_by: User | None = None
) -> Match:
    """Create a match with one seat per user, in the given order. Lobbies, matchmaking and the admin call this
    without `invited_by`: their players agreed already (they joined the lobby or the queue). With `invited_by`
    (POST /api/matches/), every other player is invited and the match waits, as "invited", until all of them
    accept (match_invitation_accept); a decline or MATCH_INVITE_TIMEOUT_SECONDS without all answers cancels it."""
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
    now = timezone.now()
    invited = invited_by is not None and any(user.pk != invited_by.pk for user in users)
    if invited:
        timing = {
            "status": Match.Status.INVITED,
            "invite_expires_at": now + timedelta(seconds=django_settings.MATCH_INVITE_TIMEOUT_SECONDS),
        }
    else:
        timing = {"status": Match.Status.WAITING, "join_deadline": _join_deadline(now)}
    match = Match.objects.create(game=game, source=source, **timing, **({"seed": seed} if seed is not None else {}))
    MatchPlayer.objects.bulk_create(
        MatchPlayer(match=match, user=user, seat=seat, accepted=not invited or user.pk == invited_by.pk)
        for seat, user in enumerate(users)
    )
    match_created.send(sender=Match, match=match, users=list(users), invited_by=invited_by if invited else None)
    return match


@transaction.atomic
def match_invitation_accept(*, match_id: int, user: User) -> Match:
    """The invited player agrees to play; the last acceptance makes the match playable (its join clock starts)."""
    # The match row is locked so that two last acceptances at once cannot both miss that everyone accepted.
    match = Match.objects.select_for_update().filter(pk=match_id).first()
    seat = MatchPlayer.objects.filter(match_id=match_id, user=user).first() if match else None
    if seat is None:
        raise MatchError("not_found", "No such invitation.", status_code=404)
    if match.status != Match.Status.INVITED:
        raise MatchError("invitation_closed", f"The match is {match.status}: there is nothing to accept.", status_code=409)
    if not seat.accepted:
        MatchPlayer.objects.filter(pk=seat.pk).update(accepted=True)
    if not MatchPlayer.objects.filter(match_id=match_id, accepted=False).exists():
        Match.objects.filter(pk=match_id, status=Match.Status.INVITED).update(
            status=Match.Status.WAITING, join_deadline=_join_deadline(timezone.now())
        )
    return Match.objects.get(pk=match_id)


def match_invitation_decline(*, match_id: int, user: User) -> Match:
    """The invited player refuses: the match is cancelled ("invitation_declined") for everyone."""
    seat = MatchPlayer.objects.filter(match_id=match_id, user=user).select_related("match").first()
    if seat is None:
        raise MatchError("not_found", "No such invitation.", status_code=404)
    cancelled = Match.objects.filter(pk=match_id, status=Match.Status.INVITED).update(
        status=Match.Status.CANCELLED, finished_at=timezone.now(), end_reason="invitation_declined"
    )
    if not cancelled:
        raise MatchError("invitation_closed", f"The match is {seat.match.status}: there is nothing to decline.", status_code=409)
    match_cancelled.send(sender=Match, match_id=match_id)
    return Match.objects.get(pk=match_id)


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
    deadline = _join_deadline(timezone.now())
    matches = Match.objects.bulk_create([Match(game=game, source=source, join_deadline=deadline) for _ in seatings])
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
    connected_seats: Sequence[int],
    input_log: list[list[Any]],
) -> bool:
    """Record a finished match's result. Only the first call for a match records anything and returns True:
    whichever process finishes the match, and however often, the result and its effects happen once.
    `connected_seats`: the seats whose player connected at least once; only they are rated (lobby/ratings.py)."""
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
    abandoned, connected = set(abandoned_seats), set(connected_seats)
    seats = list(MatchPlayer.objects.select_for_update().filter(match_id=match_id))
    for seat in seats:
        seat.placing = result.placings[seat.seat]
        seat.score = result.scores[seat.seat]
        seat.abandoned = seat.seat in abandoned
        seat.connected = seat.seat in connected
    MatchPlayer.objects.bulk_update(seats, ["placing", "score", "abandoned", "connected"])
    # Without the input log just written: decoding it back would hold the GIL for nothing (games/selectors.py).
    match = Match.objects.defer("input_log").get(pk=match_id)
    match_finished.send(sender=Match, match=match)
    return True


@transaction.atomic
def match_cancel(*, match_id: int, reason: str, stop_running: bool = True) -> bool:
    """Cancel a match that is not over: no result, no rating change. False if it was over already.

    With `stop_running` (everyone but the match's own tick loop, which ends itself), the process running the match
    and every relay are told once the cancel commits (games/engine/control.py): the loop stops and every player and
    spectator gets match_end and close 4013 within about a tick, on whichever process they are."""
    cancelled = bool(
        Match.objects.filter(pk=match_id, status__in=Match.OPEN).update(
            status=Match.Status.CANCELLED, finished_at=timezone.now(), end_reason=reason[:40]
        )
    )
    if cancelled:
        match_cancelled.send(sender=Match, match_id=match_id)
    if cancelled and stop_running:
        control.stop_match_on_commit(match_id=match_id)
    return cancelled


def match_cancel_overdue(*, now: datetime | None = None) -> int:
    """Cancel matches past their deadline: invitations not all accepted in time ("invitation_expired"), and
    playable matches that nobody runs after their join deadline ("no_show"). Several processes sweep (the engine's
    maintenance round, the matchmaker loop, `manage.py cancel_overdue_matches`): match_cancel's conditional update
    lets exactly one of them cancel each match. Returns how many this call cancelled."""
    now = now or timezone.now()
    overdue = [
        *(
            (pk, "invitation_expired")
            for pk in Match.objects.filter(status=Match.Status.INVITED, invite_expires_at__lte=now)
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        ),
        *(
            (pk, "no_show")
            for pk in Match.objects.filter(status=Match.Status.WAITING, join_deadline__lte=now - NO_SHOW_MARGIN)
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        ),
    ]
    cancelled = sum(match_cancel(match_id=pk, reason=reason) for pk, reason in overdue)
    if cancelled:
        log.info("cancelled %d match(es) past their deadline", cancelled)
    return cancelled


# --- the live-match console (games/admin.py): each action reaches the match wherever it runs and is logged ----------

ENDED_BY_ADMIN = "ended_by_admin"
NOTICE_MAX_CHARS = 500


def _open_match_for(match_id: int) -> Match:
    match = Match.objects.defer("input_log").filter(pk=match_id).first()
    if match is None:
        raise MatchError("not_found", f"There is no match {match_id}.", 404)
    if match.status not in Match.ACTIVE:
        raise MatchError("match_not_live", f"Match {match_id} is {match.status}, not live.", 409)
    return match


def _admin_log(*, user: User, match: Match, message: str) -> None:
    from django.contrib.admin.models import CHANGE, LogEntry

    LogEntry.objects.log_actions(user.pk, [match], CHANGE, change_message=message, single_object=True)


def match_end_live(*, match_id: int, user: User, record_result: bool) -> None:
    """End a live match: with `record_result` its owner ends play at its next tick and records the result as the rules
    rank it then (reason "ended_by_admin"; a match still waiting for players is cancelled instead); without, it is
    cancelled ("cancelled_by_admin": no result, no ratings)."""
    match = _open_match_for(match_id)
    if record_result:
        control.finish_match(match_id=match_id, reason=ENDED_BY_ADMIN)
        _admin_log(user=user, match=match, message="Ended from the live-match console, recording the result.")
    else:
        with transaction.atomic():
            match_cancel(match_id=match_id, reason="cancelled_by_admin")
            _admin_log(user=user, match=match, message="Ended from the live-match console without a result.")


def match_kick(*, match_id: int, seat: int, user: User) -> None:
    """Remove a seat from a live match at its next tick (as if its player left); its sockets close with 4014."""
    match = _open_match_for(match_id)
    player = match.players.select_related("user").filter(seat=seat).first()
    if player is None:
        raise MatchError("bad_seat", f"Match {match_id} has no seat {seat}.")
    control.kick_seat(match_id=match_id, seat=seat)
    _admin_log(user=user, match=match, message=f"Kicked {player.user.username} (seat {seat}) from the live-match console.")


def match_notice(*, match_id: int, text: str, user: User) -> None:
    """A message every socket of a live match receives ({"type": "notice"}); plain text, 1-500 characters."""
    text = text.strip()
    if not text or len(text) > NOTICE_MAX_CHARS:
        raise MatchError("bad_notice", f"A notice has 1 to {NOTICE_MAX_CHARS} characters.")
    match = _open_match_for(match_id)
    control.send_notice(match_id=match_id, text=text)
    _admin_log(user=user, match=match, message=f"Notice sent from the live-match console: {text}")
