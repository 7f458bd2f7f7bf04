"""WebSocket plumbing shared by every consumer: authentication, close codes, and the base consumer.

Browsers authenticate with their session cookie. Other clients either fetch a single-use ticket over REST
(POST /api/auth/ws-ticket/) and connect to `...?ticket=<ticket>`, or send `Authorization: Token <key>` as a header
when their WebSocket library allows headers. Long-lived tokens never go in URLs, which end up in proxy logs.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.middleware import BaseMiddleware
from channels.sessions import CookieMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from gameserver.broadcast import credential_group, user_group

log = logging.getLogger(__name__)


class CloseCode:
    """Our WebSocket close codes (4000-4999). docs/protocol.md lists them with what a client should do."""

    UNAUTHENTICATED = 4001  # no or bad credentials: log in again, do not retry blindly
    PROTOCOL_VERSION = 4002  # unsupported protocol version: upgrade the client
    FORBIDDEN = 4003  # authenticated but not allowed here (no seat, spectators not allowed, not a member)
    NOT_FOUND = 4004  # no such match or lobby
    TOO_MANY_ERRORS = 4007  # kept sending malformed messages
    RATE_LIMITED = 4008  # sent messages faster than allowed
    MESSAGE_TOO_BIG = 4009  # a message over the size limit
    SERVER_RESTART = 4010  # this process is shutting down: reconnect now, to any process
    REPLACED = 4011  # the same seat was opened by a newer connection
    REVOKED = 4012  # logged out or banned while connected
    MATCH_OVER = 4013  # the match has finished (or was cancelled): nothing more to play here


# --- authentication -----------------------------------------------------------------------------------------------


@database_sync_to_async
def _user_by_token(key: str):
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


async def authenticate_websocket(scope: dict[str, Any]) -> tuple[Any, str | None, str | None]:
    """(user, credential group, error code). The credential group is joined so that logging that credential out
    closes the socket; the error code names what was wrong when credentials were given but are no good."""
    from gameserver.accounts.services import ws_ticket_redeem

    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if "ticket" in query:
        # Refused when unknown here (used, expired, or issued by another deployment: cache keys are per deployment)
        # or when its credential was revoked since it was issued.
        redeemed = await database_sync_to_async(ws_ticket_redeem)(ticket=query["ticket"][0][:200])
        if redeemed is None:
            return AnonymousUser(), None, "invalid_ticket"
        return redeemed[0], redeemed[1], None

    authorization = _header(scope, b"authorization")
    if authorization:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "token" or not key.strip():
            return AnonymousUser(), None, "invalid_token"
        user = await _user_by_token(key.strip())
        return (user, credential_group(key.strip()), None) if user else (AnonymousUser(), None, "invalid_token")

    user = await get_user(scope)
    session = scope.get("session")
    group = credential_group(session.session_key) if user.is_authenticated and session.session_key else None
    return user, group, None


class WebSocketAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        user, group, error = await authenticate_websocket(scope)
        scope = dict(scope, user=user, credential_group=group, auth_error=error)
        return await super().__call__(scope, receive, send)


class WebSocketSessionMiddleware(BaseMiddleware):
    """scope["session"] from the session cookie, read-only. Channels' SessionMiddleware also wraps `send` to save the
    session on HTTP responses; a WebSocket never saves one, yet that wrapper ran for every snapshot to every socket."""

    async def __call__(self, scope, receive, send):
        store = import_module(settings.SESSION_ENGINE).SessionStore
        scope = dict(scope, session=store(scope["cookies"].get(settings.SESSION_COOKIE_NAME)))
        return await super().__call__(scope, receive, send)


def WebSocketAuthStack(inner):  # noqa: N802 - named like Channels' AuthMiddlewareStack
    return CookieMiddleware(WebSocketSessionMiddleware(WebSocketAuthMiddleware(inner)))


# --- base consumer -------------------------------------------------------------------------------------------------


class BaseConsumer(AsyncWebsocketConsumer):
    """Authenticated consumer: refuses anonymous sockets with 4001 and closes with 4012 when the user is banned
    or logs out the credential the socket was opened with."""

    user: Any
    personal_groups: list[str]

    async def __call__(self, scope, receive, send):
        """Channels' loop (await_many_dispatch) makes a new task and an asyncio.wait per message; at 20 inputs a
        second per player that was a large share of the server. Here the client's messages are read in this task,
        and channel-layer events in one long-lived task; a lock keeps handlers one at a time, as Channels does."""
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self._dispatch_lock = asyncio.Lock()
        layer_task = None
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            layer_task = asyncio.create_task(self._dispatch_layer_events(asyncio.current_task()))
        try:
            while True:
                message = await receive()
                async with self._dispatch_lock:
                    await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            if layer_task is not None:
                layer_task.cancel()
                await asyncio.gather(layer_task, return_exceptions=True)

    async def _dispatch_layer_events(self, consumer_task: asyncio.Task) -> None:
        try:
            while True:
                message = await self.channel_layer.receive(self.channel_name)
                async with self._dispatch_lock:
                    await self.dispatch(message)
        except StopConsumer:
            consumer_task.cancel()  # a handler ended the consumer from this side: stop reading the socket too
        except Exception:
            # As a crash in Channels' own loop would: the socket closes with 1011, and its disconnect ends the consumer.
            log.exception("%s failed on a channel-layer event", type(self).__name__)
            await self.close(1011)

    async def dispatch(self, message):
        # Channels awaits aclose_old_connections() (a thread hop) before every handler; ours touch the database
        # only through database_sync_to_async, which closes old connections itself, so the hop is skipped.
        kind = message["type"]
        handler = None if kind.startswith("_") else getattr(self, kind.replace(".", "_"), None)
        if handler is None:
            # An event for a group this consumer shares with others (user.<id>) that it has no use for.
            log.warning("%s ignores an event of type %r", type(self).__name__, kind[:60])
            return
        await handler(message)

    async def websocket_connect(self, message):
        self.user = self.scope.get("user") or AnonymousUser()
        self.personal_groups = []
        if not self.user.is_authenticated:
            # Accept then close, so that the client sees our close code instead of a bare HTTP 403.
            await self.accept(self.choose_subprotocol())
            await self.close(CloseCode.UNAUTHENTICATED)
            return
        self.personal_groups = [user_group(self.user.pk)]
        if self.scope.get("credential_group"):
            self.personal_groups.append(self.scope["credential_group"])
        for group in self.personal_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.connect()

    async def websocket_disconnect(self, message):
        for group in getattr(self, "personal_groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        await self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    def choose_subprotocol(self) -> str | None:
        return None

    async def session_revoke(self, event: dict[str, Any]) -> None:
        await self.close(CloseCode.REVOKED, reason=event.get("reason", "revoked"))
