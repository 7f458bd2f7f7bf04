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
DirectSocket's own keepalive. What this relies on in uvicorn and websockets beyond their public API is declared in
deploy/boundary_uvicorn.py, the only code that touches their state, and checked when uvicorn imports this class: an
upgrade that moved any of it stops uvicorn with a message naming the package, its version and the missing piece.
tests/deploy/test_uvicorn.py runs matches, lobbies and protocol errors over it.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from deploy import boundary_uvicorn as uvicorn_internals
from deploy.tuning import tune_runtime
from gameserver.directws import EXTENSION, AsyncioTransport, DirectSocket

# Before the parent class is imported: a module uvicorn moved is reported like any other missing piece.
uvicorn_internals.check()

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol  # noqa: E402

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
        self.direct = DirectSocket(AsyncioTransport(uvicorn_internals.transport(self)))
        uvicorn_internals.offer_extension(self, EXTENSION, {"socket": self.direct})
        await super().run_asgi()

    async def send(self, message: Any) -> None:
        if self.direct_mode:
            # DirectSocket ignores what comes after the close, where the parent would raise ClientDisconnected: the
            # match host closes every socket of a match in one loop, which must not stop at one that just went away.
            self.direct.send_asgi(message)
            return
        was_complete = uvicorn_internals.handshake_complete(self)
        await super().send(message)
        # Nothing is awaited between the parent's write of the 101 response and here, so the parser has seen no byte
        # sent after the handshake.
        if (
            message["type"] == "websocket.accept"
            and not was_complete
            and uvicorn_internals.accepted_and_open(self)
            and self.direct is not None
            and self.direct.opened()
        ):
            self._go_direct()

    def _go_direct(self) -> None:
        self.direct_mode = True
        # The parent started its keepalive with the 101 response: its pongs would never reach the parser, and after
        # ping_timeout it would fail the connection with 1011.
        uvicorn_internals.stop_keepalive(self)
        uvicorn_internals.resume_reading(self)
        self.keepalive_timer = asyncio.get_running_loop().call_later(KEEPALIVE_CHECK_SECONDS, self._check_keepalive)
        # A client must wait for the 101 before sending frames (RFC 6455 4.1), so this is empty but for one that
        # did not: whatever of its bytes the parser has not consumed yet goes to DirectSocket.
        leftover = uvicorn_internals.take_unparsed_bytes(self)
        if leftover:
            self.direct.feed(leftover)

    def _check_keepalive(self) -> None:
        self.direct.check_keepalive()
        self.keepalive_timer = asyncio.get_running_loop().call_later(KEEPALIVE_CHECK_SECONDS, self._check_keepalive)

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
        uvicorn_internals.lose_connection_reporting(self, partial(super().connection_lost, exc), direct.close_code)

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
        uvicorn_internals.queue_message_pausing_at(self, super().send_receive_event_to_app, HIGH_WATER)
