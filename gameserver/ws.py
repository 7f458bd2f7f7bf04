"""WebSocket plumbing shared by every consumer: authentication, close codes, and the base consumer.

Browsers authenticate with their session cookie. Other clients either fetch a single-use ticket over REST
(POST /api/auth/ws-ticket/) and connect to `...?ticket=<ticket>`, or send `Authorization: Token <key>` as a header
when their WebSocket library allows headers. Long-lived tokens never go in URLs, which end up in proxy logs.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Coroutine
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
from gameserver.closecodes import CloseCode
from gameserver.directws import CONNECTING, EXTENSION, DirectSocket, Sink, SocketLimits, frame_message
from gameserver.logs import log_context
from gameserver.wirecounts import OPEN_SOCKETS, closed_with, wire_counts

log = logging.getLogger(__name__)


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
    closes the socket; the error code names what was wrong when credentials were given but are no good, or is
    "service_unavailable" when the database or the cache could not be asked (the socket is then closed with 4503)."""
    from gameserver.api_errors import SERVICE_ERRORS

    try:
        return await _authenticate(scope)
    except SERVICE_ERRORS as exc:
        log.warning("WebSocket handshake refused, a service is unreachable: %s: %s", type(exc).__name__, str(exc)[:200])
        return AnonymousUser(), None, "service_unavailable"


async def _authenticate(scope: dict[str, Any]) -> tuple[Any, str | None, str | None]:
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
        if error == "service_unavailable":
            await refuse_handshake(receive, send, CloseCode.TRY_AGAIN_LATER, "service unavailable, try again later")
            return None
        scope = dict(scope, user=user, credential_group=group, auth_error=error)
        return await super().__call__(scope, receive, send)


async def refuse_handshake(receive, send, code: int, reason: str) -> None:
    """Accept then close with `code`, before any consumer runs: the client sees the code, not a bare HTTP 403."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code, "reason": reason})
    closed_with(code)


class WebSocketSessionMiddleware(BaseMiddleware):
    """scope["session"] from the session cookie, read-only. Channels' SessionMiddleware also wraps `send` to save the
    session on HTTP responses; a WebSocket never saves one, yet that wrapper ran for every snapshot to every socket."""

    async def __call__(self, scope, receive, send):
        store = import_module(settings.SESSION_ENGINE).SessionStore
        scope = dict(scope, session=store(scope["cookies"].get(settings.SESSION_COOKIE_NAME)))
        return await super().__call__(scope, receive, send)


class WebSocketConnectionLimitMiddleware(BaseMiddleware):
    """At most WS_MAX_CONNECTIONS_PER_ADDRESS open sockets per client address and WS_MAX_CONNECTIONS_PER_USER per user,
    in this process: what one client can make a process hold (a consumer, its tasks, its group memberships) is bounded
    by the count of its sockets. Over either, the socket is accepted and closed with 4029, before any consumer runs.
    Counted per process: behind a load balancer a client's sockets spread over several."""

    def __init__(self, inner):
        super().__init__(inner)
        self.by_address: dict[str, int] = {}
        self.by_user: dict[int, int] = {}

    async def __call__(self, scope, receive, send):
        address = (scope.get("client") or ("unknown",))[0] or "unknown"
        user = scope.get("user")
        user_id = user.pk if user is not None and user.is_authenticated else None
        if self._over(self.by_address, address, settings.WS_MAX_CONNECTIONS_PER_ADDRESS) or (
            user_id is not None and self._over(self.by_user, user_id, settings.WS_MAX_CONNECTIONS_PER_USER)
        ):
            await self._refuse(receive, send)
            return
        self.by_address[address] = self.by_address.get(address, 0) + 1
        if user_id is not None:
            self.by_user[user_id] = self.by_user.get(user_id, 0) + 1
        try:
            return await super().__call__(scope, receive, send)
        finally:
            self._release(self.by_address, address)
            if user_id is not None:
                self._release(self.by_user, user_id)

    @staticmethod
    def _over(counts: dict, key, limit: int) -> bool:
        return bool(limit) and counts.get(key, 0) >= limit

    @staticmethod
    def _release(counts: dict, key) -> None:
        left = counts[key] - 1
        if left:
            counts[key] = left
        else:
            del counts[key]

    @staticmethod
    async def _refuse(receive, send) -> None:
        # Accept then close, as the consumers do, so that the client sees the code rather than a bare HTTP 403.
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": CloseCode.TOO_MANY_CONNECTIONS, "reason": "too many connections"})
        closed_with(CloseCode.TOO_MANY_CONNECTIONS)


def WebSocketAuthStack(inner):  # noqa: N802 - named like Channels' AuthMiddlewareStack
    return CookieMiddleware(WebSocketSessionMiddleware(WebSocketAuthMiddleware(WebSocketConnectionLimitMiddleware(inner))))


# --- per-socket message rate ----------------------------------------------------------------------------------------


class MessageRateLimit:
    """A socket's message rate: a token bucket of `burst` refilled at `per_second`. A message over it is dropped (the
    client hears `rate_limited`, at most once a second: `should_tell`), and more than `max_dropped` drops within
    `window` seconds mean the socket is closed (4008)."""

    ADMIT, DROP, CLOSE = "admit", "drop", "close"
    __slots__ = ("per_second", "burst", "max_dropped", "window", "tokens", "tokens_at", "dropped", "window_at", "told_at")

    def __init__(self, *, per_second: float, burst: float, max_dropped: int, window: float = 10.0):
        self.per_second, self.burst, self.max_dropped, self.window = per_second, burst, max_dropped, window
        self.tokens = burst
        self.tokens_at = time.monotonic()
        self.dropped = 0
        self.window_at = 0.0
        self.told_at = float("-inf")

    def admit(self) -> str:
        now = time.monotonic()
        tokens = self.tokens + (now - self.tokens_at) * self.per_second
        self.tokens = tokens if tokens < self.burst else self.burst  # min() without its call: every message
        self.tokens_at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return self.ADMIT
        return self.drop()

    def drop(self) -> str:
        """A message dropped anyway (over the rate, or no room to queue it): DROP, or CLOSE past max_dropped."""
        now = time.monotonic()
        if now - self.window_at > self.window:
            self.window_at, self.dropped = now, 0
        self.dropped += 1
        return self.CLOSE if self.dropped > self.max_dropped else self.DROP

    def should_tell(self) -> bool:
        now = time.monotonic()
        if now - self.told_at < 1.0:
            return False
        self.told_at = now
        return True


class Outlet:
    """The one way to send to a socket, whatever the server under it: `send` and `close` are synchronous and never
    raise, so the tick, a read callback or a handler can call them alike.

    A direct socket (gameserver/directws.py) writes at once, the frame's bytes framed once for every socket of a
    match. On plain ASGI (a server without the extension, Channels' test communicator) frames wait in order for one
    writer task per socket; while that queue is long (a client that does not read), frames that a newer one
    supersedes (`droppable`) are skipped, as a direct socket skips them past its buffer bound. Frames are duck-typed
    (games.engine.protocol.Frame): `framed(binary, frame_it)` and `wires`, `send_event(binary)`, `droppable`, `stream_n`.
    """

    ASGI_SKIP_DROPPABLE_AFTER = 32  # queued frames
    __slots__ = ("binary", "closed", "deltas", "snapshot_n", "_consumer", "_direct", "_queue", "_ready")

    def __init__(self, consumer: BaseConsumer, *, binary: bool) -> None:
        self.binary = binary
        self.closed = False
        # Protocol v2 (games/engine/snapshots.py): whether snapshots go as deltas, and the stream number of the last
        # one written to this socket (None: the next must be a keyframe). A skipped snapshot leaves it behind.
        self.deltas = False
        self.snapshot_n: int | None = None
        self._consumer = consumer
        self._direct = consumer.direct
        self._queue: collections.deque | None = None
        if self._direct is None:
            self._queue = collections.deque()
            self._ready = asyncio.Event()
            consumer.start_task(self._write_queued())

    def send(self, frame: Any) -> None:
        if self.closed:
            return
        if self._direct is not None:
            wire = frame.wires[self.binary]  # framed already for an earlier socket (framed() builds it once)
            if wire is None:
                wire = frame.framed(self.binary, frame_message)
            if self._direct.send_wire(wire, frame.droppable) and frame.stream_n is not None:
                self.snapshot_n = frame.stream_n
            return
        if frame.droppable and len(self._queue) >= self.ASGI_SKIP_DROPPABLE_AFTER:
            return
        self._queue.append(frame)
        self._ready.set()

    def close(self, code: int) -> None:
        """Close with `code` after what was sent before (a match_end, then 4013)."""
        if self.closed:
            return
        self.closed = True
        if self._direct is not None:
            self._direct.close(code)
        else:
            self._queue.append(code)
            self._ready.set()

    def gone(self) -> None:
        """The client went away: nothing more is written."""
        self.closed = True
        if self._queue is not None:
            self._queue.clear()

    async def _write_queued(self) -> None:
        consumer = self._consumer
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                item = self._queue.popleft()
                try:
                    if isinstance(item, int):
                        await consumer.close(item)
                        return
                    await consumer.base_send(item.send_event(self.binary))
                except Exception:  # the peer vanished; its disconnect event is on its way
                    self.gone()
                    return
                if item.stream_n is not None:
                    self.snapshot_n = item.stream_n


# --- channel-layer errors ------------------------------------------------------------------------------------------

LAYER_ERROR_LOG_SECONDS = 30.0
_layer_error_logged_at = float("-inf")


def log_layer_error(what: str, exc: BaseException) -> None:
    """A channel-layer error (Redis away) is contained where it happens; logged at most once per 30 s per process, so
    that an outage is one line per process, not one per socket."""
    global _layer_error_logged_at
    now = time.monotonic()
    if now - _layer_error_logged_at >= LAYER_ERROR_LOG_SECONDS:
        _layer_error_logged_at = now
        log.warning("channel layer unavailable (%s: %s: %s); sockets stay open", what, type(exc).__name__, exc)


# --- base consumer -------------------------------------------------------------------------------------------------


class BaseConsumer(AsyncWebsocketConsumer):
    """Authenticated consumer: refuses anonymous sockets with 4001 and closes with 4012 when the user is banned
    or logs out the credential the socket was opened with."""

    user: Any
    personal_groups: list[str]
    direct: DirectSocket | None = None  # the server's direct-socket extension, once attached (gameserver/directws.py)
    metrics_kind = "other"  # its traffic's label in the metrics (gameserver/wirecounts.py)
    accepted = False

    async def __call__(self, scope, receive, send):
        """Channels' loop (await_many_dispatch) makes a new task and an asyncio.wait per message; at 20 inputs a
        second per player that was a large share of the server. Here the client's messages are read in this task,
        and channel-layer events in one long-lived task; a lock keeps handlers one at a time, as Channels does."""
        self.scope = scope
        self._asgi_send = send
        self.base_send = self._send_counted
        self._counts = wire_counts(self.metrics_kind)
        user = scope.get("user")
        log_context(match_id=scope.get("url_route", {}).get("kwargs", {}).get("match_id"),
                    user_id=user.pk if user is not None and user.is_authenticated else None)
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self._dispatch_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.start_task(self._dispatch_layer_events(asyncio.current_task()))
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.receive":  # plain ASGI; direct sockets count in directws.py
                    self._counts.messages_in += 1
                async with self._dispatch_lock:
                    await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            if self.accepted:
                OPEN_SOCKETS[self.metrics_kind] -= 1
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _send_counted(self, message: dict[str, Any]) -> None:
        """The ASGI send, counted for the metrics: accepts always; messages and closes while the socket is not direct
        (a direct socket counts what it writes itself, gameserver/directws.py)."""
        kind = message["type"]
        if kind == "websocket.accept" and not self.accepted:
            self.accepted = True
            OPEN_SOCKETS[self.metrics_kind] += 1
        elif self.direct is None or self.direct.state == CONNECTING:
            if kind == "websocket.send":
                self._counts.messages_out += 1
                self._counts.bytes_out += len(message.get("bytes") or (message.get("text") or "").encode())
            elif kind == "websocket.close":
                closed_with(message.get("code") or 1000)
        await self._asgi_send(message)

    def start_task(self, coroutine: Coroutine) -> None:
        """A task that lives as long as the consumer (cancelled when it stops)."""
        self._tasks.append(asyncio.create_task(coroutine))

    def attach_direct(self, sink: Sink, *, max_message_bytes: int) -> DirectSocket | None:
        """Take the server's direct-socket extension when it offers one (call before accepting): the client's messages
        then go to `sink.on_message`, and DirectSocket enforces the per-socket bounds of settings.WS_* with our close
        codes (4009 too big, 4008 too many frames). None under a server without it (plain daphne, the test
        communicator): messages come as websocket.receive events."""
        extension = self.scope.get("extensions", {}).get(EXTENSION)
        if extension is None:
            return None
        self.direct = extension["socket"]
        self.direct.attach(
            sink,
            max_message_bytes=max_message_bytes,
            too_big_code=CloseCode.MESSAGE_TOO_BIG,
            rate_limited_code=CloseCode.RATE_LIMITED,
            limits=SocketLimits.from_settings(),
            counts=self._counts,
        )
        return self.direct

    async def _dispatch_layer_events(self, consumer_task: asyncio.Task) -> None:
        try:
            while True:
                try:
                    message = await self.channel_layer.receive(self.channel_name)
                except (asyncio.CancelledError, StopConsumer):
                    raise
                except Exception as exc:
                    # Redis away: the socket stays open (its match does not need the layer) and listens again later.
                    log_layer_error("receive", exc)
                    await asyncio.sleep(1.0)
                    continue
                async with self._dispatch_lock:
                    await self.dispatch(message)
        except StopConsumer:
            consumer_task.cancel()  # a handler ended the consumer from this side: stop reading the socket too
        except Exception:
            # A bug in a handler, as a crash in Channels' own loop would: the socket closes with 1011, and its
            # disconnect ends the consumer.
            log.exception("%s failed on a channel-layer event", type(self).__name__)
            await self.close(1011)

    async def join_group(self, group: str) -> bool:
        """group_add, False (logged) when the layer is unreachable."""
        try:
            await self.channel_layer.group_add(group, self.channel_name)
            return True
        except Exception as exc:
            log_layer_error("group_add", exc)
            return False

    async def leave_group(self, group: str) -> None:
        """group_discard that never raises: a disconnect must run to its end whatever the layer does (an unreachable
        Redis drops the membership by itself: channels_redis' group_expiry)."""
        try:
            await self.channel_layer.group_discard(group, self.channel_name)
        except Exception as exc:
            log_layer_error("group_discard", exc)

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
            if not await self.join_group(group):
                # Without its personal groups a socket could not be closed on logout or ban: refused, to retry soon.
                await self.accept(self.choose_subprotocol())
                await self.close(CloseCode.TRY_AGAIN_LATER)
                return
        await self.connect()

    async def websocket_disconnect(self, message):
        try:
            for group in getattr(self, "personal_groups", []):
                await self.leave_group(group)
        finally:
            await self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    def choose_subprotocol(self) -> str | None:
        return None

    async def session_revoke(self, event: dict[str, Any]) -> None:
        await self.close(CloseCode.REVOKED, reason=event.get("reason", "revoked"))
