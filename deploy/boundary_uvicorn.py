"""Everything deploy/uvicorn_ws.py relies on in uvicorn's websockets-sansio protocol and in websockets beyond their
public API: the pieces (PIECES, checked by `check()` when uvicorn imports the protocol class, and by
tests/deploy/test_boundaries.py), and the only code that reads or writes their state (the functions below). The
subclass overrides and calls only the methods declared here. docs/architecture.md, "Boundaries with other projects".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from deploy.boundary import Piece
from deploy.boundary import check as check_pieces

BOUNDARY = "deploy/boundary_uvicorn.py"

# The versions these pieces were verified with: requirements.txt pins the same (tests/deploy/test_boundaries.py).
VERIFIED = {"uvicorn": "0.54.0", "websockets": "17.4"}

_IMPL = "uvicorn.protocols.websockets.websockets_sansio_impl"
_PROTOCOL = f"{_IMPL}:WebSocketsSansIOProtocol"

PIECES: tuple[Piece, ...] = (
    Piece("uvicorn", _PROTOCOL, "asyncio:Protocol", "uvicorn's WebSocket protocol, an asyncio protocol", "subclass"),
    # The methods deploy/uvicorn_ws.py overrides (uvicorn calls them) and calls.
    Piece("uvicorn", _PROTOCOL, "run_asgi", "offering the direct-socket extension in the scope", "method", ("self",)),
    Piece("uvicorn", _PROTOCOL, "send", "going direct once the 101 response is written; ASGI sends to DirectSocket",
          "method", ("self", "message")),
    Piece("uvicorn", _PROTOCOL, "data_received", "bytes of a direct socket go to DirectSocket", "method",
          ("self", "data")),
    Piece("uvicorn", _PROTOCOL, "connection_lost", "the application hears DirectSocket's close code", "method",
          ("self", "exc")),
    Piece("uvicorn", _PROTOCOL, "shutdown", "a stopping server closes direct sockets with 1012", "method", ("self",)),
    Piece("uvicorn", _PROTOCOL, "send_500_response", "closing a direct socket with 1011 when the application raised",
          "method", ("self",)),
    Piece("uvicorn", _PROTOCOL, "send_receive_event_to_app", "the read high-water mark (it pauses reading after "
          "every message)", "method", ("self",)),
    Piece("uvicorn", _PROTOCOL, "stop_keepalive", "uvicorn's keepalive off for a direct socket (its pongs would "
          "never reach it: 1011 after --ws-ping-timeout)", "method", ("self",)),
    # Its state.
    Piece("uvicorn", _PROTOCOL, "transport", "the asyncio transport DirectSocket writes to"),
    Piece("uvicorn", _PROTOCOL, "scope", "the WebSocket scope, set before run_asgi runs"),
    Piece("uvicorn", _PROTOCOL, "handshake_complete", "telling when send() wrote the 101 response"),
    Piece("uvicorn", _PROTOCOL, "close_sent", "a refused handshake, which must not go direct"),
    Piece("uvicorn", _PROTOCOL, "disconnected", "a client gone during the handshake, which must not go direct"),
    Piece("uvicorn", _PROTOCOL, "read_paused", "resuming reads for a direct socket; the read high-water mark"),
    Piece("uvicorn", _PROTOCOL, "queue", "the application's receive queue (high-water mark, disconnect code)"),
    Piece("uvicorn", _PROTOCOL, "conn", "the websockets parser, whose unparsed bytes go to DirectSocket"),
    Piece("uvicorn", _IMPL, "ServerProtocol", "`conn` is a websockets ServerProtocol", "same",
          ("websockets.server:ServerProtocol",)),
    # websockets: the parser's buffer.
    Piece("websockets", "websockets.server:ServerProtocol", "reader", "the parser's stream of received bytes"),
    Piece("websockets", "websockets.streams:StreamReader", "buffer", "bytes received and not parsed yet (a bytearray)"),
)

OTHERWISE = ("to serve without direct sockets meanwhile, run uvicorn with its own WebSocket protocol "
             "(`--ws websockets-sansio` instead of `--ws deploy.uvicorn_ws:WebSocketProtocol`).")


def check() -> None:
    """Raise BoundaryError, naming each package, its version and the missing piece, unless all PIECES are there."""
    check_pieces(BOUNDARY, PIECES, VERIFIED, otherwise=OTHERWISE)


def transport(protocol) -> asyncio.Transport:
    """The connection's asyncio transport, which uvicorn keeps from connection_made."""
    return protocol.transport


def offer_extension(protocol, name: str, value: object) -> None:
    protocol.scope["extensions"][name] = value


def handshake_complete(protocol) -> bool:
    return protocol.handshake_complete


def accepted_and_open(protocol) -> bool:
    """send() wrote the 101 response: uvicorn sets handshake_complete then (and for a refusal, which also sets
    close_sent; a client gone meanwhile sets disconnected)."""
    return protocol.handshake_complete and not protocol.close_sent and not protocol.disconnected


def stop_keepalive(protocol) -> None:
    protocol.stop_keepalive()


def resume_reading(protocol) -> None:
    if protocol.read_paused:
        protocol.read_paused = False
        protocol.transport.resume_reading()


def take_unparsed_bytes(protocol) -> bytes:
    """What the websockets parser has received and not consumed yet; it keeps none."""
    buffer = protocol.conn.reader.buffer
    data = bytes(buffer)
    buffer.clear()
    return data


def lose_connection_reporting(protocol, lose: Callable[[], None], code: int) -> None:
    """Run uvicorn's connection_lost (`lose`: its bookkeeping of connections and timers still applies), but let the
    application hear `code` rather than the code uvicorn queues (1005: it saw no close frame)."""
    queue, protocol.queue = protocol.queue, asyncio.Queue()
    try:
        lose()
    finally:
        protocol.queue = queue
    queue.put_nowait({"type": "websocket.disconnect", "code": code})


def queue_message_pausing_at(protocol, queue_message: Callable[[], None], high_water: int) -> None:
    """Run uvicorn's send_receive_event_to_app (`queue_message`), which pauses reading after every message unless
    reading is paused already, with reading paused only once `high_water` messages wait for the application."""
    if protocol.read_paused:
        queue_message()
        return
    protocol.read_paused = True  # for this one message: uvicorn then leaves reading as it is
    try:
        queue_message()
    finally:
        protocol.read_paused = False
    if protocol.queue.qsize() >= high_water and not protocol.transport.is_closing():
        protocol.read_paused = True
        protocol.transport.pause_reading()
