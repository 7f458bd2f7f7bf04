"""daphne with direct WebSocket I/O for the sockets that ask for it: `python -m deploy.daphne_ws [daphne options] app`.

It is daphne (same options, same HTTP and WebSocket handling, autobahn for every handshake), plus the ASGI
extension of gameserver/directws.py: a consumer that attaches to it before accepting (all of ours do: match, lobby
and matchmaking sockets) has its frames parsed and written by DirectSocket once the handshake is done, instead of by
autobahn through the ASGI queue, under DirectSocket's per-socket bounds (docs/security.md). Over daphne's own TLS
endpoint (`-e ssl:...`) a direct socket stays on Twisted, whose TLS layer encrypts (_TwistedTransport). scripts/run
and the Procfile use this; plain `daphne` still works, without the fast path. docs/benchmarks.md has the numbers.

What this relies on in daphne, autobahn and Twisted beyond their public API is declared in deploy/boundary_daphne.py,
the only code that touches their private state. It is checked before daphne starts: when an upgrade moved a piece, the
launcher refuses to start with a message naming the package, its version and the piece (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

if __name__ == "__main__" and os.environ.get("GAMESERVER_UVLOOP", "1") != "0":
    # daphne.server installs Twisted's asyncio reactor on a new event loop when it is first imported: the policy must
    # be set before that. uvloop runs the loop itself (polling, timers, callbacks) in C.
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

if __name__ == "__main__":
    # Before daphne's modules are imported: a missing one is reported like any other missing piece.
    from deploy.boundary import BoundaryError
    from deploy.boundary_daphne import check

    try:
        check()
    except BoundaryError as refusal:
        sys.exit(str(refusal))

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import error
from twisted.internet.interfaces import IPushProducer
from twisted.python import failure
from zope.interface import implementer

from deploy import boundary_daphne as daphne_internals
from deploy.daphne_http import limited_http_factory
from deploy.tuning import tune_runtime
from gameserver.directws import CLOSE_TIMEOUT_SECONDS, EXTENSION, AsyncioTransport, DirectSocket

logger = logging.getLogger(__name__)


@implementer(IPushProducer)
class _TwistedTransport:
    """DirectSocket's view of a socket that stays on Twisted: TLS, whose bytes Twisted's TLS layer encrypts, so the
    socket cannot move to asyncio. (Plain TCP sockets only hold this until the hand-off.)

    Public Twisted API only: ITransport's write, loseConnection and abortConnection, and IConsumer.registerProducer.
    How much a transport has queued is not public; as its streaming producer we are told when its buffer is full
    (pauseProducing: the client stopped reading) and when it has drained (resumeProducing). What we write in between
    is what `buffered_bytes` reports, so DirectSocket skips snapshots past HIGH_WATER_BYTES and drops the client
    past MAX_BUFFERED_BYTES on top of what Twisted holds (its buffer size, 64 KiB), as on an asyncio transport.
    tests/deploy/test_tls.py fails if Twisted stops pausing producers through its TLS layer."""

    __slots__ = ("transport", "paused", "written_while_paused", "gone")

    # Twisted's TLS closes the TCP connection once the client has answered our close_notify: one that never does
    # (or never reads it) is cut off after this long instead of holding the connection for ever.
    close_timeout = CLOSE_TIMEOUT_SECONDS

    def __init__(self, transport):
        self.transport = transport
        self.paused = False
        self.written_while_paused = 0
        self.gone = None  # a Deferred that fires when the connection is gone (autobahn's is_closed)

    def follow_buffer(self, gone) -> None:
        """Become the transport's producer (once the socket is direct: autobahn's own closes must not wait for us).
        daphne leaves the HTTP channel that served the upgrade registered as the producer, which would only stop
        reading from the client when the buffer fills: this takes its place."""
        self.gone = gone
        self.transport.unregisterProducer()
        self.transport.registerProducer(self, True)

    def write(self, data: bytes) -> None:
        if self.paused:
            self.written_while_paused += len(data)
        self.transport.write(data)

    def buffered_bytes(self) -> int:
        return self.written_while_paused

    def close(self) -> None:
        # A transport with a producer registered does not close until it is unregistered (ITransport.loseConnection).
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        if self.gone is not None:
            asyncio.get_running_loop().call_later(self.close_timeout, self._abort_if_open)

    # Ending only our direction would leave the TLS session half-shut: a TLS socket closes instead.
    write_eof = close

    def _abort_if_open(self) -> None:
        if not self.gone.called:
            self.transport.abortConnection()

    def abort(self) -> None:
        self.transport.abortConnection()

    # --- IPushProducer: called by the transport ---

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted's name
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802 - Twisted's name
        self.paused = False
        self.written_while_paused = 0

    def stopProducing(self) -> None:  # noqa: N802 - Twisted's name
        pass  # the connection is gone: connectionLost tells DirectSocket


def _can_go_direct(transport) -> bool:
    """Whether a socket on this transport may be offered direct mode: plain TCP (handed to asyncio) or Twisted's TLS
    (stays on Twisted behind _TwistedTransport). Any other transport keeps the ASGI path, which works everywhere."""
    return daphne_internals.is_plain_tcp(transport) or daphne_internals.is_twisted_tls(transport)


class _AsyncioConnection(asyncio.Protocol):
    """The socket once it has left Twisted: an asyncio transport (uvloop's, in C). Until the event loop has made
    the transport, this object stands in for it, holding what DirectSocket writes."""

    def __init__(self, shell: DirectWebSocketProtocol):
        self.shell = shell
        self.pending: list[bytes] = []
        self.close_requested = False
        self.eof_requested = False
        self.abort_requested = False
        # The event loop reads protocol.data_received once, when it makes the transport: bytes go straight in.
        self.data_received = shell.direct.feed

    # --- DirectSocket's Transport, until connection_made ---

    def write(self, data: bytes) -> None:
        self.pending.append(data)

    def buffered_bytes(self) -> int:
        return sum(map(len, self.pending))

    def close(self) -> None:
        self.close_requested = True

    def write_eof(self) -> None:
        self.eof_requested = True

    def abort(self) -> None:
        self.abort_requested = True

    # --- asyncio.Protocol ---

    def connection_made(self, transport) -> None:
        if self.abort_requested:
            transport.abort()
            return
        if self.pending:
            transport.write(b"".join(self.pending))
            self.pending.clear()
        self.shell.direct.transport = AsyncioTransport(transport)
        if self.close_requested:
            transport.close()
        elif self.eof_requested:
            transport.write_eof()

    def connection_lost(self, exc) -> None:
        self.shell.direct_connection_lost()


class DirectWebSocketProtocol(WebSocketProtocol):
    """daphne's WebSocket protocol (autobahn) for the handshake; afterwards, for sockets whose application attached
    to the extension, DirectSocket on an asyncio transport of the same socket."""

    direct: DirectSocket | None = None
    direct_mode = False  # the handshake is done and the application attached: frames go to DirectSocket
    handed_off = False  # the socket has moved from Twisted to _AsyncioConnection

    def onConnect(self, request):  # noqa: N802 - Twisted's name
        server = daphne_internals.daphne_server(self)
        self.direct = DirectSocket(
            _TwistedTransport(self.transport), ping_interval=server.ping_interval, ping_timeout=server.ping_timeout
        )
        return super().onConnect(request)

    def onOpen(self):  # noqa: N802 - Twisted's name
        super().onOpen()
        if self.direct is None or daphne_internals.handshake_abandoned(self):
            # autobahn gave up on a slow handshake (its timeout) before the application accepted: it stays autobahn's.
            return
        if not self.direct.opened():
            return
        self.direct_mode = True
        # From here on autobahn sees no more bytes. It may hold some that came with the handshake.
        leftover = daphne_internals.take_unparsed_bytes(self)
        self._hand_off_socket()
        if leftover:
            self.direct.feed(leftover)

    def _hand_off_socket(self) -> None:
        """Give the socket to the asyncio event loop that Twisted runs on. Twisted calls Python for every read and
        write of every socket (its reactor's dispatch, logging context, a writer registered and unregistered around
        each write); an asyncio transport does that work in C under uvloop. This was the largest cost per player left
        once autobahn and the ASGI queue were out of the path (docs/benchmarks.md)."""
        old = self.transport
        if not daphne_internals.is_plain_tcp(old):
            # TLS: Twisted encrypts what we write, so the socket stays with it (create_application offered direct mode
            # only to transports _can_go_direct accepts).
            try:
                self.direct.transport.follow_buffer(daphne_internals.closed_deferred(self))
            except Exception:
                # Without it a client that stops reading would make us queue for ever (autobahn would swallow this).
                logger.exception("cannot follow a TLS transport's buffer: closing the WebSocket")
                self.direct.transport.abort()
            return
        # Twisted lets go of the socket and calls connectionLost, which ignores it while handed_off is set. Bytes it
        # has not sent yet (the tail of the 101 response, usually all of it) go first on the new transport.
        self.handed_off = True
        sock, unsent = daphne_internals.detach_socket(old)
        connection = _AsyncioConnection(self)
        self.direct.transport = connection
        if unsent:
            connection.write(unsent)
        loop = asyncio.get_event_loop()
        task = loop.create_task(loop.connect_accepted_socket(lambda: connection, sock))
        task.add_done_callback(self._check_hand_off)

    def _check_hand_off(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            # The socket could not be registered with the event loop: the connection is over for the application.
            logger.error("handing a WebSocket over to asyncio failed", exc_info=task.exception())
            self.direct_connection_lost()

    def direct_connection_lost(self) -> None:
        """The asyncio transport closed: tell autobahn and daphne, whose onClose sends websocket.disconnect."""
        self.handed_off = False
        self.connectionLost(failure.Failure(error.ConnectionDone()))

    def dataReceived(self, data):  # noqa: N802 - Twisted's name
        if self.direct_mode:
            self.direct.feed(data)
        else:
            super().dataReceived(data)

    def consumeData(self):  # noqa: N802 - Twisted's name
        if self.direct_mode:
            leftover = daphne_internals.take_unparsed_bytes(self)
            if leftover:
                self.direct.feed(leftover)
            return
        super().consumeData()

    def handle_reply(self, message):
        if self.direct_mode:
            self.direct.send_asgi(message)
        else:
            super().handle_reply(message)

    def handle_exception(self, exception):
        if self.direct_mode:
            self.direct.close(1011)
        else:
            super().handle_exception(exception)

    def check_timeouts(self):
        if self.direct_mode:
            if daphne_internals.timed_out(self):
                self.direct.close(1000)
            self.direct.check_keepalive()
            return
        super().check_timeouts()

    def connectionLost(self, reason):  # noqa: N802 - Twisted's name
        if self.handed_off:
            return  # Twisted let go of the socket; the connection goes on under _AsyncioConnection
        if self.direct_mode:
            direct = self.direct
            direct.connection_lost()
            # autobahn reports its own view of the close to daphne's onClose (the application's
            # websocket.disconnect): give it ours.
            daphne_internals.report_close(self, clean=direct.clean, code=direct.close_code)
        super().connectionLost(reason)


class DirectServer(Server):
    """daphne's Server, building DirectWebSocketProtocol and offering the extension in WebSocket scopes."""

    def run(self):
        tune_runtime()  # the application is loaded: see deploy/tuning.py
        super().run()

    # --- HTTP limits (deploy/daphne_http.py): refuse over-size requests before Twisted buffers them ---
    @property
    def http_factory(self):
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory):
        self._http_factory = limited_http_factory(factory)

    # --- end of HTTP limits ---

    @property
    def ws_factory(self):
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory):
        # Server.run() builds the factory; this is the one place to swap the protocol it makes.
        factory.protocol = DirectWebSocketProtocol
        self._ws_factory = factory

    def create_application(self, protocol, scope):
        if (isinstance(protocol, DirectWebSocketProtocol) and protocol.direct is not None
                and _can_go_direct(protocol.transport)):
            scope["extensions"] = {**scope.get("extensions", {}), EXTENSION: {"socket": protocol.direct}}
        return super().create_application(protocol, scope)


class DirectCommandLineInterface(CommandLineInterface):
    server_class = DirectServer

    def run(self, args):
        # daphne's --proxy-headers takes the client's address from the LEFTMOST X-Forwarded-For entry, which the client
        # writes itself: anyone could then escape the per-address login and sign-up limits. The address comes from
        # TRUSTED_PROXY_COUNT instead (gameserver/clientaddr.py), which would have no say once daphne had rewritten it.
        if daphne_internals.asks_for_proxy_headers(self, args):
            daphne_internals.refuse_option(
                self,
                "--proxy-headers trusts the X-Forwarded-For address a client writes; leave it out and set "
                "TRUSTED_PROXY_COUNT to the number of proxies in front of the server (docs/security.md)",
            )
        super().run(args)


def main() -> None:
    DirectCommandLineInterface.entrypoint()


if __name__ == "__main__":
    sys.exit(main())
