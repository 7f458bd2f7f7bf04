"""State changes of lobbies and matchmaking tickets. Each locks what it changes, and tells WebSocket sessions after
commit through gameserver.broadcast."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from games.models import Match
from games.rules import UnknownGame, get_game
from games.services import MatchError, match_create
from gameserver.accounts.models import User
from gameserver.broadcast import send_on_commit
from lobby import selectors
from lobby.groups import LOBBY_EVENT, MATCHMAKING_EVENT, lobby_group, match_pointer, matchmaking_group
from lobby.models import ChatLine, Lobby, LobbyMember, Rating, Ticket, TicketMember
from lobby.ratings import DEFAULT_MU

CHAT_MAX_LENGTH = 500
CHAT_BURST = 5
CHAT_WINDOW_SECONDS = 5
# Lines a lobby keeps for (re)connecting members: enough to follow the conversation, few enough for one message.
CHAT_HISTORY_LINES = 50
TICKET_TTL_SECONDS = 600


class LobbyError(Exception):
    """A refused lobby or ticket action. kind is one of not_found, forbidden, conflict, invalid."""

    def __init__(self, code: str, message: str, *, kind: str = "conflict"):
        super().__init__(message)
        self.code = code
        self.kind = kind


def _game_settings(game: str):
    try:
        return get_game(game).settings
    except UnknownGame:
        raise LobbyError("unknown_game", f"There is no game called {game!r}.", kind="invalid") from None


# --- lobbies -------------------------------------------------------------------------------------------------------


def _locked_lobby(code: str) -> Lobby:
    lobby = Lobby.objects.select_for_update(of=("self",)).select_related("host").filter(code=code.upper()).first()
    if lobby is None:
        raise LobbyError("lobby_not_found", "There is no lobby with that code.", kind="not_found")
    return lobby


def _membership(lobby: Lobby, user: User) -> LobbyMember:
    member = LobbyMember.objects.filter(lobby=lobby, user=user).first()
    if member is None:
        raise LobbyError("not_a_member", "You are not in this lobby.", kind="forbidden")
    return member


def _require_host(lobby: Lobby, user: User) -> None:
    _membership(lobby, user)
    if lobby.host_id != user.pk:
        raise LobbyError("not_host", "Only the host can do that.", kind="forbidden")


def _require_open(lobby: Lobby) -> None:
    if lobby.status == Lobby.Status.CLOSED:
        raise LobbyError("lobby_closed", "This lobby is closed.")
    if lobby.status == Lobby.Status.IN_MATCH:
        raise LobbyError("lobby_in_match", "This lobby is in a match.")


def _require_no_ticket(user: User) -> None:
    if selectors.ticket_active_for(user=user) is not None:
        raise LobbyError("ticket_active", "Cancel your matchmaking ticket first.")


def _broadcast(lobby: Lobby, event: str, **extra: Any) -> None:
    payload = {"type": "lobby.update", "event": event, **extra, "lobby": selectors.lobby_snapshot(lobby=lobby)}
    send_on_commit(lobby_group(lobby.code), {"type": LOBBY_EVENT, "payload": payload})


def _add_member(lobby: Lobby, user: User) -> None:
    try:
        with transaction.atomic():
            LobbyMember.objects.create(lobby=lobby, user=user)
    except IntegrityError:
        raise LobbyError("already_in_lobby", "You are already in a lobby; leave it first.") from None


@transaction.atomic
def lobby_create(*, user: User, game: str, size: int | None = None, is_public: bool = True) -> Lobby:
    settings = _game_settings(game)
    size = size or settings.max_players
    if not settings.min_players <= size <= settings.max_players:
        raise LobbyError(
            "bad_size",
            f"{settings.name} lobbies hold {settings.min_players} to {settings.max_players} players.",
            kind="invalid",
        )
    _require_no_ticket(user)
    lobby = Lobby.objects.create(game=game, size=size, is_public=is_public, host=user)
    _add_member(lobby, user)
    return lobby


@transaction.atomic
def lobby_join(*, user: User, code: str) -> Lobby:
    lobby = _locked_lobby(code)
    if LobbyMember.objects.filter(lobby=lobby, user=user).exists():
        return lobby
    _require_open(lobby)
    if selectors.lobby_member_count(lobby=lobby) >= lobby.size:
        raise LobbyError("lobby_full", "This lobby is full.")
    _require_no_ticket(user)
    _add_member(lobby, user)
    _broadcast(lobby, "member_joined", user=selectors.user_brief(user))
    return lobby


def _remove_member(lobby: Lobby, user: User, event: str) -> Lobby:
    LobbyMember.objects.filter(lobby=lobby, user=user).delete()
    _cancel_party_search(user)
    if lobby.host_id == user.pk:
        # Host passes to whoever joined earliest.
        successor = LobbyMember.objects.filter(lobby=lobby).order_by("joined_at", "id").first()
        lobby.host = successor.user if successor else None
    if lobby.host is None:
        lobby.status, lobby.closed_at = Lobby.Status.CLOSED, timezone.now()
    lobby.save(update_fields=["host", "status", "closed_at"])
    _broadcast(lobby, event, user=selectors.user_brief(user))
    return lobby


def _cancel_party_search(user: User) -> None:
    """A member who leaves (or is kicked) takes the party's search down with them: the party queued as it was, and a
    match for the old party would seat someone who is no longer in it."""
    ticket = Ticket.objects.filter(
        members__user=user, members__active=True, status=Ticket.Status.SEARCHING, size__gt=1
    ).first()
    if ticket is None:
        return
    now = timezone.now()
    if _ticket_end([ticket.pk], Ticket.Status.CANCELLED, now):
        ticket_notify(ticket=ticket, now=now)


@transaction.atomic
def lobby_leave(*, user: User, code: str) -> Lobby:
    lobby = _locked_lobby(code)
    _membership(lobby, user)
    return _remove_member(lobby, user, "member_left")


@transaction.atomic
def lobby_kick(*, user: User, code: str, user_id: int) -> Lobby:
    lobby = _locked_lobby(code)
    _require_host(lobby, user)
    if user_id == user.pk:
        raise LobbyError("cannot_kick_self", "The host cannot kick themselves; leave instead.", kind="invalid")
    member = LobbyMember.objects.filter(lobby=lobby, user_id=user_id).select_related("user").first()
    if member is None:
        raise LobbyError("not_a_member", "That user is not in this lobby.", kind="not_found")
    return _remove_member(lobby, member.user, "member_kicked")


@transaction.atomic
def lobby_set_ready(*, user: User, code: str, ready: bool) -> Lobby:
    lobby = _locked_lobby(code)
    member = _membership(lobby, user)
    _require_open(lobby)
    if member.ready != ready:
        LobbyMember.objects.filter(pk=member.pk).update(ready=ready)
        _broadcast(lobby, "ready_changed", user=selectors.user_brief(user), ready=ready)
    return lobby


@transaction.atomic
def lobby_start(*, user: User, code: str) -> Lobby:
    """Start the lobby's match: the host may start once every other member is ready and there are enough of them."""
    lobby = _locked_lobby(code)
    _require_host(lobby, user)
    _require_open(lobby)
    members = list(LobbyMember.objects.filter(lobby=lobby).select_related("user").order_by("joined_at", "id"))
    settings = _game_settings(lobby.game)
    if len(members) < settings.min_players:
        raise LobbyError("not_enough_players", f"{settings.name} needs at least {settings.min_players} players.")
    if any(not m.ready for m in members if m.user_id != user.pk):
        raise LobbyError("players_not_ready", "Every member must be ready before the match starts.")
    if TicketMember.objects.filter(user__in=[m.user for m in members], active=True).exists():
        raise LobbyError("ticket_active", "A member is queued in matchmaking; cancel that ticket first.")
    try:
        match = match_create(game=lobby.game, users=[m.user for m in members], source="lobby")
    except MatchError as exc:
        raise LobbyError(exc.code, str(exc)) from None
    lobby.status, lobby.match = Lobby.Status.IN_MATCH, match
    lobby.save(update_fields=["status", "match"])
    LobbyMember.objects.filter(lobby=lobby).update(ready=False)
    _broadcast(lobby, "started", match=match_pointer(match.pk))
    return lobby


@transaction.atomic
def lobby_rematch(*, user: User, code: str) -> Lobby:
    """Make sure a lobby whose match is over is open again, so that its members ready up and start again. A lobby
    reopens by itself when its match ends (lobby_match_over); this is the host's way to the same state, and it
    answers the open lobby as it is when that already happened."""
    lobby = _locked_lobby(code)
    _require_host(lobby, user)
    if lobby.match_id is None or lobby.status == Lobby.Status.CLOSED:
        raise LobbyError("no_match", "This lobby has no match to follow up.")
    if Match.objects.filter(pk=lobby.match_id, status__in=Match.ACTIVE).exists():
        raise LobbyError("match_in_progress", "The lobby's match is still being played.")
    if lobby.status == Lobby.Status.OPEN:
        return lobby
    lobby.status = Lobby.Status.OPEN
    lobby.save(update_fields=["status"])
    _broadcast(lobby, "rematch")
    return lobby


@transaction.atomic
def lobby_match_over(*, match_id: int, match_status: str) -> Lobby | None:
    """The lobby's match finished or was cancelled: the lobby opens again by itself, so that every member is back in
    the room, readies up and the host starts the next match (a rematch). Called from the match's own transaction
    (lobby/receivers.py), which says how it ended (`match_status`: finished or cancelled); None when no lobby was
    playing this match."""
    lobby = (
        Lobby.objects.select_for_update(of=("self",))
        .select_related("host")
        .filter(match_id=match_id, status=Lobby.Status.IN_MATCH)
        .first()
    )
    if lobby is None:
        return None
    lobby.status = Lobby.Status.OPEN
    lobby.save(update_fields=["status"])
    LobbyMember.objects.filter(lobby=lobby).update(ready=False)
    _broadcast(lobby, "match_over", match=match_pointer(match_id), match_status=match_status)
    return lobby


@transaction.atomic
def lobby_close(*, lobby: Lobby) -> None:
    """Close a lobby and send its members away (admin action)."""
    lobby = _locked_lobby(lobby.code)
    if lobby.status == Lobby.Status.CLOSED:
        return
    LobbyMember.objects.filter(lobby=lobby).delete()
    lobby.status, lobby.closed_at = Lobby.Status.CLOSED, timezone.now()
    lobby.save(update_fields=["status", "closed_at"])
    _broadcast(lobby, "closed")


@transaction.atomic
def lobby_chat(*, user: User, code: str, text: str) -> None:
    """Relay a chat line to the lobby as plain text; clients must render it as text, never as HTML. The lobby keeps
    its last CHAT_HISTORY_LINES lines, which members get on connect (selectors.lobby_chat_history)."""
    text = "".join(ch for ch in text if ch.isprintable()).strip()
    if not text:
        raise LobbyError("empty_message", "The message is empty.", kind="invalid")
    if len(text) > CHAT_MAX_LENGTH:
        raise LobbyError("message_too_long", f"Messages are at most {CHAT_MAX_LENGTH} characters.", kind="invalid")
    lobby = selectors.lobby_by_code(code=code)
    if lobby is None or lobby.status == Lobby.Status.CLOSED:
        raise LobbyError("lobby_not_found", "There is no lobby with that code.", kind="not_found")
    _membership(lobby, user)
    key = f"lobby:chat-rate:{user.pk}"
    cache.add(key, 0, CHAT_WINDOW_SECONDS)
    if cache.incr(key) > CHAT_BURST:
        raise LobbyError("chat_rate_limited", f"At most {CHAT_BURST} messages per {CHAT_WINDOW_SECONDS} s.")
    line = ChatLine.objects.create(lobby=lobby, user=user, text=text)
    # Trim to the newest lines; concurrent lines of one lobby may each trim, which only deletes the same old rows.
    newest = ChatLine.objects.filter(lobby=lobby).order_by("-id").values_list("id", flat=True)
    oldest_stale = list(newest[CHAT_HISTORY_LINES : CHAT_HISTORY_LINES + 1])
    if oldest_stale:
        ChatLine.objects.filter(lobby=lobby, id__lte=oldest_stale[0]).delete()
    payload = {"type": "lobby.chat", **selectors.chat_line(line=line, user=user)}
    send_on_commit(lobby_group(lobby.code), {"type": LOBBY_EVENT, "payload": payload})


def match_announce(*, match: Match, users: list[User], invited_by: User | None) -> None:
    """Tell each player of a new match on whatever page they are (their ws/matchmaking/ sockets), after commit. The
    invited ones (invited_by set) are asked to accept; the others are expected at the match. Whoever invited has the
    match in the answer to their request already and is not told again."""
    payload = {
        "type": "match.created",
        "match": match_pointer(match.pk),
        "game": match.game,
        "source": match.source,
        "players": [selectors.user_brief(user) for user in users],
        "invited": invited_by is not None,
        "invited_by": selectors.user_brief(invited_by) if invited_by is not None else None,
    }
    for user in users:
        if invited_by is None or user.pk != invited_by.pk:
            send_on_commit(matchmaking_group(user.pk), {"type": MATCHMAKING_EVENT, "payload": payload})


# --- matchmaking tickets -------------------------------------------------------------------------------------------


def ticket_notify(*, ticket: Ticket, now=None) -> None:
    """Push a ticket's status to every party member's matchmaking sockets, after commit."""
    for user_ids, snapshot in selectors.ticket_snapshots(ticket_ids=[ticket.pk], now=now):
        payload = {"type": "ticket.update", "ticket": snapshot}
        for user_id in user_ids:
            send_on_commit(matchmaking_group(user_id), {"type": MATCHMAKING_EVENT, "payload": payload})


@transaction.atomic
def ticket_create(*, user: User, game: str, lobby_code: str | None = None) -> Ticket:
    """Queue the user, or with lobby_code the host's whole lobby as one party (its size fits the game), for a game."""
    _game_settings(game)
    if lobby_code:
        lobby = _locked_lobby(lobby_code)
        _require_host(lobby, user)
        _require_open(lobby)
        if lobby.game != game:
            raise LobbyError("wrong_game", f"This lobby plays {lobby.game}, not {game}.", kind="invalid")
        members = list(LobbyMember.objects.filter(lobby=lobby).select_related("user"))
        if any(not m.ready for m in members if m.user_id != user.pk):
            raise LobbyError("players_not_ready", "Every party member must be ready before queueing.")
        party = [m.user for m in members]
    else:
        mine = LobbyMember.objects.filter(user=user).select_related("lobby").first()
        if mine is not None:
            raise LobbyError(
                "in_lobby", f"You are in lobby {mine.lobby.code}: leave it first, or queue it as a party with its code."
            )
        party = [user]
    mus = dict(Rating.objects.filter(game=game, user__in=party).values_list("user_id", "mu"))
    rating = sum(mus.get(member.pk, DEFAULT_MU) for member in party) / len(party)
    now = timezone.now()
    ticket = Ticket.objects.create(
        owner=user, game=game, size=len(party), rating=rating, expires_at=now + timedelta(seconds=TICKET_TTL_SECONDS)
    )
    try:
        with transaction.atomic():
            TicketMember.objects.bulk_create(TicketMember(ticket=ticket, user=member) for member in party)
    except IntegrityError:
        raise LobbyError("ticket_exists", "You (or a party member) already have an active ticket.") from None
    ticket_notify(ticket=ticket, now=now)
    return ticket


def _ticket_end(ticket_ids: list[int], status: str, now) -> int:
    """Move searching tickets to a final status; the row count says how many this call claimed."""
    ended = Ticket.objects.filter(pk__in=ticket_ids, status=Ticket.Status.SEARCHING).update(status=status, ended_at=now)
    if ended:
        TicketMember.objects.filter(ticket_id__in=ticket_ids, active=True).update(active=False)
    return ended


@transaction.atomic
def ticket_abandon(*, user: User) -> Ticket | None:
    """The user left while queued (their matchmaking sockets closed and stayed closed): their searching ticket, a
    party's too, is cancelled as if they had pressed Cancel. None when there was nothing searching."""
    ticket = Ticket.objects.filter(members__user=user, members__active=True, status=Ticket.Status.SEARCHING).first()
    if ticket is None:
        return None
    now = timezone.now()
    if not _ticket_end([ticket.pk], Ticket.Status.CANCELLED, now):
        return None  # matched or cancelled meanwhile
    ticket.refresh_from_db()
    ticket_notify(ticket=ticket, now=now)
    return ticket


@transaction.atomic
def ticket_cancel(*, user: User | None, ticket_id: int) -> Ticket:
    """Cancel a searching ticket; any party member may, and user=None is the admin."""
    tickets = Ticket.objects.all() if user is None else Ticket.objects.filter(members__user=user)
    ticket = tickets.filter(pk=ticket_id).first()
    if ticket is None:
        raise LobbyError("ticket_not_found", "There is no such ticket of yours.", kind="not_found")
    now = timezone.now()
    if not _ticket_end([ticket.pk], Ticket.Status.CANCELLED, now):
        ticket.refresh_from_db()
        raise LobbyError("ticket_not_searching", f"The ticket is already {ticket.status}.")
    ticket.refresh_from_db()
    ticket_notify(ticket=ticket, now=now)
    return ticket
