"""The matchmaker: groups searching tickets into matches by server-owned rating, and expires old tickets.

`run_one_step()` does one pass and is what tests call. It is safe to run in several processes at once: each game's
searching tickets are locked with SELECT ... FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite has one writer anyway) and
claimed with a conditional update whose row count must match, so a ticket lands in at most one match.
`run_forever()` loops it (the `run_matchmaker` command); `ensure_embedded()` runs the same loop inside a server
process when no worker is alive, so that `scripts/run` alone matches players. docs/lobby.md explains the choices.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import async_to_sync
from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from games.rules import GAMES
from games.services import match_cancel_overdue, match_create_many
from gameserver.broadcast import send_many_on_commit
from gameserver.metrics import DATABASE_RETRIES, MATCHMAKING_WAIT, matchmaking_queue_seen
from lobby import selectors
from lobby.groups import MATCHMAKING_EVENT, matchmaking_group
from lobby.models import Ticket, TicketMember

log = logging.getLogger(__name__)

# Rating window, in openskill mu points (a newcomer is 25 +- 8.3): tight at first, then wider as a ticket waits.
WINDOW_BASE = 3.0
WINDOW_GROWTH_PER_SECOND = 0.5
WINDOW_MAX = 25.0
# A game with more seats than it needs (arena) starts short-handed only after its oldest ticket waited this long.
FILL_WAIT_SECONDS = 20.0
# How many later tickets one ticket looks at for company: keeps a step linear when windows are wide.
LOOKAHEAD = 64
CHUNK = 500
INTERVAL_SECONDS = 1.0
WORKER_KEY = "lobby:matchmaker:worker-alive"


@dataclass(frozen=True, slots=True)
class Queued:
    id: int
    size: int
    rating: float
    waited: float


@dataclass(frozen=True, slots=True)
class StepResult:
    matches: int = 0
    matched_tickets: int = 0
    expired: int = 0


def window(waited: float) -> float:
    return min(WINDOW_MAX, WINDOW_BASE + WINDOW_GROWTH_PER_SECOND * max(0.0, waited))


def form_groups(tickets: Sequence[Queued], *, min_players: int, max_players: int) -> list[list[Queued]]:
    """Pure grouping. Sweep tickets sorted by rating; each one gathers the next ones whose rating gap fits the
    widest window in the group (the longest wait decides), until the match is full. A group that is not full
    still forms once it has enough players and its oldest ticket waited FILL_WAIT_SECONDS."""
    ordered = sorted(tickets, key=lambda t: (t.rating, t.id))
    used = [False] * len(ordered)
    groups: list[list[Queued]] = []
    for i, anchor in enumerate(ordered):
        if used[i] or anchor.size > max_players:
            continue
        members, total = [i], anchor.size
        widest, oldest = window(anchor.waited), anchor.waited
        scanned = 0
        for j in range(i + 1, len(ordered)):
            if total == max_players or scanned == LOOKAHEAD:
                break
            if used[j]:
                continue
            scanned += 1
            other = ordered[j]
            gap = other.rating - anchor.rating
            if gap > WINDOW_MAX:
                break
            other_window = window(other.waited)
            if gap > max(widest, other_window) or total + other.size > max_players:
                continue
            members.append(j)
            total += other.size
            widest, oldest = max(widest, other_window), max(oldest, other.waited)
        if total == max_players or (total >= min_players and oldest >= FILL_WAIT_SECONDS):
            for k in members:
                used[k] = True
            groups.append([ordered[k] for k in members])
    return groups


class ClaimConflictError(Exception):
    """Another matchmaker took one of our tickets: roll the whole step back and try again next time."""


def run_one_step(*, now: datetime | None = None) -> StepResult:
    now = now or timezone.now()
    expired = _expire(now)
    matches = matched = 0
    queue: dict[str, int] = {}
    for game in GAMES:
        try:
            with transaction.atomic():
                game_matches, game_tickets = _match_game(game, now, queue)
        except ClaimConflictError:
            log.warning("matchmaker: tickets of %s were claimed elsewhere; step rolled back", game)
            continue
        matches += game_matches
        matched += game_tickets
    matchmaking_queue_seen(queue)
    return StepResult(matches=matches, matched_tickets=matched, expired=expired)


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[k : k + CHUNK] for k in range(0, len(ids), CHUNK)]


def _claim(ids: list[int], status: str, now: datetime) -> None:
    """Conditionally end searching tickets; any that is no longer searching means someone else owns it now."""
    claimed = sum(
        Ticket.objects.filter(pk__in=chunk, status=Ticket.Status.SEARCHING).update(status=status, ended_at=now)
        for chunk in _chunks(ids)
    )
    if claimed != len(ids):
        raise ClaimConflictError
    for chunk in _chunks(ids):
        TicketMember.objects.filter(ticket_id__in=chunk).update(active=False)


def _claim_for_matches(links: list[tuple[int, int]], now: datetime) -> None:
    """Claim searching tickets and point each at its match in one statement per chunk. Raw SQL because the ORM's
    bulk_update builds a CASE per row, which took seconds for 10,000 tickets; UPDATE ... FROM (VALUES ...) works
    on PostgreSQL and SQLite (3.33+) alike."""
    table = connection.ops.quote_name(Ticket._meta.db_table)
    claimed = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement with typed arrays: PostgreSQL planned the VALUES list badly (~130 ms per 500 rows).
            cursor.execute(
                f"UPDATE {table} SET status = %s, ended_at = %s, match_id = v.match_id "
                f"FROM unnest(%s::bigint[], %s::bigint[]) AS v(ticket_id, match_id) "
                f"WHERE {table}.id = v.ticket_id AND {table}.status = %s",
                [Ticket.Status.MATCHED, now, [t for t, _ in links], [m for _, m in links], Ticket.Status.SEARCHING],
            )
            claimed = cursor.rowcount
        else:
            for k in range(0, len(links), CHUNK):
                chunk = links[k : k + CHUNK]
                values = ", ".join(["(%s, %s)"] * len(chunk))
                cursor.execute(
                    f"UPDATE {table} SET status = %s, ended_at = %s, match_id = v.column2 "
                    f"FROM (VALUES {values}) AS v WHERE {table}.id = v.column1 AND {table}.status = %s",
                    [Ticket.Status.MATCHED, now, *(n for pair in chunk for n in pair), Ticket.Status.SEARCHING],
                )
                claimed += cursor.rowcount
    if claimed != len(links):
        raise ClaimConflictError
    for chunk in _chunks([ticket_id for ticket_id, _ in links]):
        TicketMember.objects.filter(ticket_id__in=chunk).update(active=False)


@transaction.atomic
def _expire(now: datetime) -> int:
    queued = Ticket.objects.select_for_update(skip_locked=True).filter(
        status=Ticket.Status.SEARCHING, expires_at__lte=now
    )
    ids = list(queued.values_list("id", flat=True))
    if not ids:
        return 0
    _claim(ids, Ticket.Status.EXPIRED, now)
    _notify(ids, now)
    return len(ids)


def _match_game(game: str, now: datetime, queue: dict[str, int]) -> tuple[int, int]:
    """Matches what it can of one game's queue; `queue` gets the game's count of searching tickets (the metrics)."""
    game_settings = GAMES[game].settings
    rows = list(
        Ticket.objects.select_for_update(skip_locked=True)
        .filter(game=game, status=Ticket.Status.SEARCHING, expires_at__gt=now)
        .values_list("id", "size", "rating", "created_at", "expires_at")
    )
    queue[game] = len(rows)
    if not rows:
        return 0, 0
    locked = {row[0] for row in rows}
    party: dict[int, list[int]] = {}
    people: dict[int, list[dict]] = {}  # for the status messages, so matched tickets need not be read again
    inactive: set[int] = set()
    # By ticket id (an index lookup) rather than by joining on game and status, whose plan depends on statistics
    # that go stale as the queue churns: one stale plan took 12 s for 10,000 tickets.
    for chunk in _chunks(sorted(locked)):
        members = TicketMember.objects.filter(ticket_id__in=chunk, active=True)
        rows_of_members = members.order_by("id").values_list(
            "ticket_id", "user_id", "user__is_active", "user__username"
        )
        for ticket_id, user_id, is_active, username in rows_of_members:
            party.setdefault(ticket_id, []).append(user_id)
            people.setdefault(ticket_id, []).append({"id": user_id, "username": username})
            if not is_active:
                inactive.add(ticket_id)
    if inactive:
        # A user banned while queued: the ticket ends instead of dragging others into a match they cannot play.
        _claim(sorted(inactive), Ticket.Status.CANCELLED, now)
        _notify(sorted(inactive), now)
    queued = [
        Queued(id=i, size=size, rating=rating, waited=(now - created).total_seconds())
        for i, size, rating, created, _ in rows
        if i not in inactive and i in party
    ]
    groups = form_groups(queued, min_players=game_settings.min_players, max_players=game_settings.max_players)
    if not groups:
        return 0, 0
    seatings = [[user_id for t in group for user_id in party[t.id]] for group in groups]
    matches = match_create_many(game=game, seatings=seatings, source="matchmaking")
    links = [(t.id, match.pk) for match, group in zip(matches, groups, strict=True) for t in group]
    _claim_for_matches(links, now)
    _notify_matched(game, links, rows, people, now)
    waits = [t.waited for group in groups for t in group]
    transaction.on_commit(lambda: _observe_waits(game, waits))
    return len(groups), len(links)


def _observe_waits(game: str, waits: list[float]) -> None:
    histogram = MATCHMAKING_WAIT.labels(game)
    for waited in waits:
        histogram.observe(waited)


def _notify_matched(
    game: str, links: list[tuple[int, int]], rows: list[tuple], people: dict[int, list[dict]], now: datetime
) -> None:
    """Tell the players of freshly matched tickets where to go, from what this step already read."""
    times = {ticket_id: (created, expires) for ticket_id, _, _, created, expires in rows}
    messages = []
    for ticket_id, match_id in links:
        created, expires = times[ticket_id]
        row = {
            "id": ticket_id,
            "game": game,
            "status": Ticket.Status.MATCHED,
            "created_at": created,
            "expires_at": expires,
            "ended_at": now,
            "match_id": match_id,
        }
        payload = {
            "type": "ticket.update",
            "ticket": selectors.ticket_snapshot_from(ticket=row, party=people[ticket_id], now=now, estimate=None),
        }
        messages.extend(
            (matchmaking_group(user["id"]), {"type": MATCHMAKING_EVENT, "payload": payload})
            for user in people[ticket_id]
        )
    send_many_on_commit(messages)


def _notify(ticket_ids: list[int], now: datetime) -> None:
    """Tell every party member of the given tickets their new status, after commit, in one batch."""
    messages = []
    for chunk in _chunks(ticket_ids):
        for user_ids, snapshot in selectors.ticket_snapshots(ticket_ids=chunk, now=now):
            payload = {"type": "ticket.update", "ticket": snapshot}
            messages.extend(
                (matchmaking_group(user_id), {"type": MATCHMAKING_EVENT, "payload": payload}) for user_id in user_ids
            )
    send_many_on_commit(messages)


# --- loops -----------------------------------------------------------------------------------------------------------


def _step_logged() -> StepResult | None:
    try:
        result = run_one_step()
        # Every loop of the matchmaker (worker or in-process) also cancels matches past their deadline.
        match_cancel_overdue()
        return result
    except DatabaseError:
        # SQLite refuses a second writer now and then; the next step retries.
        log.exception("matchmaker step failed")
        DATABASE_RETRIES.labels("matchmaker_step").inc()
        return None
    finally:
        close_old_connections()


def run_forever(*, stop: threading.Event, interval: float = INTERVAL_SECONDS) -> None:
    """The worker loop: announce itself (so that embedded loops stand down), step, sleep, until stop is set."""
    while not stop.is_set():
        cache.set(WORKER_KEY, True, timeout=max(3, int(interval * 5)))
        result = _step_logged()
        if result and (result.matches or result.expired):
            log.info("matchmaker: %d matches from %d tickets, %d expired", *_counts(result))
        stop.wait(interval)


def _counts(result: StepResult) -> tuple[int, int, int]:
    return result.matches, result.matched_tickets, result.expired


_embedded_task: asyncio.Task | None = None


async def _embedded_loop() -> None:
    step = DatabaseSyncToAsync(_step_logged, thread_sensitive=False)
    while True:
        if not await DatabaseSyncToAsync(cache.get, thread_sensitive=False)(WORKER_KEY):
            await step()
        await asyncio.sleep(INTERVAL_SECONDS)


async def ensure_embedded_async() -> None:
    """Start the in-process loop on this server's event loop once (so its broadcasts go out on that loop)."""
    global _embedded_task
    if settings.MATCHMAKER_IN_PROCESS and (_embedded_task is None or _embedded_task.done()):
        _embedded_task = asyncio.get_running_loop().create_task(_embedded_loop())


def ensure_embedded() -> None:
    """From a sync view running under daphne: start the in-process loop on the server's event loop."""
    if settings.MATCHMAKER_IN_PROCESS and (_embedded_task is None or _embedded_task.done()):
        async_to_sync(ensure_embedded_async)()
