"""ws/matches/<id>/: one consumer per player or spectator socket. Thin: it authorizes, decodes, rate-limits and
dispatches; inputs go to the match host, and everything this socket is sent goes through its Outlet
(gameserver/ws.py), which hides whether the socket is direct or plain ASGI."""

from __future__ import annotations

import time
from typing import Any

from channels.db import database_sync_to_async

from games import selectors
from games.engine import protocol
from games.engine.delay import DelayedOutlet
from games.engine.host import get_host
from games.engine.protocol import ClientMessageError, Frame
from games.rules import get_game
from games.rules.base import InputError
from gameserver.api_errors import SERVICE_ERRORS
from gameserver.closecodes import CloseCode
from gameserver.ws import BaseConsumer, MessageRateLimit, Outlet, log_layer_error

LATE_INPUT_CODES = frozenset({"stale_input", "input_rejected"})
# Messages a direct socket may deliver while connect() still waits for the match host (a busy process can take
# seconds to start a match): a few seconds of a client's inputs.
MAX_EARLY_MESSAGES = 4 * int(protocol.RATE_BURST)


class MatchConsumer(BaseConsumer):
    # What every input and snapshot reads, in slots: CPython 3.11 keeps instance attributes inline only while a class
    # has fewer than 30 names, and Channels' and BaseConsumer's own (13, in the instance dict) with these came to 28
    # (tests/games/test_attribute_layout.py; docs/benchmarks.md, "The runner's attributes").
    __slots__ = (
        "match_id",
        "seat",
        "info",
        "binary",
        "version",
        "out",
        "attached",
        "serving",  # accepted as a player or spectator: client messages are handled
        "game",
        "read_compact",
        "host",
        "last_seq",
        "rate",
        "bad_messages",
        "early",
    )
    metrics_kind = "match"
    match_id: int
    info: selectors.MatchInfo
    out: Outlet

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seat: int | None = None
        self.binary = False
        self.version = 1
        self.attached = False
        self.serving = False

    # --- socket handlers -------------------------------------------------------------------------------------

    def choose_subprotocol(self) -> str | None:
        chosen = protocol.choose_subprotocol(self.scope.get("subprotocols", ()))
        if chosen is None or not chosen.name:
            return None
        return chosen.name

    async def connect(self) -> None:
        self.match_id = self.scope["url_route"]["kwargs"]["match_id"]
        chosen = protocol.choose_subprotocol(self.scope.get("subprotocols", ()))
        if chosen is None:
            await self._refuse(CloseCode.PROTOCOL_VERSION)
            return
        self.binary, self.version = chosen.binary, chosen.version
        try:
            info = await database_sync_to_async(selectors.match_info)(match_id=self.match_id)
        except SERVICE_ERRORS:
            # PostgreSQL is away: nothing is known of the match yet; the client reconnects in a few seconds.
            await self._refuse(CloseCode.TRY_AGAIN_LATER)
            return
        if info is None:
            await self._refuse(CloseCode.NOT_FOUND)
            return
        if info.status == "invited":
            await self._refuse(CloseCode.FORBIDDEN)  # not every invited player accepted yet: nothing to join
            return
        self.info = info
        self.game = get_game(info.game)
        self.read_compact = protocol.compact_reader(self.game.settings.input_fields)  # protocol v2's compact inputs
        self.seat = info.seat_of(self.user.pk)
        if self.seat is None and not self.game.settings.spectators_allowed:
            await self._refuse(CloseCode.FORBIDDEN)
            return
        self.host = host = get_host()
        if host.closing:
            await self._refuse(CloseCode.SERVER_RESTART)
            return
        self.attach_direct(self, max_message_bytes=protocol.MAX_MESSAGE_BYTES)
        self.out = Outlet(self, binary=self.binary)
        # Protocol v2: snapshots go out as deltas (games/engine/snapshots.py).
        self.out.deltas = chosen.version >= protocol.DELTA_VERSION
        await self.accept(chosen.name or None)
        if self.direct is not None and not self.direct.is_open:
            # The server completes the handshake inside accept(): the client went away meanwhile.
            self.out.gone()
            return
        self.last_seq = 0
        self.rate = MessageRateLimit(
            per_second=protocol.RATE_PER_SECOND,
            burst=protocol.RATE_BURST,
            max_dropped=protocol.MAX_RATE_VIOLATIONS,
            window=protocol.RATE_VIOLATION_WINDOW_SECONDS,
        )
        self.bad_messages = 0
        # A direct socket delivers messages as they arrive, even while this method still awaits the host: those
        # wait here until the host knows the socket (inputs would be refused as too late before that).
        self.early: list[tuple[str | None, bytes | None]] | None = []
        self.serving = True
        self.out.send(Frame(self._welcome()))
        if info.status not in ("waiting", "running"):
            try:
                end = await database_sync_to_async(selectors.match_end_message)(match_id=self.match_id)
            except SERVICE_ERRORS:
                self.out.close(CloseCode.TRY_AGAIN_LATER)
                return
            self.out.send(Frame(end))
            self.out.close(CloseCode.MATCH_OVER)
            return
        if self.seat is None and self.game.settings.spectator_delay_seconds:
            self.out = DelayedOutlet(self.out, self.game.settings.spectator_delay_seconds)
        self.attached = True
        try:
            await host.attach(self)
        except Exception as exc:  # Redis away and this process neither runs nor relays the match: retry soon
            log_layer_error("attach", exc)
            self.attached = False
            await host.detach(self)
            self.out.close(CloseCode.TRY_AGAIN_LATER)
            return
        early, self.early = self.early, None
        for text, data in early:
            if not self.out.closed:
                self._handle(text, data)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "out"):
            self.out.gone()
        if self.attached:
            self.attached = False
            await get_host().detach(self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """A client message through ASGI (a server without the direct-socket extension, or the test communicator)."""
        if not self.serving or self.out.closed:
            return
        size = len(bytes_data) if bytes_data is not None else len(text_data.encode() if not text_data.isascii() else text_data)
        if size > protocol.MAX_MESSAGE_BYTES:
            self.out.close(CloseCode.MESSAGE_TOO_BIG)
            return
        self.on_message(text_data, bytes_data)

    def on_message(self, text: str | None, data: bytes | None) -> None:
        """One client message. Synchronous: a direct socket calls it from the server's read callback. Checked in this
        order: the message rate, then (once the host knows the socket) decoding, the type, and the type's own checks."""
        if not self.serving or self.out.closed:
            return
        verdict = self.rate.admit()
        if verdict != MessageRateLimit.ADMIT:
            self._over_rate(verdict)
            return
        if self.early is not None:
            # Kept in arrival order for after attach (handling a later one first would make the rest stale). The
            # rate limit bounds them; so does this cap, past which they are refused like any over the rate.
            if len(self.early) < MAX_EARLY_MESSAGES:
                self.early.append((text, data))
            else:
                self._over_rate(self.rate.drop())
            return
        self._handle(text, data)

    def _handle(self, text: str | None, data: bytes | None) -> None:
        try:
            message = protocol.decode(text, data, compact=self.out.deltas)
            if type(message) is list:  # protocol v2's compact input
                seq, raw = self.read_compact(message)
                self._input(seq, raw)
                return
            kind = message["type"]
            if kind == "input":
                self._input(protocol.read_seq(message), message.get("input"))
            elif kind == "ping":
                self._pong(message)
            elif kind == "leave":
                self._leave()
            elif kind == "keyframe" and self.out.deltas:
                self._keyframe()
            else:
                raise ClientMessageError("unknown_type", f"Unknown message type {kind[:40]!r}.")
        except ClientMessageError as exc:
            self._client_error(exc)

    # --- message handlers -------------------------------------------------------------------------------------

    def _input(self, seq: int, raw: Any) -> None:
        if self.seat is None:
            raise ClientMessageError("not_a_player", "Spectators cannot send inputs.", seq)
        try:
            parsed = self.game.parse_input(raw)
        except InputError as exc:
            raise ClientMessageError(exc.code, str(exc), seq) from None
        if seq <= self.last_seq:
            raise ClientMessageError("stale_input", f"seq {seq} is not above {self.last_seq}; ignored.", seq)
        self.last_seq = seq
        if not self.host.submit_input(self, seq, parsed, raw):
            raise ClientMessageError("input_rejected", "The input came too late (stale seq, or the match is over).", seq)

    def _leave(self) -> None:
        if self.seat is None:
            raise ClientMessageError("not_a_player", "Spectators have no seat to leave.")
        self.host.leave(self)

    def _keyframe(self) -> None:
        """The client lost track of the delta stream: its next snapshot is a keyframe. However many requests come,
        that costs at most one keyframe per tick (shared with every other socket that needs one), and each request
        is a message under the rate limit."""
        self.out.snapshot_n = None

    def _pong(self, message: dict[str, Any]) -> None:
        sent = message.get("t")
        reply: dict[str, Any] = {"type": "pong", "server_time": round(time.time() * 1000)}
        if isinstance(sent, (int, float)) and not isinstance(sent, bool):
            reply["t"] = sent
        self.out.send(Frame(reply))


    # --- helpers ------------------------------------------------------------------------------------------------

    def _welcome(self) -> dict[str, Any]:
        settings = self.game.settings
        message: dict[str, Any] = {
            "type": "welcome",
            "v": self.version,
            "match": self.match_id,
            "game": settings.slug,
            "role": "player" if self.seat is not None else "spectator",
            "seat": self.seat,
            "players": self.info.players_message(),
            "tick_rate": settings.tick_rate,
            "reconnect_grace": settings.reconnect_grace_seconds,
            "encoding": "msgpack" if self.binary else "json",
        }
        if self.seat is None and settings.spectator_delay_seconds:
            message["spectator_delay"] = settings.spectator_delay_seconds
        if self.version >= protocol.DELTA_VERSION:
            message["input_fields"] = list(settings.input_fields)  # for compact inputs; [] when the game has none
        return message

    async def _refuse(self, code: int) -> None:
        # Accept first so that the client sees our close code, not a bare HTTP 403.
        await self.accept(self.choose_subprotocol())
        await self.close(code)

    def _over_rate(self, verdict: str) -> None:
        if verdict == MessageRateLimit.CLOSE:
            self.out.close(CloseCode.RATE_LIMITED)
        elif self.rate.should_tell():  # one error a second is enough to tell a flooding client
            message = f"Over {protocol.RATE_PER_SECOND:g} messages per second; messages are being dropped."
            self.out.send(Frame(protocol.error_message("rate_limited", message)))

    def _client_error(self, exc: ClientMessageError) -> None:
        self.out.send(Frame(protocol.error_message(exc.code, str(exc), exc.seq)))
        # Late inputs are the network's doing, not a broken client: only the others count towards 4007.
        if exc.code in LATE_INPUT_CODES:
            return
        self.bad_messages += 1
        if self.bad_messages > protocol.MAX_BAD_MESSAGES:
            self.out.close(CloseCode.TOO_MANY_ERRORS)
