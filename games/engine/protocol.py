"""Wire protocol of ws/matches/<id>/ (versions 1 and 2): subprotocols, limits, decoding client messages, encoding
server ones. Version 2 sends snapshots as deltas (snapshots.py builds them, delta.py is the patch format).

docs/protocol.md is the reference for clients; keep the two in step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import msgpack
import orjson

from games.engine import delta


class Subprotocol(NamedTuple):
    name: str  # "" when the client offered none (v1 JSON, and no subprotocol in the handshake's answer)
    version: int
    binary: bool  # msgpack in binary frames; else JSON in text frames


SUBPROTOCOLS = {
    "gs.v1.json": Subprotocol("gs.v1.json", 1, False),
    "gs.v1.msgpack": Subprotocol("gs.v1.msgpack", 1, True),
    "gs.v2.json": Subprotocol("gs.v2.json", 2, False),
    "gs.v2.msgpack": Subprotocol("gs.v2.msgpack", 2, True),
}
NO_OFFER = Subprotocol("", 1, False)
# The first version whose snapshots are deltas (type "delta" against the socket's previous snapshot).
DELTA_VERSION = 2

MAX_MESSAGE_BYTES = 4096
MAX_SEQ = 2**31 - 1
# Per connection: a steady 3x the fastest tick rate, with a burst allowance for a client catching up.
RATE_PER_SECOND = 60.0
RATE_BURST = 120.0
# Messages refused for the rate within one window before the connection is closed: a flood, not the backlog a
# stalled server reads all at once (that is at most a few seconds of a client's normal 20-30 messages a second).
MAX_RATE_VIOLATIONS = 200
RATE_VIOLATION_WINDOW_SECONDS = 10.0
MAX_BAD_MESSAGES = 20


class ClientMessageError(Exception):
    """A message we answer with {"type": "error", "error": code, "message": text}; the connection stays open."""

    def __init__(self, code: str, message: str, seq: int | None = None):
        super().__init__(message)
        self.code = code
        self.seq = seq


def choose_subprotocol(offered: Iterable[str]) -> Subprotocol | None:
    """The first offer we speak, in the client's order of preference (a client offering gs.v2.json then gs.v1.json
    gets v2 from this server and v1 from an older one). No offer means v1 JSON; an offer of only unknown ones is
    refused (None) and the caller closes with 4002."""
    offered = list(offered)
    for name in offered:
        if name in SUBPROTOCOLS:
            return SUBPROTOCOLS[name]
    return None if offered else NO_OFFER


def decode(text: str | None, data: bytes | None, *, compact: bool = False) -> dict[str, Any] | list[Any]:
    """A client message: an object with a "type", or with `compact` (protocol v2) also an array, the compact form of
    an input (`compact_input`)."""
    try:
        if text is not None:
            message = orjson.loads(text)
        else:
            # msgpack's defaults (raw=False: strings as str; strict_map_key=True: only str and bytes keys), not passed
            # as keywords: for every input of every player they cost a quarter of the call (tests check the defaults).
            message = msgpack.unpackb(data)
    except (ValueError, RecursionError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError):
        raise ClientMessageError("malformed", "The message is not valid JSON (text frames) or msgpack (binary).") from None
    if compact and type(message) is list:
        return message
    if not isinstance(message, dict):
        raise ClientMessageError("malformed", "A message must be an object with a \"type\".")
    if not isinstance(message.get("type"), str):
        raise ClientMessageError("missing_type", "A message needs a string \"type\".")
    return message


def read_seq(message: dict[str, Any]) -> int:
    return _check_seq(message.get("seq"))


def compact_input(message: list[Any], fields: tuple[str, ...]) -> tuple[int, dict[str, Any]]:
    """(seq, input) of a compact input, `[seq, value, ...]` with the values in the order of the game's `input_fields`
    (the welcome message lists them). Trailing fields may be left out: the game reads them as absent. Sent every tick
    by every player, it is a third the size of {"type": "input", "seq": ..., "input": {...}}."""
    if not message:
        raise ClientMessageError("malformed", "A compact input is [seq, value, ...].")
    seq = message[0]
    if type(seq) is not int or not 0 < seq <= MAX_SEQ:  # every player, every tick: the checks' call only when needed
        seq = _check_seq(seq)
    if len(message) > len(fields) + 1 or not fields:
        if not fields:
            raise ClientMessageError("bad_input", "This game takes inputs as objects only.", seq)
        raise ClientMessageError("bad_input", f"A compact input has at most {len(fields)} values after seq.", seq)
    # zip stops at the shorter: trailing fields may be absent. (No strict=False: a keyword makes the call 50% dearer.)
    return seq, dict(zip(fields, message[1:]))  # noqa: B905


def compact_reader(fields: tuple[str, ...]) -> Callable[[list[Any]], tuple[int, dict[str, Any]]]:
    """compact_input for one game's `fields`, as one function made once per game: what a socket calls for every input.

    Its common case, every field given after a valid seq, is read by a dict display (`{"dx": m[1], ...}`): it costs a
    third of dict(zip()) (4.8k instructions against 1.5k for arena's four fields, valgrind), and together with
    compact_input's checks in the same function, a Python call less per input. Anything else goes to compact_input."""
    reader = _READERS.get(fields)
    if reader is None:
        if len(_READERS) >= _READERS_MAX:
            _READERS.clear()
        reader = _READERS[fields] = _compact_reader(fields)
    return reader


# By a game's input_fields (settings, never client data): bounded by the number of games.
_READERS: dict[tuple[str, ...], Callable[[list[Any]], tuple[int, dict[str, Any]]]] = {}
_READERS_MAX = 64


def _compact_reader(fields: tuple[str, ...]) -> Callable[[list[Any]], tuple[int, dict[str, Any]]]:
    if not fields or not all(type(name) is str and name.isidentifier() for name in fields):
        return lambda message: compact_input(message, fields)
    # The source is built from identifiers only (checked above), each written as a string literal by repr().
    display = ", ".join(f"{name!r}: m[{number}]" for number, name in enumerate(fields, 1))
    source = (
        "def read(m):\n"
        f"    if type(m) is list and len(m) == {len(fields) + 1}:\n"
        "        seq = m[0]\n"
        "        if type(seq) is int and 0 < seq <= MAX_SEQ:\n"
        f"            return seq, {{{display}}}\n"
        "    return compact_input(m, fields)\n"
    )
    names = {"MAX_SEQ": MAX_SEQ, "compact_input": compact_input, "fields": fields}
    exec(source, names)
    return names["read"]


def _check_seq(seq: Any) -> int:
    if isinstance(seq, bool) or not isinstance(seq, int):
        if isinstance(seq, float) and math.isfinite(seq) and seq.is_integer():
            seq = int(seq)
        else:
            raise ClientMessageError("bad_seq", "\"seq\" must be an integer.")
    if not 1 <= seq <= MAX_SEQ:
        raise ClientMessageError("bad_seq", f"\"seq\" must be between 1 and {MAX_SEQ}.")
    return seq


def encode_json(message: dict[str, Any]) -> bytes:
    """UTF-8 JSON. orjson: the standard library's encoder calls back into Python for every float (3.11), which made
    encoding a snapshot cost more than computing it."""
    return orjson.dumps(message)


# One packer each, made once: msgpack.packb makes a Packer per call, a third of the cost of packing a delta. Packers
# are not thread-safe; every frame is encoded on the event loop's thread.
_pack = msgpack.Packer(use_bin_type=True).pack
# Snapshots and deltas of protocol v2 carry floats as 32 bits (5 bytes in msgpack instead of 9): ~7 significant digits,
# far more than a drawn position needs, and most of a moving player's bytes. Everything else keeps 64 bits.
_pack_single_floats = msgpack.Packer(use_bin_type=True, use_single_float=True).pack


# Compiled, delta.pack writes the same bytes as msgpack's packer at about a third of the cost; it leaves a value it does
# not handle (NotPacked: an IntEnum, bytes, an int past 64 bits...) to msgpack's.
_fast_pack = delta.pack if delta.COMPILED else None


def encode_msgpack(message: dict[str, Any] | list[Any]) -> bytes:
    if _fast_pack is not None:
        try:
            return _fast_pack(message, False)
        except delta.NotPacked:
            pass
    return _pack(message)


def encode_msgpack_single_floats(message: dict[str, Any] | list[Any]) -> bytes:
    if _fast_pack is not None:
        try:
            return _fast_pack(message, True)
        except delta.NotPacked:
            pass
    return _pack_single_floats(message)


class Frame:
    """One server message, encoded at most once per format however many sockets it goes to.

    `droppable`: a newer message supersedes this one (a snapshot without events), so a socket whose client is not
    reading may skip it rather than queue it (gameserver/directws.py). `stream_n`: the number of a v2 snapshot or delta
    in its match's stream (snapshots.py); a socket that was sent it remembers it, so that the next delta fits; such
    frames go out with 32-bit floats in msgpack (encode_msgpack_single_floats)."""

    __slots__ = (
        "message", "droppable", "stream_n", "_json", "_binary", "_text_event", "_binary_event", "wires",
    )

    # droppable and stream_n may be passed by position: a class called with keywords makes a dict of them for __init__,
    # and a frame is made for every snapshot of every match (Frame(message, droppable, stream_n) is half the cost).
    def __init__(self, message: dict[str, Any] | list[Any] | None, droppable: bool = False, stream_n: int | None = None):
        self.message = message
        self.droppable = droppable
        self.stream_n = stream_n
        self._json: bytes | None = None
        self._binary: bytes | None = None
        self._text_event: dict[str, Any] | None = None
        self._binary_event: dict[str, Any] | None = None
        # framed() of each format, once built: [text, binary], indexed by `binary` (a socket sends wires[binary] when
        # it is there, without the call: every snapshot to every socket).
        self.wires: list[bytes | None] = [None, None]

    @classmethod
    def encoded(cls, data: bytes, droppable: bool, stream_n: int) -> Frame:
        """A stream frame written as msgpack already (snapshots.py: a delta that delta.shadow_delta wrote). It goes to
        msgpack sockets only: it has no message to encode as JSON."""
        frame = cls(None, droppable, stream_n)
        frame._binary = data
        return frame

    def json(self) -> bytes:
        if self._json is None:
            self._json = encode_json(self.message)
        return self._json

    def text(self) -> str:
        return self.json().decode()

    def binary(self) -> bytes:
        if self._binary is None:
            encode = encode_msgpack if self.stream_n is None else encode_msgpack_single_floats
            self._binary = encode(self.message)
        return self._binary

    def send_event(self, binary: bool) -> dict[str, Any]:
        """The ASGI websocket.send event, built once and shared by every socket (servers only read it)."""
        if binary:
            if self._binary_event is None:
                self._binary_event = {"type": "websocket.send", "bytes": self.binary()}
            return self._binary_event
        if self._text_event is None:
            self._text_event = {"type": "websocket.send", "text": self.text()}
        return self._text_event

    def framed(self, binary: bool, frame_it: Callable[[bool, bytes], bytes]) -> bytes:
        """The message as the transport frames it (`frame_it`: gameserver.directws.frame_message), built once and
        the same bytes for every socket. The transport is passed in: the protocol does not depend on it."""
        wire = self.wires[binary]
        if wire is None:
            wire = self.wires[binary] = frame_it(True, self.binary()) if binary else frame_it(False, self.json())
        return wire


def error_message(code: str, message: str, seq: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "error": code, "message": message}
    if seq is not None:
        body["seq"] = seq
    return body
