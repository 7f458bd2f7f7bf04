"""Everything deploy/daphne_ws.py and deploy/daphne_http.py rely on in daphne, autobahn and Twisted beyond their
public API: the pieces (PIECES, checked by `check()` at start-up and by tests/deploy/test_boundaries.py), and the only
code that reads or writes those projects' private state (the functions below). The launchers' subclasses override
and call only the methods declared here. docs/architecture.md, "Boundaries with other projects".
"""

from __future__ import annotations

import socket

from deploy.boundary import Piece
from deploy.boundary import check as check_pieces

BOUNDARY = "deploy/boundary_daphne.py"

# The versions these pieces were verified with: requirements.txt pins the same (tests/deploy/test_boundaries.py).
VERIFIED = {"daphne": "4.2.3", "twisted": "26.10.0", "autobahn": "26.10.2"}

_WS = "daphne.ws_protocol:WebSocketProtocol"
_AUTOBAHN = "autobahn.twisted.websocket:WebSocketServerProtocol"
_SERVER = "daphne.server:Server"
_CLI = "daphne.cli:CommandLineInterface"
_TCP = "twisted.internet.tcp:Server"
_CHANNEL = "twisted.web.http:HTTPChannel"
_REQUEST = "twisted.web.http:Request"

PIECES: tuple[Piece, ...] = (
    # --- daphne: the server, its WebSocket protocol and its command line (deploy/daphne_ws.py) ---
    Piece("daphne", _CLI, "server_class", "building DirectServer from daphne's own options"),
    Piece("daphne", _CLI, "parser", "refusing --proxy-headers (its argparse parser, dest proxy_headers)"),
    Piece("daphne", _CLI, "run", "checking the options before daphne runs them", "method", ("self", "args")),
    Piece("daphne", _CLI, "entrypoint", "running the command line (a classmethod)", "method", ()),
    Piece("daphne", _SERVER, "run", "tuning the runtime once the application is loaded", "method", ("self",)),
    Piece("daphne", _SERVER, "http_factory", "Server.run() assigns it: replaced by the HTTP limits' factory"),
    Piece("daphne", _SERVER, "ws_factory", "Server.run() assigns it: its protocol becomes DirectWebSocketProtocol"),
    Piece("daphne", _SERVER, "create_application", "offering the direct-socket extension in the WebSocket scope",
          "method", ("self", "protocol", "scope")),
    Piece("daphne", _SERVER, "ping_interval", "a direct socket's keepalive (daphne's --ping-interval)"),
    Piece("daphne", _SERVER, "ping_timeout", "a direct socket's keepalive (daphne's --ping-timeout)"),
    Piece("daphne", _SERVER, "websocket_timeout", "closing a direct socket after daphne's --websocket_timeout"),
    Piece("daphne", "daphne.ws_protocol:WebSocketFactory", "server_class", "the Server a WebSocket protocol belongs to"),
    Piece("daphne", _WS, "autobahn.twisted.websocket:WebSocketServerProtocol", "autobahn doing the handshake",
          "subclass"),
    Piece("daphne", _WS, "onConnect", "making the DirectSocket before the application sees the scope", "method",
          ("self", "request")),
    Piece("daphne", _WS, "onOpen", "going direct once the handshake is done", "method", ("self",)),
    Piece("daphne", _WS, "handle_reply", "ASGI send events to a direct socket", "method", ("self", "message")),
    Piece("daphne", _WS, "handle_exception", "closing a direct socket with 1011 when the application raised",
          "method", ("self", "exception")),
    Piece("daphne", _WS, "check_timeouts", "a direct socket's keepalive and timeout (daphne's timer calls it)",
          "method", ("self",)),
    Piece("daphne", _WS, "duration", "a direct socket's age, against --websocket_timeout", "method", ("self",)),
    Piece("daphne", _WS, "server", "daphne's Server, set by onConnect"),
    # --- autobahn: the protocol under daphne's ---
    Piece("autobahn", _AUTOBAHN, "dataReceived", "bytes of a direct socket go to DirectSocket", "method",
          ("self", "data")),
    Piece("autobahn", _AUTOBAHN, "consumeData", "bytes autobahn read with the handshake go to DirectSocket",
          "method", ("self",)),
    Piece("autobahn", _AUTOBAHN, "connectionLost", "the end of a direct socket reaches daphne's onClose", "method",
          ("self", "reason")),
    Piece("autobahn", _AUTOBAHN, "data", "bytes read with the handshake and not parsed yet"),
    Piece("autobahn", _AUTOBAHN, "is_closed", "a Deferred fired when the connection is gone (TLS close timeout)"),
    Piece("autobahn", _AUTOBAHN, "factory", "the WebSocketFactory (daphne's Server) of a protocol"),
    Piece("autobahn", _AUTOBAHN, "transport", "the Twisted connection under the protocol"),
    Piece("autobahn", _AUTOBAHN, "wasClean", "the close daphne reports to the application (websocket.disconnect)"),
    Piece("autobahn", _AUTOBAHN, "remoteCloseCode", "the close code daphne reports to the application"),
    Piece("autobahn", _AUTOBAHN, "remoteCloseReason", "the close reason autobahn keeps"),
    # --- Twisted: the TCP connection handed to asyncio, the TLS transport that is not ---
    Piece("twisted", _TCP, "TLS", "telling a plain TCP connection from one that started TLS"),
    Piece("twisted", _TCP, "socket", "the socket handed to asyncio"),
    Piece("twisted", _TCP, "dataBuffer", "bytes Twisted has not sent yet (the 101 response), sent after the hand-off"),
    Piece("twisted", _TCP, "offset", "how much of dataBuffer is sent"),
    Piece("twisted", _TCP, "_tempDataBuffer", "writes Twisted has not moved to dataBuffer yet"),
    Piece("twisted", _TCP, "_tempDataLen", "their length, reset with them"),
    Piece("twisted", _TCP, "_shouldShutdown", "letting go of the socket without shutting the connection down"),
    Piece("twisted", _TCP, "connected", "a connection autobahn gave up on before the application accepted"),
    Piece("twisted", _TCP, "disconnecting", "a connection autobahn gave up on before the application accepted"),
    Piece("twisted", _TCP, "connectionLost", "Twisted forgetting the socket it no longer reads", "method",
          ("self", "reason")),
    Piece("twisted", "twisted.protocols.tls", "TLSMemoryBIOProtocol",
          "a socket over daphne's own TLS endpoint, which stays on Twisted (_TwistedTransport)"),
    # --- Twisted and daphne HTTP: the request limits (deploy/daphne_http.py) ---
    Piece("twisted", "twisted.web.http", "_GenericHTTPChannelProtocol", "wrapping an HTTPChannel as HTTPFactory does",
          "method", ("original",)),
    Piece("twisted", _CHANNEL, "__init__", "LimitedHTTPChannel's construction", "method", ("self",)),
    Piece("twisted", _CHANNEL, "lineReceived", "counting the head's lines and bytes (431)", "method",
          ("self", "line")),
    Piece("twisted", _CHANNEL, "lineLengthExceeded", "answering 414/431 to an over-long line", "method",
          ("self", "line")),
    Piece("twisted", _CHANNEL, "allContentReceived", "not running a refused request", "method", ("self",)),
    Piece("twisted", _CHANNEL, "connectionLost", "cancelling the linger timer", "method", ("self", "reason")),
    Piece("twisted", _CHANNEL, "callLater", "the linger timer", "method", ("self", "period", "func")),
    Piece("twisted", _CHANNEL, "setTimeout", "no idle timeout while lingering", "method", ("self", "period")),
    Piece("twisted", _CHANNEL, "dataReceived", "dropping what follows a refusal"),
    Piece("twisted", _CHANNEL, "MAX_LENGTH", "the request line's and a header's limit (414/431)"),
    Piece("twisted", _CHANNEL, "totalHeadersSize", "the head's limit (431)"),
    Piece("twisted", _CHANNEL, "maxHeaders", "the number of headers' limit (431)"),
    Piece("twisted", _CHANNEL, "persistent", "closing the connection after a refusal"),
    Piece("twisted", _CHANNEL, "transport", "writing a refusal and closing the connection"),
    Piece("twisted", _CHANNEL, "requestFactory", "daphne's request class, replaced by LimitedWebRequest"),
    Piece("twisted", _REQUEST, "gotLength", "refusing a Content-Length over the limit before 100-continue",
          "method", ("self", "length")),
    Piece("twisted", _REQUEST, "handleContentChunk", "counting a body as it comes (413)", "method",
          ("self", "data")),
    Piece("twisted", _REQUEST, "content", "keeping an accepted body in memory"),
    Piece("twisted", _REQUEST, "requestHeaders", "removing Expect from a refused request"),
    Piece("twisted", _REQUEST, "channel", "the connection a request refuses"),
    Piece("daphne", "daphne.http_protocol:HTTPFactory", "twisted.web.http:HTTPFactory", "the HTTP factory", "subclass"),
    Piece("daphne", "daphne.http_protocol:HTTPFactory", "__init__", "building the limited factory", "method",
          ("self", "server")),
    Piece("daphne", "daphne.http_protocol:HTTPFactory", "server", "the Server a factory belongs to"),
    Piece("daphne", "daphne.http_protocol:HTTPFactory", "buildProtocol", "setting LimitedWebRequest", "method",
          ("self", "addr")),
    Piece("daphne", "daphne.http_protocol:HTTPFactory", "protocol", "building LimitedHTTPChannel", "method",
          ("self",)),
    Piece("daphne", "daphne.http_protocol:HTTPFactory", "acceptableProtocols", "not offering HTTP/2", "method",
          ("self",)),
    Piece("daphne", "daphne.http_protocol:WebRequest", "twisted.web.http:Request", "daphne's request", "subclass"),
)

OTHERWISE = ("to serve without direct sockets and the HTTP limits meanwhile, run plain daphne "
             "(`daphne gameserver.asgi:application`).")


def check() -> None:
    """Raise BoundaryError, naming each package, its version and the missing piece, unless all PIECES are there."""
    check_pieces(BOUNDARY, PIECES, VERIFIED, otherwise=OTHERWISE)


# --- transports --------------------------------------------------------------------------------------------------


def is_plain_tcp(transport) -> bool:
    """A TCP (or Unix) connection with no TLS: its socket can be handed to asyncio as it is. Not a duck-typed test:
    TLSMemoryBIOProtocol forwards unknown attributes (`socket`, `TLS`) to the TCP connection under it."""
    from twisted.internet import tcp

    return isinstance(transport, tcp.Server) and not transport.TLS


def is_twisted_tls(transport) -> bool:
    """Twisted's TLS layer (daphne's own TLS endpoint): the socket must stay with Twisted, which encrypts."""
    from twisted.protocols.tls import TLSMemoryBIOProtocol

    return isinstance(transport, TLSMemoryBIOProtocol)


def detach_socket(transport) -> tuple[socket.socket, bytes]:
    """Take a plain TCP connection from Twisted: (a duplicate of its socket, the bytes Twisted had not sent yet).
    Twisted forgets its descriptor without shutting the connection down (shutdown() would end it for the duplicate
    too) and calls its protocol's connectionLost, which the caller must be ready to ignore."""
    from twisted.internet import error
    from twisted.python import failure

    unsent = bytes(transport.dataBuffer[transport.offset :]) + b"".join(transport._tempDataBuffer)
    transport.dataBuffer, transport.offset, transport._tempDataBuffer, transport._tempDataLen = b"", 0, [], 0
    sock = transport.socket.dup()
    transport._shouldShutdown = False
    transport.connectionLost(failure.Failure(error.ConnectionDone()))
    return sock, unsent


# --- daphne's WebSocket protocol (autobahn under it) -------------------------------------------------------------


def daphne_server(protocol):
    """daphne's Server for a protocol whose onConnect has not run yet (it sets `protocol.server` from this)."""
    return protocol.factory.server_class


def closed_deferred(protocol):
    """autobahn's Deferred that fires once the connection is gone."""
    return protocol.is_closed


def handshake_abandoned(protocol) -> bool:
    """autobahn gave up on the connection (its handshake timeout) before the application accepted it."""
    transport = protocol.transport
    return protocol.is_closed.called or not transport.connected or transport.disconnecting


def take_unparsed_bytes(protocol) -> bytes:
    """What autobahn has read and not parsed yet (bytes that came with the handshake); autobahn keeps none."""
    leftover, protocol.data = protocol.data, b""
    return bytes(leftover)


def report_close(protocol, *, clean: bool, code: int | None) -> None:
    """Set what autobahn tells daphne's onClose (the application's websocket.disconnect) about the close."""
    protocol.wasClean = clean
    protocol.remoteCloseCode = code
    protocol.remoteCloseReason = None


def timed_out(protocol) -> bool:
    """The socket is older than daphne's --websocket_timeout (negative: no timeout)."""
    return 0 <= protocol.server.websocket_timeout < protocol.duration()


# --- daphne's command line ---------------------------------------------------------------------------------------


def asks_for_proxy_headers(cli, args: list[str]) -> bool:
    return bool(cli.parser.parse_args(args).proxy_headers)


def refuse_option(cli, message: str) -> None:
    """Stop with argparse's usage and `message` (exit status 2), as daphne does for a bad option."""
    cli.parser.error(message)


# --- Twisted's HTTP --------------------------------------------------------------------------------------------------


def wrap_http_channel(channel):
    """What Twisted's HTTPFactory.protocol makes of a new HTTPChannel (the wrapper negotiates HTTP/2 with ALPN)."""
    from twisted.web import http

    return http._GenericHTTPChannelProtocol(channel)
