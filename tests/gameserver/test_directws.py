"""DirectSocket, the sans-I/O server side of RFC 6455: framing, fragmentation, control frames, the closing
handshake, the message size limit, back-pressure on a client that does not read, and keepalive pings."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from types import SimpleNamespace

import pytest

from gameserver import directws
from gameserver.directws import (
    CLOSE_ABNORMAL,
    CLOSE_INTERNAL_ERROR,
    CLOSE_INVALID_DATA,
    CLOSE_NO_STATUS,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    CLOSED,
    CLOSING,
    CONNECTING,
    HIGH_WATER_BYTES,
    MAX_BUFFERED_BYTES,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    OPEN,
    DirectSocket,
    SocketLimits,
    encode_close,
    encode_frame,
    python_unmask,
    unmask,
    valid_close_code,
)

MASK = b"\x12\x34\x56\x78"
ZERO_MASK = b"\x00\x00\x00\x00"


# --- helpers --------------------------------------------------------------------------------------------------------


def xor(payload: bytes, mask: bytes) -> bytes:
    """The naive masking of RFC 6455 5.3, byte by byte."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bytes = MASK, masked: bool = True, rsv: int = 0
):
    """A client frame: masked unless told otherwise, with the shortest length encoding."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        header = bytes((b0, mask_bit | n))
    elif n < 65536:
        header = struct.pack("!BBH", b0, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", b0, mask_bit | 127, n)
    if not masked:
        return header + payload
    return header + mask + xor(payload, mask)


def close_frame(code: int | None = None, reason: bytes = b"", **kwargs) -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason
    return frame(OP_CLOSE, payload, **kwargs)


def parse_server_frames(data: bytes) -> list[tuple[bool, int, bytes]]:
    """Split what the server wrote into (fin, opcode, payload); server frames are never masked."""
    frames, pos = [], 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert not b1 & 0x80, "server frames must not be masked"
        assert not b0 & 0x70, "no extension was negotiated"
        n, pos = b1 & 0x7F, pos + 2
        if n == 126:
            n, pos = struct.unpack("!H", data[pos : pos + 2])[0], pos + 2
        elif n == 127:
            n, pos = struct.unpack("!Q", data[pos : pos + 8])[0], pos + 8
        assert pos + n <= len(data), "truncated server frame"
        frames.append((bool(b0 & 0x80), b0 & 0x0F, data[pos : pos + n]))
        pos += n
    return frames


def parse_close(payload: bytes) -> tuple[int, str]:
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


class FakeTransport:
    def __init__(self):
        self.written = bytearray()
        self.buffered = 0
        self.closed = False
        self.eof = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed and not self.aborted, "written after the transport was closed"
        self.written += data

    def buffered_bytes(self) -> int:
        return self.buffered

    def close(self) -> None:
        self.closed = True

    def write_eof(self) -> None:
        self.closed = True  # our side is over; the client's bytes are still read (and dropped)
        self.eof = True

    def abort(self) -> None:
        self.aborted = True

    def frames(self) -> list[tuple[bool, int, bytes]]:
        return parse_server_frames(bytes(self.written))

    def close_frames(self) -> list[tuple[int, str] | None]:
        """Each close frame written: (code, reason), or None for an empty one."""
        return [parse_close(p) if p else None for _, op, p in self.frames() if op == OP_CLOSE]


class FakeSink:
    def __init__(self):
        self.messages: list[tuple[str | None, bytes | None]] = []

    def on_message(self, text, data):
        self.messages.append((text, data))


class FailingSink(FakeSink):
    def on_message(self, text, data):
        super().on_message(text, data)
        raise RuntimeError("handler broke")


def open_socket(*, max_message_bytes=1024 * 1024, too_big_code=CLOSE_TOO_BIG, sink=None, **kwargs):
    transport, sink = FakeTransport(), sink or FakeSink()
    sock = DirectSocket(transport, **kwargs)
    sock.attach(sink, max_message_bytes=max_message_bytes, too_big_code=too_big_code)
    assert sock.opened()
    return sock, transport, sink


def assert_failed(sock: DirectSocket, transport: FakeTransport, sink: FakeSink, code: int, delivered=()):
    """The client broke the protocol: a close frame with `code`, the transport closed (not aborted), no more messages."""
    assert transport.close_frames()[-1][0] == code
    assert sock.state == CLOSED and not sock.is_open and not sock.active
    assert sock.close_code == code and not sock.clean
    assert transport.closed and not transport.aborted
    assert sink.messages == list(delivered)


@pytest.fixture
def clock(monkeypatch):
    """A settable time.monotonic() for the module (the real one is left alone for the event loop)."""
    fake = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(directws, "time", SimpleNamespace(monotonic=lambda: fake.now))
    return fake


# --- attaching and opening ------------------------------------------------------------------------------------------


def test_opened_without_a_sink_returns_false_and_stays_connecting():
    sock = DirectSocket(FakeTransport())
    assert sock.opened() is False
    assert sock.state == CONNECTING and not sock.is_open and not sock.active


def test_opened_with_a_sink_is_open_and_active():
    sock = DirectSocket(FakeTransport())
    sock.attach(FakeSink(), max_message_bytes=100, too_big_code=4009)
    assert sock.state == CONNECTING and not sock.is_open
    assert sock.opened() is True
    assert sock.state == OPEN and sock.is_open and sock.active
    assert sock.max_message_bytes == 100 and sock.too_big_code == 4009


def test_initial_outcome_is_abnormal_until_something_happens():
    sock = DirectSocket(FakeTransport())
    assert sock.close_code == CLOSE_ABNORMAL and not sock.clean and sock.skipped_frames == 0


def test_data_frames_before_opened_are_not_delivered():
    transport, sink = FakeTransport(), FakeSink()
    sock = DirectSocket(transport)
    sock.attach(sink, max_message_bytes=1000)
    sock.feed(frame(OP_TEXT, b"too early"))
    sock.feed(frame(OP_BINARY, b"x"))
    assert sink.messages == []
    assert transport.written == b""


def test_send_wire_before_opened_writes_nothing():
    transport = FakeTransport()
    sock = DirectSocket(transport)
    sock.attach(FakeSink(), max_message_bytes=1000)
    assert sock.send_wire(encode_frame(OP_TEXT, b"hi")) is False
    assert sock.send_message(text="hi") is False
    assert transport.written == b""


def test_close_before_opened_does_nothing():
    transport = FakeTransport()
    sock = DirectSocket(transport)
    sock.close(1000)  # no running loop needed: it returns before the timer
    assert transport.written == b"" and sock.state == CONNECTING


# --- receiving data -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [MASK, ZERO_MASK, b"\xff\xff\xff\xff"])
def test_masked_text_frame_is_delivered_as_str(mask):
    sock, transport, sink = open_socket()
    sock.feed(frame(OP_TEXT, "héllo wörld".encode(), mask=mask))
    assert sink.messages == [("héllo wörld", None)]
    assert transport.written == b""


@pytest.mark.parametrize("mask", [MASK, ZERO_MASK])
def test_masked_binary_frame_is_delivered_as_bytes(mask):
    sock, _, sink = open_socket()
    sock.feed(frame(OP_BINARY, bytes(range(100)), mask=mask))
    assert sink.messages == [(None, bytes(range(100)))]


@pytest.mark.parametrize("opcode, expected", [(OP_TEXT, ("", None)), (OP_BINARY, (None, b""))])
def test_empty_messages_are_delivered(opcode, expected):
    sock, _, sink = open_socket()
    sock.feed(frame(opcode, b""))
    assert sink.messages == [expected]


def test_several_frames_in_one_feed_are_all_delivered_in_order():
    sock, _, sink = open_socket()
    sock.feed(frame(OP_TEXT, b"one") + frame(OP_BINARY, b"\x00\x01", mask=ZERO_MASK) + frame(OP_TEXT, b"three"))
    assert sink.messages == [("one", None), (None, b"\x00\x01"), ("three", None)]


def test_frame_split_across_two_feeds_is_delivered_once_complete():
    sock, _, sink = open_socket()
    wire = frame(OP_TEXT, b"split message")
    sock.feed(wire[:5])
    assert sink.messages == []
    sock.feed(wire[5:])
    assert sink.messages == [("split message", None)]
    assert sock.buffer == b""


@pytest.mark.parametrize("size", [0, 1, 50, 125, 126, 300])
def test_frame_fed_byte_by_byte_is_delivered_once(size):
    sock, _, sink = open_socket()
    payload = bytes(i % 251 for i in range(size))
    wire = frame(OP_BINARY, payload)
    for i in range(len(wire)):
        assert sink.messages == []
        sock.feed(wire[i : i + 1])
    assert sink.messages == [(None, payload)]
    assert sock.buffer == b""


def test_two_frames_split_at_every_position_are_both_delivered():
    wire = frame(OP_TEXT, b"first") + frame(OP_BINARY, b"second!", mask=ZERO_MASK)
    for cut in range(len(wire) + 1):
        sock, _, sink = open_socket()
        for piece in (wire[:cut], wire[cut:]):
            sock.feed(piece)
        assert sink.messages == [("first", None), (None, b"second!")], cut


def test_feeding_no_bytes_is_harmless():
    sock, transport, sink = open_socket()
    sock.feed(b"")
    assert sock.is_open and sink.messages == [] and transport.written == b""


def test_complete_frame_followed_by_a_partial_one_keeps_the_tail():
    sock, _, sink = open_socket()
    second = frame(OP_TEXT, b"later")
    sock.feed(frame(OP_TEXT, b"now") + second[:3])
    assert sink.messages == [("now", None)]
    sock.feed(second[3:])
    assert sink.messages == [("now", None), ("later", None)]


@pytest.mark.parametrize("size", [126, 200, 65535])
def test_16_bit_extended_length_is_read(size):
    sock, _, sink = open_socket()
    payload = bytes(i % 256 for i in range(size))
    wire = frame(OP_BINARY, payload)
    assert wire[1] == 0x80 | 126 and struct.unpack("!H", wire[2:4])[0] == size
    sock.feed(wire)
    assert sink.messages == [(None, payload)]


def test_16_bit_extended_length_text_is_read():
    sock, _, sink = open_socket()
    text = "ü" * 150  # 300 bytes
    sock.feed(frame(OP_TEXT, text.encode()))
    assert sink.messages == [(text, None)]


def test_64_bit_extended_length_is_read():
    sock, _, sink = open_socket(max_message_bytes=100_000)
    payload = random.Random(1).randbytes(70_000)
    wire = frame(OP_BINARY, payload)
    assert wire[1] == 0x80 | 127 and struct.unpack("!Q", wire[2:10])[0] == 70_000
    sock.feed(wire)
    assert sink.messages == [(None, payload)]


def test_64_bit_extended_length_fed_in_chunks_is_read():
    sock, _, sink = open_socket(max_message_bytes=100_000)
    payload = random.Random(2).randbytes(70_000)
    wire = frame(OP_BINARY, payload, mask=ZERO_MASK)
    # Chunk boundaries inside the 10-byte header too.
    pieces = [wire[:1], wire[1:5], wire[5:13]] + [wire[i : i + 4096] for i in range(13, len(wire), 4096)]
    for piece in pieces:
        assert sink.messages == []
        sock.feed(piece)
    assert sink.messages == [(None, payload)]


def test_message_of_exactly_the_limit_is_delivered():
    sock, transport, sink = open_socket(max_message_bytes=10, too_big_code=4009)
    sock.feed(frame(OP_BINARY, b"0123456789"))
    sock.feed(frame(OP_TEXT, b"0123") + frame(OP_TEXT, b"0123456789"))
    assert sink.messages == [(None, b"0123456789"), ("0123", None), ("0123456789", None)]
    assert sock.is_open and transport.written == b""


# --- fragmentation --------------------------------------------------------------------------------------------------


def test_fragmented_text_message_is_reassembled():
    sock, _, sink = open_socket()
    sock.feed(frame(OP_TEXT, b"Hel", fin=False))
    sock.feed(frame(OP_CONTINUATION, b"lo, ", fin=False))
    assert sink.messages == []
    sock.feed(frame(OP_CONTINUATION, b"world"))
    assert sink.messages == [("Hello, world", None)]
    assert sock.fragments is None


def test_fragmented_binary_message_in_one_feed_is_reassembled():
    sock, _, sink = open_socket()
    sock.feed(
        frame(OP_BINARY, b"\x00", fin=False)
        + frame(OP_CONTINUATION, b"\x01", fin=False, mask=ZERO_MASK)
        + frame(OP_CONTINUATION, b"\x02")
    )
    assert sink.messages == [(None, b"\x00\x01\x02")]


def test_utf8_character_split_across_fragments_is_valid():
    sock, _, sink = open_socket()
    encoded = "€uro".encode()  # the euro sign is 3 bytes
    sock.feed(frame(OP_TEXT, encoded[:1], fin=False) + frame(OP_CONTINUATION, encoded[1:2], fin=False))
    sock.feed(frame(OP_CONTINUATION, encoded[2:]))
    assert sink.messages == [("€uro", None)]


def test_fragments_with_empty_final_frame_are_reassembled():
    sock, _, sink = open_socket()
    sock.feed(frame(OP_TEXT, b"abc", fin=False) + frame(OP_CONTINUATION, b""))
    assert sink.messages == [("abc", None)]


def test_messages_after_a_fragmented_one_are_delivered_normally():
    sock, _, sink = open_socket(max_message_bytes=10)
    sock.feed(frame(OP_TEXT, b"12345", fin=False) + frame(OP_CONTINUATION, b"67890"))
    sock.feed(frame(OP_TEXT, b"0123456789"))  # the fragment count was reset: this fits the limit again
    assert sink.messages == [("1234567890", None), ("0123456789", None)]
    assert sock.is_open


def test_ping_between_fragments_is_answered_and_message_still_reassembled():
    sock, transport, sink = open_socket()
    sock.feed(frame(OP_TEXT, b"frag", fin=False) + frame(OP_PING, b"are you there"))
    assert transport.frames() == [(True, OP_PONG, b"are you there")]
    sock.feed(frame(OP_PONG, b"") + frame(OP_CONTINUATION, b"mented"))
    assert sink.messages == [("fragmented", None)]
    assert sock.is_open


def test_continuation_without_a_started_message_fails_with_1002():
    sock, transport, sink = open_socket()
    sock.feed(frame(OP_CONTINUATION, b"orphan"))
    assert_failed(sock, transport, sink, CLOSE_PROTOCOL_ERROR)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_new_data_frame_during_a_fragmented_message_fails_with_1002(opcode):
    sock, transport, sink = open_socket()
    sock.feed(frame(OP_TEXT, b"start", fin=False))
    sock.feed(frame(opcode, b"intruder"))
    assert_failed(sock, transport, sink, CLOSE_PROTOCOL_ERROR)


# --- protocol errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(frame(OP_TEXT, b"hi", masked=False), id="unmasked-short"),
        pytest.param(frame(OP_TEXT, b"hello, unmasked world", masked=False), id="unmasked"),
        pytest.param(frame(OP_BINARY, bytes(300), masked=False), id="unmasked-16-bit"),
        pytest.param(frame(OP_PING, b"", masked=False), id="unmasked-ping"),
        pytest.param(frame(OP_TEXT, b"hi", rsv=0x40), id="rsv1"),
        pytest.param(frame(OP_TEXT, b"hello there", rsv=0x20), id="rsv2"),
        pytest.param(frame(OP_BINARY, b"x", rsv=0x10), id="rsv3"),
        pytest.param(frame(0x3, b"reserved"), id="opcode-3"),
        pytest.param(frame(0x7, b""), id="opcode-7"),
        pytest.param(frame(0xB, b"reserved control"), id="opcode-b"),
        pytest.param(frame(0xF, b""), id="opcode-f"),
        pytest.param(frame(OP_PING, bytes(126)), id="ping-126-bytes"),
        pytest.param(frame(OP_PONG, bytes(200)), id="pong-200-bytes"),
        pytest.param(frame(OP_CLOSE, struct.pack("!H", 1000) + bytes(124)), id="close-126-bytes"),
        pytest.param(frame(OP_PING, b"x", fin=False), id="ping-not-fin"),
        pytest.param(frame(OP_CLOSE, struct.pack("!H", 1000), fin=False), id="close-not-fin"),
    ],
)
def test_protocol_errors_close_with_1002(wire):
    sock, transport, sink = open_socket()
    sock.feed(wire)
    assert_failed(sock, transport, sink, CLOSE_PROTOCOL_ERROR)
    assert len(transport.close_frames()) == 1


def test_protocol_error_after_good_frames_in_the_same_feed_keeps_the_earlier_messages():
    sock, transport, sink = open_socket()
    sock.feed(frame(OP_TEXT, b"ok") + frame(OP_TEXT, b"bad", rsv=0x40) + frame(OP_TEXT, b"never"))
    assert_failed(sock, transport, sink, CLOSE_PROTOCOL_ERROR, delivered=[("ok", None)])


def test_control_frame_with_125_bytes_is_accepted():
    sock, transport, _ = open_socket()
    sock.feed(frame(OP_PING, bytes(range(125))))
    assert transport.frames() == [(True, OP_PONG, bytes(range(125)))]
    assert sock.is_open


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xfe", b"abc\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"ok\x80"],
    ids=["bad-bytes", "truncated", "surrogate", "overlong", "stray-continuation"],
)
def test_invalid_utf8_text_closes_with_1007(payload):
    sock, transport, sink = open_socket()
    sock.feed(frame(OP_TEXT, payload))
    assert_failed(sock, transport, sink, CLOSE_INVALID_DATA)


def test_invalid_utf8_in_a_frame_read_by_the_general_parser_closes_with_1007():
    sock, transport, sink = open_socket()
    sock.feed(frame(OP_TEXT, b"fine") + frame(OP_TEXT, b"\xff"))
    assert_failed(sock, transport, sink, CLOSE_INVALID_DATA, delivered=[("fine", None)])


def test_invalid_utf8_in_a_fragmented_text_closes_with_1007():
    sock, transport, sink = open_socket()
    sock.feed(frame(OP_TEXT, b"abc", fin=False))
    sock.feed(frame(OP_CONTINUATION, b"\xfe"))
    assert_failed(sock, transport, sink, CLOSE_INVALID_DATA)


def test_invalid_utf8_in_a_binary_message_is_fine():
    sock, _, sink = open_socket()
    sock.feed(frame(OP_BINARY, b"\xff\xfe"))
    assert sink.messages == [(None, b"\xff\xfe")]


# --- the message size limit -----------------------------------------------------------------------------------------


def test_oversize_short_frame_is_refused_with_the_given_code():
    sock, transport, sink = open_socket(max_message_bytes=10, too_big_code=4009)
    sock.feed(frame(OP_TEXT, b"01234567890"))  # one whole frame: the fast path
    assert_failed(sock, transport, sink, 4009)
    assert transport.close_frames() == [(4009, "messages are limited to 10 bytes")]


def test_oversize_default_code_is_1009():
    sock, transport, sink = open_socket(max_message_bytes=10)
    sock.feed(frame(OP_BINARY, bytes(11)))
    assert_failed(sock, transport, sink, CLOSE_TOO_BIG)


def test_oversize_is_refused_from_the_first_two_header_bytes():
    sock, transport, sink = open_socket(max_message_bytes=10, too_big_code=4009)
    sock.feed(frame(OP_BINARY, bytes(50))[:2])
    assert_failed(sock, transport, sink, 4009)


def test_oversize_16_bit_length_is_refused_from_the_header_alone():
    sock, transport, sink = open_socket(max_message_bytes=100, too_big_code=4009)
    header = frame(OP_BINARY, bytes(200))[:4]  # b0, b1, the 2-byte length: not even the mask yet
    sock.feed(header)
    assert_failed(sock, transport, sink, 4009)


def test_oversize_64_bit_length_is_refused_from_the_header_alone():
    sock, transport, sink = open_socket(max_message_bytes=65536, too_big_code=4009)
    header = struct.pack("!BBQ", 0x82, 0x80 | 127, 10**12)  # a terabyte announced
    sock.feed(header)
    assert_failed(sock, transport, sink, 4009)


def test_oversize_header_fed_byte_by_byte_is_refused_once_the_length_is_known():
    sock, transport, sink = open_socket(max_message_bytes=100, too_big_code=4009)
    header = frame(OP_BINARY, bytes(70_000))[:10]
    for i, byte in enumerate(header):
        assert transport.written == b"", i
        sock.feed(bytes((byte,)))
    assert_failed(sock, transport, sink, 4009)


def test_oversize_by_the_sum_of_fragments_is_refused_from_the_continuation_header():
    sock, transport, sink = open_socket(max_message_bytes=10, too_big_code=4009)
    sock.feed(frame(OP_TEXT, b"123456", fin=False))
    assert sock.is_open
    sock.feed(frame(OP_CONTINUATION, b"7890X")[:2])  # 6 + 5 > 10, known from the header
    assert_failed(sock, transport, sink, 4009)


def test_fragments_summing_to_exactly_the_limit_are_delivered():
    sock, _, sink = open_socket(max_message_bytes=10, too_big_code=4009)
    sock.feed(frame(OP_TEXT, b"123456", fin=False) + frame(OP_CONTINUATION, b"7890"))
    assert sink.messages == [("1234567890", None)] and sock.is_open


def test_control_frames_do_not_count_towards_the_message_limit():
    sock, transport, sink = open_socket(max_message_bytes=10, too_big_code=4009)
    sock.feed(frame(OP_TEXT, b"123456789", fin=False) + frame(OP_PING, bytes(100)) + frame(OP_CONTINUATION, b"0"))
    assert sink.messages == [("1234567890", None)]
    assert transport.frames() == [(True, OP_PONG, bytes(100))]


# --- ping and pong --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"abc", bytes(range(125))])
def test_ping_is_answered_with_a_pong_carrying_the_same_payload(payload):
    sock, transport, sink = open_socket()
    sock.feed(frame(OP_PING, payload))
    assert transport.frames() == [(True, OP_PONG, payload)]
    assert sink.messages == [] and sock.is_open


def test_several_pings_in_one_feed_are_each_answered():
    sock, transport, _ = open_socket()
    sock.feed(frame(OP_PING, b"1") + frame(OP_PING, b"2", mask=ZERO_MASK))
    assert transport.frames() == [(True, OP_PONG, b"1"), (True, OP_PONG, b"2")]


def test_unsolicited_pong_is_ignored():
    sock, transport, sink = open_socket()
    sock.feed(frame(OP_PONG, b"whatever"))
    assert transport.written == b"" and sink.messages == [] and sock.is_open


# --- the client closes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code, reason", [(1000, "bye"), (4000, "héllo wörld"), (1001, ""), (3000, "x" * 123)])
def test_client_close_is_echoed_with_the_same_code(code, reason):
    sock, transport, sink = open_socket()
    sock.feed(close_frame(code, reason.encode()))
    assert [code_ for code_, _ in transport.close_frames()] == [code]
    assert sock.close_code == code and sock.clean
    assert sock.state == CLOSED and not sock.active
    assert transport.closed and not transport.aborted
    assert sink.messages == []


def test_empty_client_close_is_answered_with_an_empty_close_and_1005():
    sock, transport, _ = open_socket()
    sock.feed(close_frame())
    assert transport.frames() == [(True, OP_CLOSE, b"")]
    assert sock.close_code == CLOSE_NO_STATUS and sock.clean
    assert transport.closed and sock.state == CLOSED


def test_client_close_with_a_one_byte_payload_fails_with_1002():
    sock, transport, sink = open_socket()
    sock.feed(frame(OP_CLOSE, b"\x03"))
    assert_failed(sock, transport, sink, CLOSE_PROTOCOL_ERROR)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_client_close_with_an_invalid_code_fails_with_1002(code):
    sock, transport, sink = open_socket()
    sock.feed(close_frame(code))
    assert_failed(sock, transport, sink, CLOSE_PROTOCOL_ERROR)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1014, 3000, 3999, 4000, 4999])
def test_client_close_with_a_valid_code_is_accepted(code):
    sock, transport, _ = open_socket()
    sock.feed(close_frame(code))
    assert transport.close_frames() == [(code, "")]
    assert sock.close_code == code and sock.clean


def test_client_close_with_an_invalid_utf8_reason_fails_with_1007():
    sock, transport, sink = open_socket()
    sock.feed(close_frame(1000, b"bad \xff reason"))
    assert_failed(sock, transport, sink, CLOSE_INVALID_DATA)


def test_frames_after_the_client_close_in_the_same_feed_are_ignored():
    sock, transport, sink = open_socket()
    sock.feed(frame(OP_TEXT, b"before") + close_frame(1000) + frame(OP_TEXT, b"after") + frame(OP_PING, b"p"))
    assert sink.messages == [("before", None)]
    assert [op for _, op, _ in transport.frames()] == [OP_CLOSE]
    assert sock.buffer == b""


def test_feed_after_closed_is_ignored():
    sock, transport, sink = open_socket()
    sock.feed(close_frame(1000))
    written = bytes(transport.written)
    sock.feed(frame(OP_TEXT, b"late") + frame(OP_PING, b"p") + frame(0x3, b"garbage"))
    assert sink.messages == [] and transport.written == written
    assert sock.close_code == 1000 and sock.clean


def test_send_after_client_close_writes_nothing():
    sock, transport, _ = open_socket()
    sock.feed(close_frame(1000))
    written = bytes(transport.written)
    assert sock.send_message(text="late") is False
    assert transport.written == written


def test_connection_lost_marks_the_socket_closed():
    sock, transport, _ = open_socket()
    sock.connection_lost()
    assert sock.state == CLOSED and not sock.active
    assert sock.close_code == CLOSE_ABNORMAL and not sock.clean
    sock.feed(frame(OP_PING, b""))
    assert transport.written == b""


# --- the server closes ----------------------------------------------------------------------------------------------


async def test_server_close_writes_the_close_frame_and_waits_for_the_client():
    sock, transport, sink = open_socket()
    sock.close(4013, "over")
    assert transport.close_frames() == [(4013, "over")]
    assert sock.state == CLOSING and not sock.is_open and sock.active
    assert not transport.closed and not transport.aborted
    assert sock.close_code == 4013
    sock.connection_lost()  # let the timer go


async def test_data_after_the_server_close_is_discarded_and_the_client_answer_closes_cleanly():
    sock, transport, sink = open_socket()
    sock.close(4013, "over")
    sock.feed(frame(OP_TEXT, b"still talking") + frame(OP_BINARY, b"\x01"))
    sock.feed(frame(OP_TEXT, b"frag", fin=False) + frame(OP_CONTINUATION, b"ment"))
    assert sink.messages == []
    assert not transport.closed and sock.state == CLOSING
    sock.feed(close_frame(4013, b"over"))
    assert transport.closed and not transport.aborted
    assert sock.state == CLOSED and sock.clean and sock.close_code == 4013
    sock.connection_lost()  # the transport finished closing
    assert sock.close_timer is None
    assert len(transport.close_frames()) == 1  # the client's answer is not echoed back


async def test_server_close_answered_without_a_code_records_1005():
    sock, transport, _ = open_socket()
    sock.close(1000)
    sock.feed(close_frame())
    assert sock.clean and sock.close_code == CLOSE_NO_STATUS and transport.closed


async def test_ping_during_closing_is_not_answered():
    sock, transport, _ = open_socket()
    sock.close(1000)
    written = bytes(transport.written)
    sock.feed(frame(OP_PING, b"p"))
    assert transport.written == written
    sock.connection_lost()


async def test_protocol_error_while_closing_closes_without_a_second_close_frame():
    sock, transport, sink = open_socket()
    sock.close(1000)
    sock.feed(frame(OP_TEXT, b"x", masked=False))
    assert transport.closed and sock.state == CLOSED
    assert sock.close_code == CLOSE_PROTOCOL_ERROR and not sock.clean
    assert transport.close_frames() == [(1000, "")]
    sock.connection_lost()
    assert sock.close_timer is None


async def test_server_close_without_an_answer_aborts_after_the_timeout(monkeypatch):
    monkeypatch.setattr(directws, "CLOSE_TIMEOUT_SECONDS", 0.01)
    sock, transport, _ = open_socket()
    sock.close(4013, "over")
    await asyncio.sleep(0.05)
    assert transport.aborted and not transport.closed
    assert sock.state == CLOSED and not sock.clean and sock.close_code == CLOSE_ABNORMAL
    assert sock.close_timer is None


async def test_client_answer_cancels_the_close_timer(monkeypatch):
    monkeypatch.setattr(directws, "CLOSE_TIMEOUT_SECONDS", 0.01)
    sock, transport, _ = open_socket()
    sock.close(1000)
    sock.feed(close_frame(1000))
    sock.connection_lost()  # the transport finished closing
    await asyncio.sleep(0.05)
    assert transport.closed and not transport.aborted
    assert sock.clean and sock.close_code == 1000


async def test_connection_lost_cancels_the_close_timer(monkeypatch):
    monkeypatch.setattr(directws, "CLOSE_TIMEOUT_SECONDS", 0.01)
    sock, transport, _ = open_socket()
    sock.close(1000)
    sock.connection_lost()
    assert sock.close_timer is None
    await asyncio.sleep(0.05)
    assert not transport.aborted and sock.state == CLOSED


async def test_close_twice_writes_one_close_frame():
    sock, transport, _ = open_socket()
    sock.close(4013, "over")
    sock.close(1000, "again")
    assert transport.close_frames() == [(4013, "over")]
    assert sock.close_code == 4013
    sock.connection_lost()


async def test_send_after_server_close_returns_false_and_writes_nothing():
    sock, transport, _ = open_socket()
    sock.close(1000)
    written = bytes(transport.written)
    assert sock.send_wire(encode_frame(OP_TEXT, b"late")) is False
    assert sock.send_message(data=b"late") is False
    assert transport.written == written


async def test_server_close_with_a_long_ascii_reason_is_truncated_to_a_valid_control_frame():
    sock, transport, _ = open_socket()
    sock.close(4000, "r" * 500)
    [(fin, opcode, payload)] = transport.frames()
    assert fin and opcode == OP_CLOSE and len(payload) == 125
    assert parse_close(payload) == (4000, "r" * 123)
    sock.connection_lost()


def test_close_reason_truncation_keeps_valid_utf8():
    wire = encode_close(4000, "é" * 62)  # 124 bytes of UTF-8
    [(_, _, payload)] = parse_server_frames(wire)
    assert len(payload) <= 125
    payload[2:].decode()  # a client must fail the connection on an invalid reason (RFC 6455 5.5.1, 8.1)


def test_server_close_frame_with_a_long_non_ascii_reason_is_accepted_by_a_peer():
    peer, peer_transport, _ = open_socket()
    wire = encode_close(4000, "é" * 62)
    [(_, _, payload)] = parse_server_frames(wire)
    peer.feed(close_frame(4000, payload[2:]))
    assert peer.clean and peer.close_code == 4000, peer_transport.close_frames()


# --- a failing message handler --------------------------------------------------------------------------------------


async def test_handler_exception_closes_with_1011_and_is_logged(caplog):
    sock, transport, sink = open_socket(sink=FailingSink())
    with caplog.at_level(logging.ERROR, logger="gameserver.directws"):
        sock.feed(frame(OP_TEXT, b"boom"))  # no exception escapes feed()
    assert sink.messages == [("boom", None)]
    assert transport.close_frames() == [(CLOSE_INTERNAL_ERROR, "")]
    assert sock.state == CLOSING and sock.close_code == CLOSE_INTERNAL_ERROR
    [record] = [r for r in caplog.records if r.name == "gameserver.directws"]
    assert record.levelno == logging.ERROR and record.exc_info[0] is RuntimeError
    sock.connection_lost()


async def test_handler_exception_discards_the_rest_of_the_feed(caplog):
    sock, transport, sink = open_socket(sink=FailingSink())
    with caplog.at_level(logging.CRITICAL, logger="gameserver.directws"):
        sock.feed(frame(OP_BINARY, b"\x01") + frame(OP_BINARY, b"\x02") + frame(OP_TEXT, b"three"))
    assert sink.messages == [(None, b"\x01")]
    assert transport.close_frames() == [(CLOSE_INTERNAL_ERROR, "")]
    sock.feed(close_frame(CLOSE_INTERNAL_ERROR))
    assert transport.closed and sock.clean and sock.close_code == CLOSE_INTERNAL_ERROR


# --- sending --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, header",
    [
        (0, b"\x82\x00"),
        (1, b"\x82\x01"),
        (125, b"\x82\x7d"),
        (126, b"\x82\x7e\x00\x7e"),
        (65535, b"\x82\x7e\xff\xff"),
        (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_encode_frame_headers(size, header):
    payload = bytes(i % 256 for i in range(size))
    wire = encode_frame(OP_BINARY, payload)
    assert wire[: len(header)] == header
    assert wire[len(header) :] == payload
    assert parse_server_frames(wire) == [(True, OP_BINARY, payload)]


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG])
def test_encode_frame_sets_fin_and_opcode_without_mask(opcode):
    wire = encode_frame(opcode, b"abc")
    assert wire == bytes((0x80 | opcode, 3)) + b"abc"


def test_encode_close_carries_code_and_reason():
    assert encode_close(1000) == b"\x88\x02\x03\xe8"
    assert encode_close(4013, "over") == b"\x88\x06\x0f\xad" + b"over"


def test_send_wire_writes_the_frame_as_given():
    sock, transport, _ = open_socket()
    wire = encode_frame(OP_BINARY, b"snapshot")
    assert sock.send_wire(wire) is True
    assert sock.send_wire(wire, droppable=True) is True
    assert transport.written == wire + wire


def test_send_message_frames_text_and_binary():
    sock, transport, _ = open_socket()
    assert sock.send_message(text="hé") is True
    assert sock.send_message(data=b"\x00\xff") is True
    assert sock.send_message() is True
    assert transport.frames() == [
        (True, OP_TEXT, "hé".encode()),
        (True, OP_BINARY, b"\x00\xff"),
        (True, OP_BINARY, b""),
    ]


def test_send_message_prefers_text_when_both_are_given():
    sock, transport, _ = open_socket()
    sock.send_message(text="t", data=b"d")
    assert transport.frames() == [(True, OP_TEXT, b"t")]


@pytest.mark.parametrize("buffered", [1, HIGH_WATER_BYTES])
def test_droppable_frames_are_written_up_to_the_high_water_mark(buffered):
    sock, transport, _ = open_socket()
    transport.buffered = buffered
    assert sock.send_wire(b"snap", droppable=True) is True
    assert transport.written == b"snap" and sock.skipped_frames == 0


@pytest.mark.parametrize("buffered", [HIGH_WATER_BYTES + 1, MAX_BUFFERED_BYTES])
def test_droppable_frames_are_skipped_above_the_high_water_mark(buffered):
    sock, transport, _ = open_socket()
    transport.buffered = buffered
    assert sock.send_wire(b"snap1", droppable=True) is False
    assert sock.send_wire(b"snap2", droppable=True) is False
    assert sock.skipped_frames == 2
    assert sock.send_wire(b"must", droppable=False) is True
    assert sock.send_message(text="reply") is True
    assert transport.written == b"must" + encode_frame(OP_TEXT, b"reply")
    assert sock.is_open and not transport.aborted
    transport.buffered = 0
    assert sock.send_wire(b"snap3", droppable=True) is True
    assert sock.skipped_frames == 2


@pytest.mark.parametrize("droppable", [False, True])
def test_above_max_buffered_bytes_the_transport_is_aborted(droppable):
    sock, transport, _ = open_socket()
    transport.buffered = MAX_BUFFERED_BYTES + 1
    assert sock.send_wire(b"frame", droppable=droppable) is False
    assert transport.aborted and transport.written == b""
    assert sock.state == CLOSED and sock.close_code == CLOSE_ABNORMAL and not sock.clean
    assert sock.skipped_frames == 0
    transport.buffered = 0
    assert sock.send_wire(b"frame") is False


def test_no_pong_is_queued_for_a_client_that_is_not_reading():
    sock, transport, _ = open_socket()
    transport.buffered = HIGH_WATER_BYTES + 1
    sock.feed(frame(OP_PING, b"p"))
    assert transport.written == b"" and sock.is_open
    transport.buffered = 0  # it caught up: pings are answered again
    sock.feed(frame(OP_PING, b"q"))
    assert transport.frames() == [(True, OP_PONG, b"q")]


# --- keepalive ------------------------------------------------------------------------------------------------------


def test_no_ping_before_the_interval(clock):
    sock, transport, _ = open_socket(ping_interval=20, ping_timeout=30)
    clock.now += 20  # not more than the interval yet
    sock.check_keepalive()
    assert transport.written == b""


def test_ping_after_the_interval_of_silence_then_drop_without_pong(clock):
    sock, transport, _ = open_socket(ping_interval=20, ping_timeout=30)
    clock.now += 20.5
    sock.check_keepalive()
    assert transport.frames() == [(True, OP_PING, b"")]
    assert sock.ping_sent_at == clock.now
    clock.now += 10
    sock.check_keepalive()  # waiting for the pong: no second ping
    assert len(transport.frames()) == 1 and not transport.aborted
    clock.now += 20.5  # 30.5 s after the ping
    sock.check_keepalive()
    assert transport.aborted and sock.state == CLOSED
    assert sock.close_code == CLOSE_ABNORMAL and not sock.clean


def test_pong_clears_the_pending_ping(clock):
    sock, transport, _ = open_socket(ping_interval=20, ping_timeout=30)
    clock.now += 21
    sock.check_keepalive()
    clock.now += 1
    sock.feed(frame(OP_PONG, b""))
    assert sock.ping_sent_at is None
    clock.now += 40  # past the timeout of the answered ping
    sock.check_keepalive()
    assert not transport.aborted and sock.is_open
    assert [op for _, op, _ in transport.frames()] == [OP_PING, OP_PING]  # a fresh ping for the new silence


def test_received_frames_reset_the_silence_clock(clock):
    sock, transport, _ = open_socket(ping_interval=20, ping_timeout=30)
    clock.now += 15
    sock.feed(frame(OP_TEXT, b"input"))
    clock.now += 10  # 25 s after opening, 10 s after the last frame
    sock.check_keepalive()
    assert transport.written == b""
    clock.now += 11
    sock.check_keepalive()
    assert transport.frames() == [(True, OP_PING, b"")]


def test_partial_frame_bytes_also_reset_the_silence_clock(clock):
    sock, transport, _ = open_socket(ping_interval=20, ping_timeout=30)
    clock.now += 15
    sock.feed(frame(OP_TEXT, b"input")[:3])
    clock.now += 10
    sock.check_keepalive()
    assert transport.written == b""


def test_opened_starts_the_silence_clock(clock):
    transport = FakeTransport()
    sock = DirectSocket(transport, ping_interval=20, ping_timeout=30)
    sock.attach(FakeSink(), max_message_bytes=100)
    clock.now += 100  # a slow handshake
    sock.opened()
    clock.now += 10
    sock.check_keepalive()
    assert transport.written == b""


def test_keepalive_does_nothing_unless_open(clock):
    transport = FakeTransport()
    sock = DirectSocket(transport, ping_interval=1, ping_timeout=1)
    clock.now += 100
    sock.check_keepalive()  # still connecting
    assert transport.written == b""
    sock.attach(FakeSink(), max_message_bytes=100)
    sock.opened()
    sock.feed(close_frame(1000))
    written = bytes(transport.written)
    clock.now += 100
    sock.check_keepalive()
    assert transport.written == written and not transport.aborted


async def test_keepalive_with_real_time_and_tiny_intervals():
    sock, transport, _ = open_socket(ping_interval=0.01, ping_timeout=0.01)
    await asyncio.sleep(0.03)
    sock.check_keepalive()
    assert transport.frames() == [(True, OP_PING, b"")]
    await asyncio.sleep(0.03)
    sock.check_keepalive()
    assert transport.aborted and sock.close_code == CLOSE_ABNORMAL


# --- unmask and close codes -----------------------------------------------------------------------------------------


# Both: the one frames are read with (websockets' C helper) and the Python fallback.
UNMASKS = [pytest.param(unmask, id="used"), pytest.param(python_unmask, id="python")]


def test_frames_are_unmasked_in_c():
    # websockets is a dependency: when its compiled helper is gone or moved, this says so rather than the server
    # quietly spending twice the CPU on every input.
    import types

    import websockets.speedups

    assert unmask is websockets.speedups.apply_mask
    assert isinstance(unmask, types.BuiltinFunctionType), f"websockets.speedups.apply_mask is not C code: {unmask!r}"


@pytest.mark.parametrize("unmask", UNMASKS)
def test_unmask_matches_naive_xor_for_random_masks(unmask):
    rng = random.Random(6455)
    for n in range(71):
        for _ in range(8):
            mask, payload = rng.randbytes(4), rng.randbytes(n)
            assert unmask(payload, mask) == xor(payload, mask), (n, mask, payload)
            assert unmask(unmask(payload, mask), mask) == payload


@pytest.mark.parametrize("unmask", UNMASKS)
@pytest.mark.parametrize("mask", [ZERO_MASK, MASK, b"\xff\xff\xff\xff", b"\x00\x00\x00\x01", b"\x80\x00\x00\x00"])
def test_unmask_edge_masks(mask, unmask):
    for n in range(71):
        payload = bytes((i * 37) % 256 for i in range(n))
        assert unmask(payload, mask) == xor(payload, mask)


@pytest.mark.parametrize("unmask", UNMASKS)
def test_unmask_keeps_leading_and_trailing_zero_bytes(unmask):
    # The int round trip must not lose bytes that come out as zero.
    payload = xor(b"\x00\x00abc\x00\x00", MASK)
    assert unmask(payload, MASK) == b"\x00\x00abc\x00\x00"


@pytest.mark.parametrize(
    "code, valid",
    [
        (0, False),
        (999, False),
        (1000, True),
        (1001, True),
        (1002, True),
        (1003, True),
        (1004, False),
        (1005, False),
        (1006, False),
        (1007, True),
        (1008, True),
        (1009, True),
        (1010, True),
        (1011, True),
        (1012, True),
        (1013, True),
        (1014, True),
        (1015, False),
        (1016, False),
        (2000, False),
        (2999, False),
        (3000, True),
        (3999, True),
        (4000, True),
        (4999, True),
        (5000, False),
        (65535, False),
    ],
)
def test_valid_close_code_boundaries(code, valid):
    assert valid_close_code(code) is valid


# --- bounds on what one socket can make the process do (SocketLimits) ------------------------------------------------


def open_limited(**limits):
    sock, transport, sink = open_socket(max_message_bytes=4096, too_big_code=4009)
    sock.attach(sink, max_message_bytes=4096, too_big_code=4009, rate_limited_code=4008, limits=SocketLimits(**limits))
    return sock, transport, sink


def test_a_message_of_as_many_fragments_as_allowed_is_delivered():
    sock, _, sink = open_limited(max_fragments=4)
    sock.feed(frame(OP_TEXT, b"a", fin=False) + frame(OP_CONTINUATION, b"b", fin=False)
              + frame(OP_CONTINUATION, b"c", fin=False) + frame(OP_CONTINUATION, b"d"))
    assert sink.messages == [("abcd", None)] and sock.is_open


def test_empty_continuation_frames_past_the_fragment_limit_close_with_the_too_big_code():
    sock, transport, sink = open_limited(max_fragments=64)
    sock.feed(frame(OP_TEXT, b"{", fin=False) + frame(OP_CONTINUATION, b"", fin=False) * 100_000)
    assert_failed(sock, transport, sink, 4009)
    assert "at most 64 frames" in transport.close_frames()[-1][1]
    assert len(sock.fragments) <= 1  # nothing piled up: empty fragments add no bytes and are not kept


def test_fragments_fed_one_read_at_a_time_are_counted_across_reads():
    sock, transport, sink = open_limited(max_fragments=8)
    sock.feed(frame(OP_TEXT, b"", fin=False))
    for _ in range(7):
        sock.feed(frame(OP_CONTINUATION, b"", fin=False))
    assert sock.is_open
    sock.feed(frame(OP_CONTINUATION, b"", fin=False))
    assert_failed(sock, transport, sink, 4009)


def test_the_fragment_count_starts_again_with_each_message():
    sock, _, sink = open_limited(max_fragments=2)
    for _ in range(5):
        sock.feed(frame(OP_TEXT, b"x", fin=False) + frame(OP_CONTINUATION, b"y"))
    assert sink.messages == [("xy", None)] * 5 and sock.is_open


def test_frames_over_the_rate_close_with_the_rate_limited_code(clock):
    sock, transport, sink = open_limited(max_frames=100, frame_window=10)
    sock.feed(frame(OP_PONG, b"") * 100)
    assert sock.is_open
    sock.feed(frame(OP_PONG, b""))
    assert_failed(sock, transport, sink, 4008)
    assert "at most 100 frames per 10 s" in transport.close_frames()[-1][1]


def test_a_flood_in_one_read_is_cut_off_at_the_limit_without_parsing_the_rest(clock):
    sock, transport, sink = open_limited(max_frames=50, frame_window=10)
    sock.feed(b"".join(frame(OP_TEXT, str(i).encode()) for i in range(10_000)))
    assert_failed(sock, transport, sink, 4008, delivered=[(str(i), None) for i in range(50)])


def test_the_frame_rate_is_counted_per_window(clock):
    sock, _, sink = open_limited(max_frames=100, frame_window=10)
    for _ in range(5):  # 100 frames every 10.5 s, for ever: allowed
        sock.feed(b"".join(frame(OP_TEXT, b"i") for _ in range(100)))
        clock.now += 10.5
    assert sock.is_open and len(sink.messages) == 500


def test_single_frame_fast_path_counts_towards_the_frame_rate(clock):
    sock, transport, sink = open_limited(max_frames=3, frame_window=10)
    for _ in range(4):
        sock.feed(frame(OP_TEXT, b"input"))
    assert_failed(sock, transport, sink, 4008, delivered=[("input", None)] * 3)


def test_a_match_client_at_60_messages_a_second_is_within_the_default_frame_rate(clock):
    sock, _, sink = open_limited()
    for _ in range(60 * 30):  # 30 s at 60 messages a second, plus a keepalive pong now and then
        sock.feed(frame(OP_TEXT, b'{"type":"input"}'))
        clock.now += 1 / 60
    sock.feed(frame(OP_PONG, b""))
    assert sock.is_open and len(sink.messages) == 1800


def test_the_pings_of_one_read_get_pongs_for_the_most_recent_only():
    sock, transport, _ = open_limited(pongs_per_read=3)
    sock.feed(b"".join(frame(OP_PING, str(i).encode()) for i in range(1000)))
    assert transport.frames() == [(True, OP_PONG, b"997"), (True, OP_PONG, b"998"), (True, OP_PONG, b"999")]


def test_ten_pings_in_one_read_are_all_answered_by_default():
    sock, transport, _ = open_limited()
    sock.feed(b"".join(frame(OP_PING, b"payload-%d" % i) for i in range(10)))
    assert transport.frames() == [(True, OP_PONG, b"payload-%d" % i) for i in range(10)]


def test_a_client_that_keeps_pinging_without_reading_is_dropped():
    sock, transport, _ = open_limited(max_unanswered_pings=5)
    transport.buffered = HIGH_WATER_BYTES + 1
    for _ in range(5):
        sock.feed(frame(OP_PING, b"p"))
    assert sock.is_open and transport.written == b""
    sock.feed(frame(OP_PING, b"p"))
    assert transport.aborted and sock.state == CLOSED and sock.close_code == CLOSE_ABNORMAL


def test_a_ping_answered_resets_the_unanswered_count():
    sock, transport, _ = open_limited(max_unanswered_pings=2)
    for _ in range(5):
        transport.buffered = HIGH_WATER_BYTES + 1
        sock.feed(frame(OP_PING, b"p") * 2)
        transport.buffered = 0
        sock.feed(frame(OP_PING, b"q"))
    assert sock.is_open and not transport.aborted


def test_limits_come_from_the_settings(settings):
    settings.WS_MAX_FRAGMENTS, settings.WS_MAX_FRAMES, settings.WS_FRAME_WINDOW_SECONDS = 7, 70, 3
    settings.WS_PONGS_PER_READ, settings.WS_MAX_UNANSWERED_PINGS = 2, 9
    assert SocketLimits.from_settings() == SocketLimits(
        max_fragments=7, max_frames=70, frame_window=3.0, pongs_per_read=2, max_unanswered_pings=9
    )


def test_a_frame_that_trickles_in_over_many_reads_counts_once(clock):
    # Autobahn 9.5/9.6: one large message written in 64-byte chops. Each partial read parses the same header again.
    sock, _, sink = open_limited(max_frames=3, frame_window=10)
    data = frame(OP_BINARY, bytes(4000))
    for start in range(0, len(data), 64):
        sock.feed(data[start : start + 64])
    assert sock.is_open and sink.messages == [(None, bytes(4000))]


class EchoSink:
    """Answers each message with itself, as Autobahn's cases expect of a server."""

    def __init__(self):
        self.socket = None

    def on_message(self, text, data):
        self.socket.send_message(text=text, data=data)


def test_a_ping_between_fragments_is_answered_before_the_reply_to_the_message():
    # Autobahn 5.6-5.8: the pong for a ping that came before a message's last frame precedes the message's reply.
    transport, sink = FakeTransport(), EchoSink()
    sock = sink.socket = DirectSocket(transport)
    sock.attach(sink, max_message_bytes=4096)
    assert sock.opened()
    sock.feed(frame(OP_TEXT, b"frag", fin=False) + frame(OP_PING, b"p") + frame(OP_CONTINUATION, b"ment"))
    assert transport.frames() == [(True, OP_PONG, b"p"), (True, OP_TEXT, b"fragment")]


def test_a_client_closed_for_breaking_a_rule_is_read_and_dropped_for_a_while_then_cut_off():
    # Closing with its flood unread would make the kernel reset the connection, which can destroy our close frame.
    sock, transport, sink = open_limited(max_fragments=4)
    sock.feed(frame(OP_TEXT, b"{", fin=False) + frame(OP_CONTINUATION, b"", fin=False) * 10)
    assert_failed(sock, transport, sink, 4009)
    assert transport.eof and not transport.aborted  # our side ended after the close frame; reading goes on
    chunk = frame(OP_CONTINUATION, bytes(100), fin=False)
    for _ in range(directws.LINGER_BYTES // len(chunk)):
        sock.feed(chunk)
    assert not transport.aborted and sink.messages == []
    sock.feed(chunk)
    assert transport.aborted


async def test_lingering_ends_after_linger_seconds(monkeypatch):
    monkeypatch.setattr(directws, "LINGER_SECONDS", 0.05)
    sock, transport, sink = open_limited(max_fragments=4)
    sock.feed(frame(OP_TEXT, b"{", fin=False) + frame(OP_CONTINUATION, b"", fin=False) * 10)
    assert transport.eof and not transport.aborted
    await asyncio.sleep(0.1)
    assert transport.aborted


async def test_a_client_that_does_not_read_our_close_is_cut_off(monkeypatch):
    # The client closed; our answer is queued behind what it never read: the connection must not stay for ever.
    monkeypatch.setattr(directws, "CLOSE_TIMEOUT_SECONDS", 0.05)
    sock, transport, _ = open_socket()
    sock.feed(close_frame(1000))
    assert transport.closed and not transport.aborted
    await asyncio.sleep(0.1)
    assert transport.aborted


async def test_no_abort_after_the_connection_is_gone(monkeypatch):
    monkeypatch.setattr(directws, "LINGER_SECONDS", 0.05)
    sock, transport, sink = open_limited(max_fragments=4)
    sock.feed(frame(OP_TEXT, b"{", fin=False) + frame(OP_CONTINUATION, b"", fin=False) * 10)
    sock.connection_lost()
    await asyncio.sleep(0.1)
    assert not transport.aborted
