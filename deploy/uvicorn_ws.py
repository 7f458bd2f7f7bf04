"""uvicorn's websockets-sansio protocol with a read high-water mark and direct match sockets:
`uvicorn --ws deploy.uvicorn_ws:WebSocketProtocol`.

The stock protocol pauses reading the socket after every message and resumes it when the application has taken the
message: two epoll_ctl calls per input. With an input per player per tick that was ~15% of the server's CPU
(docs/benchmarks.md, "Match capacity"). Here reading pauses only once HIGH_WATER messages wait for the application,
which still bounds what a flooding client can queue.

It also offers the ASGI extension of gameserver/directws.py, as deploy/daphne_ws.py does under daphne: a consumer that
attaches to it before accepting (all of ours do: match, lobby and matchmaking sockets) has its frames parsed and
written by DirectSocket once uvicorn has sent the 101 response, instead of by the websockets parser through the ASGI
queue, under the same per-socket bounds as under daphne (docs/security.md). The transport already is asyncio's
(uvloop's), so nothing is handed off: the bytes just stop going to the parser. A socket whose application does not
attach keeps uvicorn's behaviour. uvicorn's --ws-ping-interval/--ws-ping-timeout apply to those only; direct sockets use
DirectSocket's own keepalive. uvicorn is pinned in requirements.txt, and this class reaches into the parent's state
(see the methods below); tests/deploy/test_uvicorn.py runs matches, lobbies and protocol errors over it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from deploy.tuning import tune_runtime
from gameserver.directws import EXTENSION, AsyncioTransport, DirectSocket

HIGH_WATER = 16
# How often a direct socket's keepalive is checked; DirectSocket decides when to ping and when to give up.
KEEPALIVE_CHECK_SECONDS = 5.0


class WebSocketProtocol(WebSocketsSansIOProtocol):
    direct: DirectSocket | None = None
    direct_mode = False  # the 101 response is sent and the application attached: frames go to DirectSocket
    keepalive_timer: asyncio.TimerHandle | None = None

    # --- offering the extension, and switching to it --------------------------------------------------------------

    async def run_asgi(self) -> None:
        tune_runtime()  # at the first WebSocket: uvicorn has loaded the application by then (deploy/tuning.py)
        # handle_connect() builds the scope and makes this task; adding the extension here rather than after
        # handle_connect() returns is right even under an eager task factory.
        self.direct = DirectSocket(AsyncioTransport(self.transport))
        self.scope["extensions"][EXTENSION] = {"socket": self.direct}
        await super().run_asgi()

    async def send(self, message: Any) -> None:
        if self.direct_mode:
            # DirectSocket ignores what comes after the close, where the parent would raise ClientDisconnected: the
            # match host closes every socket of a match in one loop, which must not stop at one that just went away.
            self.direct.send_asgi(message)
            return
        was_complete = self.handshake_complete
        await super().send(message)
        # The parent sets handshake_complete when it has written the 101 response (not when the client went away
        # meanwhile, nor for a refusal, which also sets close_sent). Nothing is awaited between that write and
        # here, so the parser has seen no byte sent after the handshake.
        if (
            message["type"] == "websocket.accept"
            and not was_complete
            and self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.direct is not None
            and self.direct.opened()
        ):
            self._go_direct()

    def _go_direct(self) -> None:
        self.direct_mode = True
        # The parent started its keepalive with the 101 response: its pongs would never reach the parser, and after
        # ping_timeout it would fail the connection with 1011.
        self.stop_keepalive()
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.keepalive_timer = self.loop.call_later(KEEPALIVE_CHECK_SECONDS, self._check_keepalive)
        # A client must wait for the 101 before sending frames (RFC 6455 4.1), so this is empty but for one that
        # did not: whatever of its bytes the parser has not consumed yet goes to DirectSocket.
        leftover = self.conn.reader.buffer
        if leftover:
            data = bytes(leftover)
            leftover.clear()
            self.direct.feed(data)

    def _check_keepalive(self) -> None:
        self.direct.check_keepalive()
        self.keepalive_timer = self.loop.call_later(KEEPALIVE_CHECK_SECONDS, self._check_keepalive)

    # --- the parent's entry points, routed to DirectSocket once direct -----------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.direct_mode:
            self.direct.feed(data)
        else:
            super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.direct_mode:
            super().connection_lost(exc)
            return
        direct = self.direct
        direct.connection_lost()
        if self.keepalive_timer is not None:
            self.keepalive_timer.cancel()
            self.keepalive_timer = None
        # The parent's bookkeeping (connections, disconnected, its timers) still applies, but it would queue a
        # websocket.disconnect with a code of its own (1005: it saw no close frame): let it queue that one where the
        # application does not look, and give the application DirectSocket's.
        queue, self.queue = self.queue, asyncio.Queue()
        try:
            super().connection_lost(exc)
        finally:
            self.queue = queue
        queue.put_nowait({"type": "websocket.disconnect", "code": direct.close_code})

    def shutdown(self) -> None:
        if not self.direct_mode:
            super().shutdown()
            return
        # The server is stopping (the parent sends 1012 too). The parent would also write its own close frame and
        # queue a disconnect; here DirectSocket runs the closing handshake, bounded by its close timeout, and the
        # disconnect comes from connection_lost. A socket already closing (4010 from the engine's SIGTERM handover)
        # is left to finish.
        self.direct.close(1012)

    def send_500_response(self) -> None:
        # After the handshake the parent calls this only when the application raised; it has nothing to send then
        # and closes the TCP connection right after. Say why first, as daphne does.
        if self.direct_mode:
            self.direct.close(1011)
            return
        super().send_500_response()

    # --- the read high-water mark (sockets that are not direct) -----------------------------------------------------

    def send_receive_event_to_app(self) -> None:
        if self.read_paused:
            super().send_receive_event_to_app()
            return
        # The parent pauses reading after queueing unless it is paused already: say it is, for this one message.
        self.read_paused = True
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = False
        if self.queue.qsize() >= HIGH_WATER and not self.transport.is_closing():
            self.read_paused = True
            self.transport.pause_reading()
