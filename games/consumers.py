"""ws/matches/<id>/: one consumer per player or spectator socket. Thin: it authorizes, decodes, validates and
hands inputs to the match host; the host sends snapshots straight to it."""

from __future__ import annotations

import time
from typing import Any

from channels.db import database_sync_to_async

from games import selectors
from games.engine import protocol
from games.engine.host import get_host
from games.engine.protocol import ClientMessageError, Frame
from games.rules import get_game
from games.rules.base import InputError
from gameserver.ws import BaseConsumer, CloseCode

LATE_INPUT_CODES = frozenset({"stale_input", "input_rejected"})


class MatchConsumer(BaseConsumer):
    match_id: int
    seat: int | None = None
    info: selectors.MatchInfo
    binary = False
    attached = False
    closed = False

    # --- socket handlers -------------------------------------------------------------------------------------

    def choose_subprotocol(self) -> str | None:
        chosen, _ = protocol.choose_subprotocol(self.scope.get("subprotocols", ()))
        return chosen or None

    async def connect(self) -> None:
        self.match_id = self.scope["url_route"]["kwargs"]["match_id"]
        chosen, self.binary = protocol.choose_subprotocol(self.scope.get("subprotocols", ()))
        if chosen is None:
            await self._refuse(CloseCode.PROTOCOL_VERSION)
            return
        info = await database_sync_to_async(selectors.match_info)(match_id=self.match_id)
        if info is None:
            await self._refuse(CloseCode.NOT_FOUND)
            return
        self.info = info
        self.game = get_game(info.game)
        self.seat = info.seat_of(self.user.pk)
        if self.seat is None and not self.game.settings.spectators_allowed:
            await self._refuse(CloseCode.FORBIDDEN)
            return
        self.host = host = get_host()
        if host.closing:
            await self._refuse(CloseCode.SERVER_RESTART)
            return
        await self.accept(chosen or None)
        self.last_seq = 0
        self.tokens = protocol.RATE_BURST
        self.tokens_at = time.monotonic()
        self.rate_violations = 0
        self.rate_window_at = 0.0
        self.rate_error_at = 0.0
        self.bad_messages = 0
        await self.send_frame(Frame(self._welcome()))
        if info.status not in ("waiting", "running"):
            end = await database_sync_to_async(selectors.match_end_message)(match_id=self.match_id)
            await self.send_frame(Frame(end))
            await self.close_with(CloseCode.MATCH_OVER)
            return
        self.attached = True
        await host.attach(self)

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if self.attached:
            self.attached = False
            await get_host().detach(self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closed:
            return
        size = len(bytes_data) if bytes_data is not None else len(text_data.encode() if not text_data.isascii() else text_data)
        if size > protocol.MAX_MESSAGE_BYTES:
            await self.close_with(CloseCode.MESSAGE_TOO_BIG)
            return
        if not self._take_token():
            await self._rate_limited()
            return
        try:
            message = protocol.decode(text_data, bytes_data)
            kind = message["type"]
            if kind == "input":
                await self._input(message)
            elif kind == "ping":
                await self._pong(message)
            elif kind == "leave":
                await self._leave()
            else:
                raise ClientMessageError("unknown_type", f"Unknown message type {kind[:40]!r}.")
        except ClientMessageError as exc:
            await self._client_error(exc)

    # --- message handlers -------------------------------------------------------------------------------------

    async def _input(self, message: dict[str, Any]) -> None:
        seq = protocol.read_seq(message)
        if self.seat is None:
            raise ClientMessageError("not_a_player", "Spectators cannot send inputs.", seq)
        try:
            parsed = self.game.parse_input(message.get("input"))
        except InputError as exc:
            raise ClientMessageError(exc.code, str(exc), seq) from None
        if seq <= self.last_seq:
            raise ClientMessageError("stale_input", f"seq {seq} is not above {self.last_seq}; ignored.", seq)
        self.last_seq = seq
        if not await self.host.submit_input(self, seq, parsed, message["input"]):
            raise ClientMessageError("input_rejected", "The input came too late (stale seq, or the match is over).", seq)

    async def _leave(self) -> None:
        if self.seat is None:
            raise ClientMessageError("not_a_player", "Spectators have no seat to leave.")
        await self.host.leave(self)

    async def _pong(self, message: dict[str, Any]) -> None:
        sent = message.get("t")
        reply: dict[str, Any] = {"type": "pong", "server_time": round(time.time() * 1000)}
        if isinstance(sent, (int, float)) and not isinstance(sent, bool):
            reply["t"] = sent
        await self.send_frame(Frame(reply))

    # --- sending (also called by the host) ------------------------------------------------------------------

    async def send_frame(self, frame: Frame) -> None:
        if self.closed:
            return
        try:
            await self.base_send(frame.send_event(self.binary))
        except Exception:  # the peer vanished between two ticks; its disconnect event is on its way
            self.closed = True

    async def close_with(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            await self.close(code)

    # --- helpers ------------------------------------------------------------------------------------------------

    def _welcome(self) -> dict[str, Any]:
        settings = self.game.settings
        return {
            "type": "welcome",
            "v": protocol.PROTOCOL_VERSION,
            "match": self.match_id,
            "game": settings.slug,
            "role": "player" if self.seat is not None else "spectator",
            "seat": self.seat,
            "players": self.info.players_message(),
            "tick_rate": settings.tick_rate,
            "reconnect_grace": settings.reconnect_grace_seconds,
            "encoding": "msgpack" if self.binary else "json",
        }

    async def _refuse(self, code: int) -> None:
        # Accept first so that the client sees our close code, not a bare HTTP 403.
        await self.accept(self.choose_subprotocol())
        await self.close_with(code)

    def _take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(protocol.RATE_BURST, self.tokens + (now - self.tokens_at) * protocol.RATE_PER_SECOND)
        self.tokens_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    async def _rate_limited(self) -> None:
        now = time.monotonic()
        if now - self.rate_window_at > protocol.RATE_VIOLATION_WINDOW_SECONDS:
            self.rate_window_at = now
            self.rate_violations = 0
        self.rate_violations += 1
        if self.rate_violations > protocol.MAX_RATE_VIOLATIONS:
            await self.close_with(CloseCode.RATE_LIMITED)
            return
        if now - self.rate_error_at >= 1.0:  # one error a second is enough to tell a flooding client
            self.rate_error_at = now
            message = f"Over {protocol.RATE_PER_SECOND:g} messages per second; messages are being dropped."
            await self.send_frame(Frame(protocol.error_message("rate_limited", message)))

    async def _client_error(self, exc: ClientMessageError) -> None:
        await self.send_frame(Frame(protocol.error_message(exc.code, str(exc), exc.seq)))
        # Late inputs are the network's doing, not a broken client: only the others count towards 4007.
        if exc.code in LATE_INPUT_CODES:
            return
        self.bad_messages += 1
        if self.bad_messages > protocol.MAX_BAD_MESSAGES:
            await self.close_with(CloseCode.TOO_MANY_ERRORS)
