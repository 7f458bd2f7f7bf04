"""WebSocket consumers: a lobby's live events and chat (ws/lobbies/<code>/), and matchmaking status (ws/matchmaking/).
docs/lobby.md lists every message."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError

from games.engine.protocol import MAX_MESSAGE_BYTES
from gameserver.closecodes import CloseCode
from gameserver.ws import BaseConsumer, MessageRateLimit
from lobby import matchmaker, presence, selectors, services
from lobby.groups import lobby_group, matchmaking_group
from lobby.models import Lobby, LobbyMember

log = logging.getLogger(__name__)

MAX_BAD_MESSAGES = 10
# Client messages waiting for the consumer (a chat line waits for the database): past this they are dropped as over
# the rate. The rate limit keeps it from filling but for a client that bursts while the database is slow.
INBOX_SIZE = 16


class ClientError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class JsonConsumer(BaseConsumer):
    """Decodes client messages, dispatches on "type" to `command_<type>`, and turns errors into one error message.

    On a server that offers the direct-socket extension (deploy/daphne_ws.py, deploy/uvicorn_ws.py) the socket is
    direct, as match sockets are: DirectSocket bounds frames and message size, `on_message` applies the message rate
    from the read callback and queues what it admits, and one task handles the queue in order. Elsewhere (plain
    daphne, the test communicator) messages come as websocket.receive events, under the same rate limit."""

    bad_messages = 0

    async def websocket_connect(self, message):
        self.rate = MessageRateLimit(
            per_second=settings.WS_LOBBY_RATE_PER_SECOND,
            burst=settings.WS_LOBBY_RATE_BURST,
            max_dropped=settings.WS_LOBBY_MAX_DROPPED,
        )
        if self.attach_direct(self, max_message_bytes=MAX_MESSAGE_BYTES) is not None:
            self.inbox: asyncio.Queue[tuple[str | None, bytes | None]] = asyncio.Queue(INBOX_SIZE)
            self.start_task(self._handle_inbox())
        await super().websocket_connect(message)

    # --- receiving ---------------------------------------------------------------------------------------------

    def on_message(self, text: str | None, data: bytes | None) -> None:
        """A client message on a direct socket, from the server's read callback: admit it or refuse it, now."""
        verdict = self.rate.admit()
        if verdict == MessageRateLimit.ADMIT:
            if not self.inbox.full():
                self.inbox.put_nowait((text, data))
                return
            verdict = self.rate.drop()
        if verdict == MessageRateLimit.CLOSE:
            self.direct.close(CloseCode.RATE_LIMITED)
        elif self.rate.should_tell():
            self.direct.send_message(text=json.dumps(self._rate_limited_error()))

    async def _handle_inbox(self) -> None:
        while True:
            text, data = await self.inbox.get()
            if not self.direct.is_open:
                continue  # closed meanwhile (by us, or the client): what it sent before does not matter any more
            async with self._dispatch_lock:
                try:
                    await self.receive(text, data)
                except Exception:
                    log.exception("%s failed on a client message", type(self).__name__)
                    await self.close(1011)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        """A client message through ASGI (no direct socket): the same rate limit."""
        verdict = self.rate.admit()
        if verdict == MessageRateLimit.ADMIT:
            await super().websocket_receive(message)
        elif verdict == MessageRateLimit.CLOSE:
            await self.close(CloseCode.RATE_LIMITED)
        elif self.rate.should_tell():
            await self.send_json(self._rate_limited_error())

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        raw = text_data if text_data is not None else bytes_data or b""
        if len(raw.encode() if isinstance(raw, str) else raw) > MAX_MESSAGE_BYTES:
            await self.close(CloseCode.MESSAGE_TOO_BIG)
            return
        try:
            try:
                message = json.loads(text_data or "")
            except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
                raise ClientError("bad_message", "Send JSON objects with a type.") from None
            kind = message.get("type") if isinstance(message, dict) else None
            handler = getattr(self, f"command_{kind}", None) if isinstance(kind, str) and kind.isidentifier() else None
            if handler is None:
                raise ClientError("unknown_type", f"Unknown message type {str(kind)[:40]!r}.")
            await handler(message)
        except ClientError as exc:
            self.bad_messages += 1
            await self.send_json({"type": "error", "error": exc.code, "message": str(exc)})
            if self.bad_messages >= MAX_BAD_MESSAGES:
                await self.close(CloseCode.TOO_MANY_ERRORS)

    # --- sending -----------------------------------------------------------------------------------------------

    async def send_json(self, content: dict[str, Any]) -> None:
        # A direct socket ignores sends after the close. Through ASGI the server may raise once the client has gone
        # (autobahn: "send on a closed protocol"); its disconnect event is on its way, and there is no one to tell.
        try:
            await self.send(text_data=json.dumps(content))
        except Exception as exc:
            log.debug("%s: a send after the client left: %r", type(self).__name__, exc)

    def _rate_limited_error(self) -> dict[str, Any]:
        message = f"Over {settings.WS_LOBBY_RATE_PER_SECOND} messages per second; messages are being dropped."
        return {"type": "error", "error": "rate_limited", "message": message}


@database_sync_to_async
def _lobby_access(code: str, user) -> tuple[str | None, dict[str, Any] | None]:
    lobby = selectors.lobby_by_code(code=code)
    if lobby is None or lobby.status == Lobby.Status.CLOSED:
        return "not_found", None
    if not LobbyMember.objects.filter(lobby=lobby, user=user).exists():
        return "forbidden", None
    return None, {
        "lobby": selectors.lobby_snapshot(lobby=lobby),
        "chat": selectors.lobby_chat_history(lobby=lobby, limit=services.CHAT_HISTORY_LINES),
    }


class LobbyConsumer(JsonConsumer):
    """Members only. Sends the lobby's state and recent chat on connect, then every change and chat line as it
    happens."""

    metrics_kind = "lobby"

    group: str | None = None

    # --- socket handlers -----------------------------------------------------------------------------------------

    async def connect(self) -> None:
        code = self.scope["url_route"]["kwargs"]["code"].upper()
        problem, state = await _lobby_access(code, self.user)
        await self.accept()
        if problem:
            await self.close(CloseCode.NOT_FOUND if problem == "not_found" else CloseCode.FORBIDDEN)
            return
        self.code = code
        if not await self.join_group(lobby_group(code)):
            await self.close(CloseCode.TRY_AGAIN_LATER)  # Redis away: the lobby's events could not reach this socket
            return
        self.group = lobby_group(code)
        await self.send_json({"type": "lobby.state", **state})

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.leave_group(self.group)

    # --- commands ------------------------------------------------------------------------------------------------

    async def command_chat(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        if not isinstance(text, str):
            raise ClientError("bad_message", "chat needs a text string.")
        try:
            await database_sync_to_async(services.lobby_chat)(user=self.user, code=self.code, text=text)
        except services.LobbyError as exc:
            raise ClientError(exc.code, str(exc)) from None

    # --- channel-layer handlers ----------------------------------------------------------------------------------

    async def lobby_event(self, event: dict[str, Any]) -> None:
        payload = event["payload"]
        await self.send_json(payload)
        if payload["type"] == "lobby.update":
            members = {member["id"] for member in payload["lobby"]["members"]}
            if self.user.pk not in members:
                # Left, kicked, or the lobby closed: this socket has nothing more to hear.
                await self.close(CloseCode.FORBIDDEN)


@database_sync_to_async
def _active_ticket(user) -> dict[str, Any] | None:
    ticket = selectors.ticket_active_for(user=user)
    return selectors.ticket_snapshot(ticket=ticket) if ticket else None


async def _presence(change, user_id: int) -> int | None:
    """Run a lobby.presence call off the event loop; None when the cache (Redis) could not answer."""
    try:
        return await sync_to_async(change, thread_sensitive=False)(user_id=user_id)
    except Exception:  # Redis away: presence unknown, and an unknown presence never cancels a ticket
        log.warning("matchmaking presence of user %s unavailable", user_id, exc_info=True)
        return None


# Pending away checks, referenced until they finish: the consumer that started one is gone by then.
_away_checks: set[asyncio.Task] = set()


async def _cancel_if_still_away(user) -> None:
    """The user's last matchmaking socket closed: unless one reopened meanwhile (the next page of the site), their
    searching ticket stops, so that nobody is matched with a player who left."""
    await asyncio.sleep(settings.MATCHMAKING_AWAY_SECONDS)
    if await _presence(presence.count, user.pk) != 0:
        return
    try:
        ticket = await database_sync_to_async(services.ticket_abandon)(user=user)
    except DatabaseError:
        log.warning("could not cancel the ticket of user %s, who left; it expires as usual", user.pk, exc_info=True)
        return
    if ticket is not None:
        log.info("ticket %s cancelled: user %s left while queued", ticket.pk, user.pk)


class MatchmakingConsumer(JsonConsumer):
    """The user's own socket, open on every page: pushes the status of the user's tickets (the active one, or null,
    on connect) and announces each match created for the user (match.created). Open sockets hold the user's ticket:
    when the last one closes and none reopens within MATCHMAKING_AWAY_SECONDS, it is cancelled."""

    metrics_kind = "matchmaking"
    counted = False

    async def connect(self) -> None:
        if not await self.join_group(matchmaking_group(self.user.pk)):
            await self.accept()
            await self.close(CloseCode.TRY_AGAIN_LATER)  # Redis away: the ticket's news could not reach this socket
            return
        await self.accept()
        self.counted = await _presence(presence.arrive, self.user.pk) is not None
        await self.send_json({"type": "matchmaking.state", "ticket": await _active_ticket(self.user)})
        await matchmaker.ensure_embedded_async()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "user", None) is not None and self.user.is_authenticated:
            await self.leave_group(matchmaking_group(self.user.pk))
            if self.counted and await _presence(presence.depart, self.user.pk) == 0:
                task = asyncio.get_running_loop().create_task(_cancel_if_still_away(self.user))
                _away_checks.add(task)
                task.add_done_callback(_away_checks.discard)

    async def matchmaking_event(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])
