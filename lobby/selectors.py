"""Reads of the lobby app: lobby and ticket snapshots (the same shape over REST and WebSocket), the open-lobby list,
wait estimates, leaderboards and match history."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from games.models import Match, MatchPlayer
from gameserver.accounts.models import User
from lobby.groups import match_pointer
from lobby.models import ChatLine, Lobby, LobbyMember, Rating, RatingChange, Ticket, TicketMember

# Used until the server has seen matches of a game: about the time the rating window takes to open wide.
WAIT_ESTIMATE_FALLBACK_SECONDS = 30.0
WAIT_ESTIMATE_SAMPLE = 200
WAIT_ESTIMATE_CACHE_SECONDS = 10


def user_brief(user: User | None) -> dict[str, Any] | None:
    return {"id": user.pk, "username": user.username} if user else None


def lobby_by_code(*, code: str) -> Lobby | None:
    return Lobby.objects.select_related("host").filter(code=code.upper()).first()


def lobby_snapshot(*, lobby: Lobby) -> dict[str, Any]:
    members = LobbyMember.objects.filter(lobby=lobby).select_related("user")
    return {
        "id": lobby.pk,
        "code": lobby.code,
        "game": lobby.game,
        "size": lobby.size,
        "public": lobby.is_public,
        "status": lobby.status,
        "host": user_brief(lobby.host),
        "members": [
            {"id": m.user_id, "username": m.user.username, "ready": m.ready, "host": m.user_id == lobby.host_id}
            for m in members
        ],
        "match": match_pointer(lobby.match_id) if lobby.match_id else None,
        "created_at": lobby.created_at.isoformat(),
    }


def lobby_of(*, user: User) -> Lobby | None:
    """The lobby the user is in (at most one), or None."""
    return Lobby.objects.select_related("host").filter(members__user=user).first()


def chat_line(*, line: ChatLine, user: User) -> dict[str, Any]:
    return {"user": user_brief(user), "text": line.text, "at": line.created_at.isoformat()}


def lobby_chat_history(*, lobby: Lobby, limit: int) -> list[dict[str, Any]]:
    """The lobby's last `limit` chat lines, oldest first, in the shape of lobby.chat."""
    lines = list(ChatLine.objects.filter(lobby=lobby).select_related("user").order_by("-id")[:limit])
    return [chat_line(line=line, user=line.user) for line in reversed(lines)]


def lobby_open_public(*, game: str | None = None) -> QuerySet[Lobby]:
    lobbies = (
        Lobby.objects.filter(status=Lobby.Status.OPEN, is_public=True)
        .select_related("host")
        .annotate(member_count=Count("members"))
    )
    return lobbies.filter(game=game) if game else lobbies


def lobby_member_count(*, lobby: Lobby) -> int:
    return LobbyMember.objects.filter(lobby=lobby).count()


def ticket_active_for(*, user: User) -> Ticket | None:
    return Ticket.objects.filter(members__user=user, members__active=True).first()


def ticket_visible_to(*, user: User, ticket_id: int) -> Ticket | None:
    return Ticket.objects.filter(pk=ticket_id, members__user=user).first()


def wait_estimate_seconds(*, game: str) -> float:
    """Median wait of the game's recently matched tickets, cached briefly: every status read needs it."""
    key = f"lobby:wait-estimate:{game}"
    estimate = cache.get(key)
    if estimate is None:
        recent = Ticket.objects.filter(game=game, status=Ticket.Status.MATCHED).order_by("-ended_at")
        waits = [
            (ended - created).total_seconds()
            for created, ended in recent.values_list("created_at", "ended_at")[:WAIT_ESTIMATE_SAMPLE]
        ]
        estimate = statistics.median(waits) if waits else WAIT_ESTIMATE_FALLBACK_SECONDS
        cache.set(key, estimate, WAIT_ESTIMATE_CACHE_SECONDS)
    return estimate


def ticket_snapshot_from(
    *, ticket: Mapping[str, Any], party: list[dict[str, Any]], now: datetime, estimate: float | None
) -> dict[str, Any]:
    """A ticket's status message from its row (id, game, status, created_at, expires_at, ended_at, match_id)."""
    waited = ((ticket["ended_at"] or now) - ticket["created_at"]).total_seconds()
    searching = ticket["status"] == Ticket.Status.SEARCHING
    return {
        "id": ticket["id"],
        "game": ticket["game"],
        "status": ticket["status"],
        "party": party,
        "created_at": ticket["created_at"].isoformat(),
        "expires_at": ticket["expires_at"].isoformat(),
        "waited_seconds": round(max(0.0, waited), 1),
        "estimated_wait_seconds": round(estimate, 1) if searching and estimate is not None else None,
        "match": match_pointer(ticket["match_id"]) if ticket["match_id"] else None,
    }


def ticket_snapshots(*, ticket_ids: list[int], now: datetime | None = None) -> list[tuple[list[int], dict[str, Any]]]:
    """(party user ids, snapshot) per ticket, in two queries however many tickets."""
    now = now or timezone.now()
    party: dict[int, list[dict[str, Any]]] = {}
    members = TicketMember.objects.filter(ticket_id__in=ticket_ids).order_by("id")
    for ticket_id, user_id, username in members.values_list("ticket_id", "user_id", "user__username"):
        party.setdefault(ticket_id, []).append({"id": user_id, "username": username})
    estimates: dict[str, float] = {}
    result = []
    rows = Ticket.objects.filter(pk__in=ticket_ids).order_by("id")
    for ticket in rows.values("id", "game", "status", "created_at", "expires_at", "ended_at", "match_id"):
        game = ticket["game"]
        if ticket["status"] == Ticket.Status.SEARCHING and game not in estimates:
            estimates[game] = wait_estimate_seconds(game=game)
        members_of = party.get(ticket["id"], [])
        snapshot = ticket_snapshot_from(ticket=ticket, party=members_of, now=now, estimate=estimates.get(game))
        result.append(([member["id"] for member in members_of], snapshot))
    return result


def ticket_snapshot(*, ticket: Ticket, now: datetime | None = None) -> dict[str, Any]:
    return ticket_snapshots(ticket_ids=[ticket.pk], now=now)[0][1]


def leaderboard(*, game: str) -> QuerySet[Rating]:
    return Rating.objects.filter(game=game).select_related("user").order_by("-ordinal", "id")


def rating_rank(*, rating: Rating) -> int:
    """1-based place in the game's leaderboard, in the leaderboard's own order (ordinal, then id)."""
    ahead = Rating.objects.filter(game=rating.game).filter(
        Q(ordinal__gt=rating.ordinal) | Q(ordinal=rating.ordinal, id__lt=rating.pk)
    )
    return ahead.count() + 1


def rating_of(*, user: User, game: str) -> Rating | None:
    return Rating.objects.filter(user=user, game=game).first()


def match_history(*, user: User) -> QuerySet[MatchPlayer]:
    return (
        MatchPlayer.objects.filter(user=user, match__status=Match.Status.FINISHED)
        .select_related("match")
        .order_by("-match__finished_at", "-match_id")
    )


def rating_changes_by_match(*, user: User, match_ids: list[int]) -> dict[int, RatingChange]:
    return {c.match_id: c for c in RatingChange.objects.filter(user=user, match_id__in=match_ids)}


def match_seats(*, match_ids: list[int]) -> dict[int, list[MatchPlayer]]:
    """Every seat of each match, in seat order, with its user: a history row's player count and opponents."""
    seats: dict[int, list[MatchPlayer]] = {}
    for seat in MatchPlayer.objects.filter(match_id__in=match_ids).select_related("user").order_by("match_id", "seat"):
        seats.setdefault(seat.match_id, []).append(seat)
    return seats


def rating_changes_of_match(*, match_id: int) -> QuerySet[RatingChange]:
    return RatingChange.objects.filter(match_id=match_id).select_related("user").order_by("user_id")
