"""Reads about matches for the engine, the consumers and the API."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from games.models import Match


@dataclass(frozen=True, slots=True)
class PlayerInfo:
    seat: int
    user_id: int
    username: str


@dataclass(frozen=True, slots=True)
class MatchInfo:
    match_id: int
    game: str
    seed: int
    status: str
    players: tuple[PlayerInfo, ...]
    join_deadline: float  # Unix time by which players must have arrived

    def seat_of(self, user_id: int) -> int | None:
        return next((p.seat for p in self.players if p.user_id == user_id), None)

    def players_message(self) -> list[dict[str, Any]]:
        return [{"seat": p.seat, "user_id": p.user_id, "username": p.username} for p in self.players]


def match_info(*, match_id: int) -> MatchInfo | None:
    # Never the input log: a finished match's can be megabytes of JSON, decoded in the database thread with the GIL
    # held while every match of the process waits for its next tick.
    match = Match.objects.defer("input_log").filter(pk=match_id).first()
    if match is None:
        return None
    players = tuple(
        PlayerInfo(seat=seat, user_id=user_id, username=username)
        for seat, user_id, username in match.players.order_by("seat").values_list("seat", "user_id", "user__username")
    )
    # Matches created before deadlines were stored get the usual time from now.
    deadline = match.join_deadline.timestamp() if match.join_deadline else time.time() + settings.MATCH_JOIN_TIMEOUT_SECONDS
    return MatchInfo(
        match_id=match.pk, game=match.game, seed=match.seed, status=match.status, players=players, join_deadline=deadline
    )


def match_end_message(*, match_id: int) -> dict[str, Any]:
    """The match_end message, from what the database recorded (the same for every process and every reconnect)."""
    match = Match.objects.defer("input_log").get(pk=match_id)  # see match_info
    results = [
        {
            "seat": p.seat,
            "user_id": p.user_id,
            "username": p.user.username,
            "placing": p.placing,
            "score": p.score,
            "abandoned": p.abandoned,
        }
        for p in match.players.select_related("user").order_by("seat")
    ]
    return {
        "type": "match_end",
        "match": match.pk,
        "status": match.status,
        "reason": match.end_reason,
        "duration": match.duration_seconds,
        "ticks": match.ticks,
        "results": results,
    }


# The console lists the newest this many live matches (an operator looks for one; the metrics count them all).
LIVE_ROWS_MAX = 500


def live_matches() -> list[dict[str, Any]]:
    """The live-match console's rows: every waiting or running match, with what the processes report of it
    (games/engine/live.py; nothing when no process runs it yet) and its players. Raises when Redis is unreachable."""
    from games.engine import live

    reported = live.live_matches(live.read_summaries())
    rows = []
    matches = Match.objects.defer("input_log").filter(status__in=Match.ACTIVE).order_by("-pk")[:LIVE_ROWS_MAX]
    for match in matches.prefetch_related("players__user"):
        entry = reported.get(match.pk, {"owner": None, "spectators": 0, "processes": [], "seats_on": {}})
        connected, removed = entry.get("connected"), entry.get("removed")
        players = [
            {
                "seat": p.seat,
                "username": p.user.username,
                "state": ("left" if removed and removed[p.seat] else "connected" if connected and connected[p.seat]
                          else "offline" if connected else "unknown"),
                "process": entry["seats_on"].get(str(p.seat)),
            }
            for p in match.players.all()
        ]
        rows.append({
            "match_id": match.pk, "game": match.game, "status": match.status, "source": match.source,
            "phase": entry.get("phase"), "tick": entry.get("tick"), "tick_ms": entry.get("tick_ms"),
            "max_tick_ms": entry.get("max_tick_ms"), "owner": entry["owner"], "spectators": entry["spectators"],
            "processes": sorted(set(entry["processes"])), "players": players,
        })
    return rows


def replay_visible_to(*, match: Match, user) -> bool:
    """REPLAY_VISIBILITY "everyone": any logged-in user, for a game that allows spectators; otherwise (and with
    "players") only the match's players. Staff always."""
    from games.rules import GAMES

    if user.is_staff:
        return True
    game = GAMES.get(match.game)
    if settings.REPLAY_VISIBILITY == "everyone" and game is not None and game.settings.spectators_allowed:
        return True
    return match.players.filter(user_id=user.pk).exists()


def spectator_counts() -> dict[int, int] | None:
    """Spectators per live match over every process (games/engine/live.py); None when they cannot be read."""
    from games.engine import live

    try:
        return {mid: entry["spectators"] for mid, entry in live.live_matches(live.read_summaries()).items()}
    except Exception:  # Redis away: the list still lists, without counts
        return None
