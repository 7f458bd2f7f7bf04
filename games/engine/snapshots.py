"""One match's snapshot stream for this process's protocol-v2 sockets: per tick one shared delta and one shared
keyframe, each built and encoded at most once per format, whatever the number of sockets.

Every snapshot published for the match (by its tick loop here, or received from its owner as a relay) advances
the stream by one number `n`. A socket that was sent number n-1 gets the delta (its `base` is n-1); any other
socket (it just joined, it skipped a snapshot because it reads slowly, it asked for a keyframe) gets the keyframe,
the full snapshot with its `n`. docs/protocol.md ("Version 2: deltas") is the client's side of this.
"""

from __future__ import annotations

from typing import Any

from games.engine import delta
from games.engine.protocol import Frame

# Fields of a snapshot message that are not part of the state a delta patches: they are per message.
MESSAGE_ONLY = ("type", "events", "n", "keys")


def snapshot_body(message: dict[str, Any]) -> dict[str, Any]:
    """What deltas patch: the snapshot without its per-message fields (the client keeps the same). A copy less those
    keys, in the message's order: a third of what a comprehension over every key costs, every tick of every match."""
    body = message.copy()
    for key in MESSAGE_ONLY:
        if key in body:
            del body[key]
    return body


def delta_message(n: int, patch: Any, events: list | None) -> list[Any]:
    """The compact form every tick's delta takes: [n, patch] or [n, patch, events], against stream number n - 1. An
    array, not an object with a "type": it goes to every player every tick, and the envelope was a fifth of it."""
    return [n, patch, events] if events else [n, patch]


class SnapshotStream:
    """The latest snapshot of one match as this process sends it, and the delta from the one before.

    JSON and msgpack sockets get different frames: msgpack deltas name object keys by number (delta.py, "Key numbers")
    from the stream's key table, which its msgpack keyframes carry as `keys`. The table is the keys of the stream's
    first snapshot and never changes, so any keyframe of the stream fits every later delta."""

    __slots__ = ("n", "keys", "_key_numbers", "_message", "_body", "_prev_body", "_droppable", "_frames", "_delta_n")

    def __init__(self) -> None:
        self.n = 0
        self.keys: list[str] | None = None
        self._key_numbers: dict[str, int] = {}
        self._message: dict[str, Any] | None = None
        self._body: dict[str, Any] | None = None
        self._prev_body: dict[str, Any] | None = None
        self._droppable = False
        # This number's frames, built when a socket first needs one: [JSON keyframe, msgpack keyframe, JSON delta,
        # msgpack delta] (a list indexed by 2 * delta + msgpack: frame_for runs for every socket of every tick).
        self._frames: list[Frame | None] = [None, None, None, None]
        self._delta_n: int | None = None  # the number a socket must have been sent for this one's delta to fit

    def advance(self, frame: Frame) -> None:
        """The match's next snapshot (the v1 frame sent to every other socket). Nothing is diffed or encoded until a
        socket needs it."""
        self._prev_body = self.body() if self._message is not None else None
        self._message = frame.message
        self._body = None
        self._droppable = frame.droppable
        self._frames = [None, None, None, None]
        self._delta_n = self.n if self._prev_body is not None else None
        self.n += 1
        if self.keys is None:
            self.keys = delta.key_table(self.body())
            self._key_numbers = {key: number for number, key in enumerate(self.keys)}

    def sent(self) -> None:
        """Every socket has had this number: the previous snapshot is not needed any more (the next delta is against
        this one). Let go of it now, while the diff has just read it: a tick later its objects are out of the cache,
        and freeing them then cost more than the diff itself with 250 matches (bench.server_path --matches). The
        tick's frames go too, for the same reason (a socket's own write queue keeps what it still needs)."""
        self._prev_body = None
        self._frames = [None, None, None, None]

    def frame_for(self, last_n: int | None, binary: bool = False) -> Frame:
        """The frame for a socket that was last sent number `last_n` of this stream (None: nothing yet)."""
        as_delta = last_n == self._delta_n and last_n is not None
        slot = 2 * as_delta + binary
        frame = self._frames[slot]
        if frame is None:
            if as_delta and self._prev_body is None:
                return self.frame_for(None, binary)  # asked after sent() let go of the base: a keyframe fits too
            frame = self._frames[slot] = self._delta(binary) if as_delta else self._keyframe(binary)
        return frame

    def _keyframe(self, binary: bool) -> Frame:
        message = {**self._message, "n": self.n}
        if binary:
            message["keys"] = self.keys
        return Frame(message, droppable=self._droppable, stream_n=self.n)

    def _delta(self, binary: bool) -> Frame:
        patch = delta.diff(self._prev_body, self.body(), self._key_numbers if binary else delta.NO_KEYS)
        events = self._message.get("events")
        return Frame(
            delta_message(self.n, {} if patch is delta.UNCHANGED else patch, events),
            droppable=self._droppable,
            stream_n=self.n,
        )

    def body(self) -> dict[str, Any]:
        if self._body is None:
            self._body = snapshot_body(self._message)
        return self._body


class SnapshotStreams:
    """This process's streams, one per match with sockets here, created when a v2 socket first needs one."""

    def __init__(self) -> None:
        self._streams: dict[int, SnapshotStream] = {}

    def advance(self, mid: int, frame: Frame, wanted: bool) -> SnapshotStream | None:
        """The match's stream moved on to `frame` (a snapshot); None while no socket of the match speaks v2
        (`wanted`: one does, or did since the match last had no sockets here)."""
        if frame.message.get("type") != "snapshot":
            return None
        stream = self._streams.get(mid)
        if stream is None:
            if not wanted:
                return None
            stream = self._streams[mid] = SnapshotStream()
        stream.advance(frame)
        return stream

    def discard(self, mid: int) -> None:
        """The match has no sockets here any more."""
        self._streams.pop(mid, None)
