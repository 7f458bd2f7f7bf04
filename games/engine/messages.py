"""Messages between the processes of one deployment (the relay protocol): typed, versioned, checked at the boundary.

Every publish on the "relay" channel layer (host.py) carries one envelope: this protocol's VERSION and one or more
messages, encoded by msgspec as MessagePack arrays (["in", 12, 0, 345, {...}] rather than maps with key names: a
relayed input is some 20 bytes). Decoding checks every message against its schema below. A payload that does not
match, or that comes from a process speaking another version (a rolling upgrade that changed this file), is refused
here with RelayMessageError and never reaches the engine.

Bump VERSION with any change that an older process could not decode (a new message kind, a new field without a
default, a changed type). docs/architecture.md ("Between processes") describes what each message is for.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

VERSION = 2
# The channel-layer message that carries an envelope (channels-redis wants a dict with a "type").
LAYER_TYPE = "gs.relay"

MatchId = Annotated[int, msgspec.Meta(ge=1)]
Seat = Annotated[int, msgspec.Meta(ge=0, le=255)]
Seq = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
Proc = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class _Message(msgspec.Struct, array_like=True, tag_field="kind"):
    match_id: MatchId


# --- relay -> owner ----------------------------------------------------------------------------------------------


class Input(_Message, tag="in"):
    """A player's input, already checked by the relay (the owner parses it again: it trusts no process blindly)."""

    seat: Seat
    seq: Seq
    input: Any


class SeatChange(_Message, tag="seat"):
    """A seat's socket connected to (or its last one left) the relay's process."""

    seat: Seat
    connected: bool
    proc: Proc


class Leave(_Message, tag="leave"):
    """The player gave their seat up on the relay's process."""

    seat: Seat


class Here(_Message, tag="here"):
    """A relay's heartbeat (every maintenance round): it listens for snapshots, these seats are connected to it, and
    these were given up on it (repeated until the match is no longer relayed: a lost Leave must not leave a ghost)."""

    proc: Proc
    seats: list[Seat]
    left: list[Seat] = []


# --- owner (or anyone ending a match) -> relays --------------------------------------------------------------------


class Snapshot(_Message, tag="snap"):
    """One tick's snapshot for the relay's sockets (the same message the owner's own sockets got)."""

    message: dict[str, Any]


class End(_Message, tag="end"):
    """The match ended: match_end for every socket, which then closes with 4013."""

    message: dict[str, Any]


class Stop(_Message, tag="stop"):
    """Ended from outside its tick loop (an admin's cancel, a deadline sweep: control.py); to the owner and relays."""

    message: dict[str, Any]


class Kick(_Message, tag="kick"):
    """A seat's newer socket is on process `keep`: every other process closes its socket for that seat (4011)."""

    seat: Seat
    keep: Proc


class Moved(_Message, tag="moved"):
    """The owner handed the match over (SIGTERM): relays try to take it now rather than at the lease's expiry."""


# --- the live-match console (control.py) -> owner and relays -------------------------------------------------------

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
NoticeText = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class Finish(_Message, tag="finish"):
    """An operator ends the match with a result: its owner ends play at its next tick and records the result as the
    rules rank it then, with this reason (relays ignore it: the owner's End reaches them)."""

    reason: Reason


class Remove(_Message, tag="remove"):
    """An operator kicks a seat: its owner removes the seat at its next tick; every process closes that seat's sockets
    (4014)."""

    seat: Seat


class Notice(_Message, tag="notice"):
    """An operator's message: every process sends it to its sockets of the match."""

    text: NoticeText


RelayMessage = Input | SeatChange | Leave | Here | Snapshot | End | Stop | Kick | Moved | Finish | Remove | Notice


class Envelope(msgspec.Struct, array_like=True):
    version: int
    messages: list[RelayMessage]


class RelayMessageError(ValueError):
    """A payload on the relay layer that this process cannot accept (malformed, or another protocol version)."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)


def to_layer(*messages: RelayMessage) -> dict[str, Any]:
    """The channel-layer message carrying these messages, in order."""
    return {"type": LAYER_TYPE, "b": _encoder.encode(Envelope(VERSION, list(messages)))}


def from_layer(payload: dict[str, Any]) -> list[RelayMessage]:
    """The messages of a channel-layer message; RelayMessageError when it is not one this version accepts."""
    if not isinstance(payload, dict) or payload.get("type") != LAYER_TYPE or not isinstance(payload.get("b"), bytes):
        raise RelayMessageError(f"not a relay envelope: {str(payload)[:80]}")
    try:
        envelope = _decoder.decode(payload["b"])
    except msgspec.ValidationError as exc:
        raise RelayMessageError(_explain(payload["b"], exc)) from None
    except msgspec.DecodeError as exc:
        raise RelayMessageError(f"malformed relay envelope: {exc}") from None
    if envelope.version != VERSION:
        raise RelayMessageError(_version_mismatch(envelope.version))
    return envelope.messages


def _explain(body: bytes, exc: Exception) -> str:
    try:
        version = msgspec.msgpack.decode(body)[0]
    except Exception:
        version = None
    if isinstance(version, int) and version != VERSION:
        return _version_mismatch(version)
    return f"invalid relay message: {exc}"


def _version_mismatch(version: Any) -> str:
    return f"relay envelope of version {version!r} from another process; this one speaks {VERSION}"
