"""Direct WebSocket I/O: an open socket's frames read and written by our own code instead of the ASGI queue.

Why: a match socket carries an input from the client and a snapshot to it every tick. Through ASGI each of those is
a dict, a queue hop, a task wake-up and the server's own framing (autobahn, in pure Python, under daphne): about 75%
of a daphne process at a few hundred players (docs/benchmarks.md). In direct mode the server hands each complete
client message to the consumer synchronously, from the read callback, and the consumer writes ready-made frames (a
snapshot is framed once per tick and the same bytes go to every player of the match).

The contract is an ASGI extension, so that the consumer still runs on any ASGI server (and under Channels' test
communicator) and only uses the fast path where the server offers it:

    scope["extensions"]["gameserver.direct_socket"] = {"socket": DirectSocket}

Before accepting, the application calls `socket.attach(sink, ...)`; once the handshake completes every data
message goes to `sink.on_message(text, data)` (synchronous; it must not block) instead of a `websocket.receive`
event. `send_wire()` and `close()` are synchronous too. `websocket.disconnect` still arrives as an ASGI event, and
ASGI `websocket.send` / `websocket.close` events still work. deploy/daphne_ws.py and deploy/uvicorn_ws.py offer it.

What this module does itself (RFC 6455, server side, no extensions): masked client frames, fragmentation, control
frames (ping answered, pong noted), the closing handshake with a timeout, UTF-8 validation of text, a message size
limit checked from the frame header, keepalive pings, and a bound on what is queued for a client that does not read
(snapshots are skipped above HIGH_WATER_BYTES; above MAX_BUFFERED_BYTES the connection is dropped).

What one socket can make the process spend is bounded too (SocketLimits; docs/security.md, "WebSocket limits"): a
message may have at most `max_fragments` frames (else the too-big code), a socket may send at most `max_frames`
frames of any kind per `frame_window` seconds (else the rate-limited code), the pings of one read get at most
`pongs_per_read` pongs, for the most recent ones (RFC 6455 5.5.3 asks only for the last), written at once; no pong is
queued for a client that is not reading, and one that keeps pinging without reading is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from dataclasses import dataclass
from typing import Protocol

from gameserver.wirecounts import WIRE, WireCounts, closed_with

log = logging.getLogger(__name__)

EXTENSION = "gameserver.direct_socket"

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Standard close codes used here (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

# A client that stops reading: snapshots to it are skipped once this much is queued (it would only see stale ones),
# and past the hard limit (pongs and other replies keep coming) the connection is dropped.
HIGH_WATER_BYTES = 256 * 1024
MAX_BUFFERED_BYTES = 4 * 1024 * 1024
# How long we wait for the client's answer to our close frame before dropping the TCP connection.
CLOSE_TIMEOUT_SECONDS = 5.0
# After closing a client that broke a rule (often mid-flood), what of its bytes we still read and drop, and for how
# long, before letting go: so that it reads our close frame and code rather than a reset (see DirectSocket._finish).
LINGER_BYTES = 1024 * 1024
LINGER_SECONDS = 2.0


@dataclass(frozen=True)
class SocketLimits:
    """What one socket may make the process do; the defaults are settings (gameserver/settings.py, WS_*)."""

    # Frames in one fragmented message. Browsers never fragment what they send; libraries that do cut a message into
    # a few large frames. Without this bound a stream of empty continuation frames costs a Python call each for ever.
    max_fragments: int = 64
    # Frames of any kind (data, ping, pong, continuation) per window: a match client sends 20-60 messages a second.
    max_frames: int = 2000
    frame_window: float = 10.0
    # Pongs for the pings of one read (the most recent ones). RFC 6455 5.5.3 only asks for the last; a few more keep
    # clients that count their pongs happy (Autobahn|Testsuite's case 2.10 sends ten pings at once).
    pongs_per_read: int = 16
    # Pings that got no pong because the client had not read what was already queued for it: past this, it is dropped.
    max_unanswered_pings: int = 32

    @classmethod
    def from_settings(cls) -> SocketLimits:
        from django.conf import settings

        return cls(
            max_fragments=settings.WS_MAX_FRAGMENTS,
            max_frames=settings.WS_MAX_FRAMES,
            frame_window=float(settings.WS_FRAME_WINDOW_SECONDS),
            pongs_per_read=settings.WS_PONGS_PER_READ,
            max_unanswered_pings=settings.WS_MAX_UNANSWERED_PINGS,
        )


CONNECTING, OPEN, CLOSING, CLOSED = "connecting", "open", "closing", "closed"


def frame_message(binary: bool, payload: bytes) -> bytes:
    """A whole message as one frame: binary (msgpack) or text (JSON, UTF-8)."""
    return encode_frame(OP_BINARY if binary else OP_TEXT, payload)


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented server frame (servers never mask)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


def encode_close(code: int, reason: str = "") -> bytes:
    # A control frame carries at most 125 bytes: the reason is cut to 123, at a character boundary (it must stay UTF-8).
    return encode_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:123].decode(errors="ignore").encode())


def python_unmask(payload: bytes, mask: bytes) -> bytes:
    """The payload XORed with the 4-byte mask, repeated (RFC 6455 5.3), in Python: big-integer arithmetic."""
    n = len(payload)
    key = (mask * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


try:
    # websockets' mask helper in C (its `speedups` extension, in its wheels; websockets.frames uses it the same way,
    # with its own Python helper as the fallback): twice as fast as the Python above on an input's few bytes, and
    # every client frame is unmasked. websockets is a dependency already (uvicorn's WebSocket implementation).
    # tests/gameserver/test_directws.py checks that this is the C one and that both agree.
    from websockets.speedups import apply_mask as unmask
except ImportError:  # pragma: no cover - a websockets without its compiled part
    unmask = python_unmask


def valid_close_code(code: int) -> bool:
    """Codes a peer may send in a close frame (RFC 6455 7.4: 1004-1006 and 1015 are reserved, 1016-2999 unassigned)."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or 3000 <= code <= 4999


class _Fail(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Transport(Protocol):
    """What DirectSocket needs of the server's connection (the two adapters wrap Twisted's and asyncio's)."""

    def write(self, data: bytes) -> None: ...

    def buffered_bytes(self) -> int: ...

    def close(self) -> None: ...  # after what is queued has been written

    def write_eof(self) -> None: ...  # after what is queued has been written, end our side; reading goes on

    def abort(self) -> None: ...


class AsyncioTransport:
    """DirectSocket's Transport for an asyncio transport: the transport's own methods (C, under uvloop), with no Python
    call in between. Every snapshot to every player goes through write() and buffered_bytes()."""

    __slots__ = ("write", "buffered_bytes", "close", "write_eof", "abort")

    def __init__(self, transport: asyncio.Transport):
        self.write = transport.write
        self.buffered_bytes = transport.get_write_buffer_size
        self.close = transport.close
        # TLS transports cannot end one direction: they close (the client then sees our close frame, then the end).
        self.write_eof = transport.write_eof if transport.can_write_eof() else transport.close
        self.abort = transport.abort


class Sink(Protocol):
    def on_message(self, text: str | None, data: bytes | None) -> None: ...


class DirectSocket:
    """One WebSocket connection in direct mode, from the end of the opening handshake to the TCP close."""

    # Every input and every snapshot reads this object: its fields in the object itself, without a separate dict, are
    # fewer cache lines to fetch when a thousand sockets take turns (bench.server_path --matches).
    __slots__ = (
        "transport", "ping_interval", "ping_timeout", "sink", "max_message_bytes", "too_big_code", "rate_limited_code",
        "limits", "state", "buffer", "fragments", "fragment_opcode", "fragment_count", "frames", "frame_window_at",
        "pings_to_answer", "unanswered_pings", "last_received", "ping_sent_at", "close_timer", "linger_left",
        "close_code", "clean", "skipped_frames", "counts",
    )

    def __init__(self, transport: Transport, *, ping_interval: float = 20.0, ping_timeout: float = 30.0):
        self.transport = transport
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.sink: Sink | None = None
        self.max_message_bytes = 1024 * 1024
        self.too_big_code = CLOSE_TOO_BIG
        self.rate_limited_code = CLOSE_POLICY_VIOLATION
        self.limits = SocketLimits()
        self.state = CONNECTING
        self.buffer = b""
        # The message being assembled from fragments (None between messages), and how many frames it has had.
        self.fragments: bytearray | None = None
        self.fragment_opcode = 0
        self.fragment_count = 0
        # Frames in the current rate window, which started at frame_window_at.
        self.frames = 0
        self.frame_window_at = time.monotonic()
        # Payloads of the latest pings of the read being parsed: answered once the whole read is parsed.
        self.pings_to_answer: list[bytes] = []
        self.unanswered_pings = 0
        self.last_received = time.monotonic()
        self.ping_sent_at: float | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        self.linger_left = 0  # bytes still read and dropped after we closed a client that broke a rule
        # How it ended, for the server's websocket.disconnect event: the code the client sent (or ours, if it never
        # answered), and whether the closing handshake completed.
        self.close_code = CLOSE_ABNORMAL
        self.clean = False
        self.skipped_frames = 0
        self.counts = WIRE["other"]  # gameserver/wirecounts.py: the kind of socket's traffic, read at scrape time

    # --- the application's side ---------------------------------------------------------------------------------

    def attach(
        self,
        sink: Sink,
        *,
        max_message_bytes: int,
        too_big_code: int = CLOSE_TOO_BIG,
        rate_limited_code: int = CLOSE_POLICY_VIOLATION,
        limits: SocketLimits | None = None,
        counts: WireCounts | None = None,
    ) -> None:
        """Deliver data messages to `sink` from the end of the handshake on. Call before accepting. A message over
        `max_message_bytes` or `limits.max_fragments` frames closes the socket with `too_big_code`; more than
        `limits.max_frames` frames in a window closes it with `rate_limited_code`."""
        self.sink = sink
        self.max_message_bytes = max_message_bytes
        self.too_big_code = too_big_code
        self.rate_limited_code = rate_limited_code
        if limits is not None:
            self.limits = limits
        if counts is not None:
            self.counts = counts

    @property
    def is_open(self) -> bool:
        return self.state == OPEN

    def send_wire(self, wire: bytes, droppable: bool = False) -> bool:
        """Write one ready-made frame (encode_frame). A droppable one (a snapshot, superseded by the next) is
        skipped while the client has not read what is queued for it. False when nothing was written."""
        if self.state != OPEN:
            return False
        buffered = self.transport.buffered_bytes()
        if buffered:
            if buffered > MAX_BUFFERED_BYTES:
                log.warning("dropping a WebSocket client that read nothing of %d queued bytes", buffered)
                self._drop()
                return False
            if droppable and buffered > HIGH_WATER_BYTES:
                self.skipped_frames += 1
                return False
        self.transport.write(wire)
        counts = self.counts
        counts.messages_out += 1
        counts.bytes_out += len(wire)
        return True

    def send_message(self, text: str | None = None, data: bytes | None = None) -> bool:
        if text is not None:
            return self.send_wire(encode_frame(OP_TEXT, text.encode()))
        return self.send_wire(encode_frame(OP_BINARY, data or b""))

    def send_asgi(self, message: dict) -> None:
        """An ASGI `websocket.send` or `websocket.close` event from the application, once the socket is direct (both
        launchers route the application's send() here then)."""
        kind = message["type"]
        if kind == "websocket.send":
            if message.get("bytes") is not None:
                self.send_message(data=message["bytes"])
            elif message.get("text") is not None:
                self.send_message(text=message["text"])
        elif kind == "websocket.close":
            self.close(message.get("code") or CLOSE_NORMAL, message.get("reason") or "")
        else:
            raise RuntimeError(f"Expected ASGI message 'websocket.send' or 'websocket.close', but got {kind!r}.")

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake; the TCP connection closes when the client answers, or after a timeout."""
        if self.state != OPEN:
            return
        self.state = CLOSING
        self.close_code = code
        closed_with(code)
        self.transport.write(encode_close(code, reason))
        self.close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_SECONDS, self._close_timed_out)

    # --- the server's side ----------------------------------------------------------------------------------------

    def opened(self) -> bool:
        """The handshake has completed. True when the application attached: from now on, call feed()."""
        if self.sink is None:
            return False
        self.state = OPEN
        self.last_received = time.monotonic()
        return True

    @property
    def active(self) -> bool:
        return self.state in (OPEN, CLOSING)

    def feed(self, data: bytes) -> None:
        """Bytes read from the socket after the handshake."""
        if self.state == CLOSED or not data:
            if self.linger_left:
                self.linger_left = max(0, self.linger_left - len(data))
                if not self.linger_left:
                    self.transport.abort()
            return
        self.last_received = now = time.monotonic()
        if now - self.frame_window_at > self.limits.frame_window:
            self.frame_window_at = now
            self.frames = 0
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        try:
            # The common case, an input every tick: exactly one whole, small, masked text or binary frame.
            n = data[1] ^ 0x80 if len(data) > 6 else 0xFF  # the length if the mask bit is set, else >= 128
            b0 = data[0]
            if n < 126 and len(data) == n + 6 and (b0 == 0x81 or b0 == 0x82) and self.fragments is None:
                self.frames += 1
                if self.frames > self.limits.max_frames:
                    raise self._too_many_frames()
                if n > self.max_message_bytes:
                    raise _Fail(self.too_big_code, f"messages are limited to {self.max_message_bytes} bytes")
                if b0 == 0x82 and self.state == OPEN and not self.pings_to_answer:
                    # A binary message to an open socket with no pings to answer first: straight to the sink,
                    # as _deliver would hand it (a call fewer for every input of every player).
                    self.counts.messages_in += 1
                    try:
                        self.sink.on_message(None, unmask(data[6:], data[2:6]))
                    except Exception:
                        log.exception("WebSocket message handler failed")
                        self.close(CLOSE_INTERNAL_ERROR)
                    return
                self._deliver(b0 & 0x0F, unmask(data[6:], data[2:6]))
                return
            pos = self._parse(data)
            if self.pings_to_answer:
                self._answer_pings()
        except _Fail as failure:
            self._fail(failure.code, failure.reason)
            return
        if pos < len(data) and self.state != CLOSED:
            self.buffer = data[pos:]

    def check_keepalive(self) -> None:
        """Called every few seconds by the server: ping a quiet client, drop one that stopped answering."""
        if self.state != OPEN:
            return
        now = time.monotonic()
        if self.ping_sent_at is not None:
            if now - self.ping_sent_at > self.ping_timeout:
                self._drop()
        elif now - self.last_received > self.ping_interval:
            self.ping_sent_at = now
            self.transport.write(encode_frame(OP_PING, b""))

    def connection_lost(self) -> None:
        self.state = CLOSED
        self.linger_left = 0
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None

    # --- parsing --------------------------------------------------------------------------------------------------

    def _parse(self, data: bytes) -> int:
        pos, end = 0, len(data)
        while end - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            if b0 & 0x70:
                raise _Fail(CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension was negotiated)")
            if not b1 & 0x80:
                raise _Fail(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            opcode, fin, n = b0 & 0x0F, b0 & 0x80, b1 & 0x7F
            header = 6
            if n == 126:
                if end - pos < 4:
                    break
                n = (data[pos + 2] << 8) | data[pos + 3]
                header = 8
            elif n == 127:
                if end - pos < 10:
                    break
                n = int.from_bytes(data[pos + 2 : pos + 10], "big")
                header = 14
            if opcode >= 0x8:
                if n > 125 or not fin:
                    raise _Fail(CLOSE_PROTOCOL_ERROR, "control frames must be unfragmented and at most 125 bytes")
            elif n + (len(self.fragments) if self.fragments is not None else 0) > self.max_message_bytes:
                # Known from the header: no need to read (or wait for) the payload.
                raise _Fail(self.too_big_code, f"messages are limited to {self.max_message_bytes} bytes")
            if end - pos < header + n:
                break
            # Counted once the frame is whole: a frame that trickles in over many reads counts once, and a flood of
            # small frames in one read is cut off at the first frame over the limit.
            self._count_frame()
            start = pos + header
            payload = unmask(data[start : start + n], data[start - 4 : start])
            pos = start + n
            self._on_frame(opcode, fin, payload)
            if self.state == CLOSED:
                break
        return pos

    def _on_frame(self, opcode: int, fin: int, payload: bytes) -> None:
        if opcode == OP_TEXT or opcode == OP_BINARY:
            if self.fragments is not None:
                raise _Fail(CLOSE_PROTOCOL_ERROR, "a new message started before the fragmented one ended")
            if fin:
                self._deliver(opcode, payload)
            else:
                self.fragments, self.fragment_opcode, self.fragment_count = bytearray(payload), opcode, 1
        elif opcode == OP_CONTINUATION:
            if self.fragments is None:
                raise _Fail(CLOSE_PROTOCOL_ERROR, "a continuation frame without a message to continue")
            self.fragment_count += 1
            if self.fragment_count > self.limits.max_fragments:
                raise _Fail(self.too_big_code, f"a message may have at most {self.limits.max_fragments} frames")
            self.fragments += payload
            if fin:
                message = bytes(self.fragments)
                self.fragments, self.fragment_count = None, 0
                self._deliver(self.fragment_opcode, message)
        elif opcode == OP_PING:
            # Answered once the whole read is parsed; only the most recent pings need a pong (RFC 6455 5.5.3).
            if len(self.pings_to_answer) >= self.limits.pongs_per_read:
                del self.pings_to_answer[0]
            self.pings_to_answer.append(payload)
        elif opcode == OP_PONG:
            self.ping_sent_at = None
        elif opcode == OP_CLOSE:
            self._on_close_frame(payload)
        else:
            raise _Fail(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")

    def _count_frame(self) -> None:
        self.frames += 1
        if self.frames > self.limits.max_frames:
            raise self._too_many_frames()

    def _too_many_frames(self) -> _Fail:
        return _Fail(self.rate_limited_code, f"at most {self.limits.max_frames} frames per {self.limits.frame_window:g} s")

    def _answer_pings(self) -> None:
        payloads, self.pings_to_answer = self.pings_to_answer, []
        if self.state != OPEN:
            return
        if self.transport.buffered_bytes() > HIGH_WATER_BYTES:
            # The client is not reading what we already sent: a pong would only add to that. One that keeps pinging
            # regardless is not a client we can serve.
            self.unanswered_pings += len(payloads)
            if self.unanswered_pings > self.limits.max_unanswered_pings:
                log.warning("dropping a WebSocket client that keeps pinging without reading")
                self._drop()
            return
        self.unanswered_pings = 0
        self.transport.write(b"".join(encode_frame(OP_PONG, payload) for payload in payloads))

    def _deliver(self, opcode: int, payload: bytes) -> None:
        if self.state != OPEN:
            return  # after our close frame the client's data is discarded (RFC 6455 1.4)
        if self.pings_to_answer:
            # Pings that came before this message are answered before anything the message makes us send.
            self._answer_pings()
        text = None
        if opcode == OP_TEXT:
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                raise _Fail(CLOSE_INVALID_DATA, "text messages must be UTF-8") from None
            payload = None
        self.counts.messages_in += 1
        try:
            self.sink.on_message(text, payload)
        except Exception:
            log.exception("WebSocket message handler failed")
            self.close(CLOSE_INTERNAL_ERROR)

    def _on_close_frame(self, payload: bytes) -> None:
        if len(payload) == 1:
            raise _Fail(CLOSE_PROTOCOL_ERROR, "a close frame's payload is a 2-byte code and an optional reason")
        code = int.from_bytes(payload[:2], "big") if payload else CLOSE_NO_STATUS
        if payload and not valid_close_code(code):
            raise _Fail(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
        try:
            payload[2:].decode()
        except UnicodeDecodeError:
            raise _Fail(CLOSE_INVALID_DATA, "the close reason must be UTF-8") from None
        if self.state == OPEN:
            # The client closes: echo its code, as the closing handshake asks.
            self.transport.write(encode_close(code) if payload else encode_frame(OP_CLOSE, b""))
        self.close_code = code
        self.clean = True
        self._finish()

    # --- ending -----------------------------------------------------------------------------------------------------

    def _fail(self, code: int, reason: str) -> None:
        """The client broke the protocol or a limit: say why in a close frame and close without waiting for its answer."""
        if self.state == OPEN:
            self.transport.write(encode_close(code, reason))
            closed_with(code)
        self.close_code = code
        self._finish(linger=True)

    def _finish(self, *, linger: bool = False) -> None:
        """Close the connection once what is queued is written; abort it if that takes over CLOSE_TIMEOUT_SECONDS (a
        client that does not read would otherwise hold it for ever).

        `linger`: the client may still be sending (it broke a limit mid-flood). Closing with its bytes unread makes the
        kernel answer them with a reset, which can destroy our close frame before the client reads it. So our side is
        ended instead (the close frame, then FIN), and what still comes is read and dropped, at most LINGER_BYTES for
        at most LINGER_SECONDS, until the client closes too."""
        self.state = CLOSED
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        if linger:
            self.linger_left = LINGER_BYTES
            self.transport.write_eof()
        else:
            self.transport.close()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # fed outside an event loop (unit tests): nothing to time
            return
        self.close_timer = loop.call_later(LINGER_SECONDS if linger else CLOSE_TIMEOUT_SECONDS, self._finish_timed_out)

    def _finish_timed_out(self) -> None:
        self.close_timer = None
        self.linger_left = 0
        self.transport.abort()

    def _close_timed_out(self) -> None:
        self.close_timer = None
        if self.state == CLOSING:
            self._drop()

    def _drop(self) -> None:
        if self.state == OPEN:
            closed_with(CLOSE_ABNORMAL)  # a client that does not read what it is sent
        self.state = CLOSED
        self.close_code = CLOSE_ABNORMAL
        self.clean = False
        self.transport.abort()
