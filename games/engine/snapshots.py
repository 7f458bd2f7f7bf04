"""One match's snapshot stream for this process's protocol-v2 sockets: per tick one shared delta and one shared
keyframe, each built and encoded at most once per format, whatever the number of sockets.

Every snapshot published for the match (by its tick loop here, or received from its owner as a relay) advances
the stream by one number `n`. A socket that was sent number n-1 gets the delta (its `base` is n-1); any other
socket (it just joined, it skipped a snapshot because it reads slowly, it asked for a keyframe) gets the keyframe,
the full snapshot with its `n`. docs/protocol.md ("Version 2: deltas") is the client's side of this.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from games.engine import delta
from games.engine.protocol import Frame

# Fields of a snapshot message that are not part of the state a delta patches: they are per message.
MESSAGE_ONLY = frozenset({"type", "events", "n"})


def snapshot_body(message: dict[str, Any]) -> dict[str, Any]:
    """What deltas patch: the snapshot without its per-message fields (the client keeps the same)."""
    return {key: value for key, value in message.items() if key not in MESSAGE_ONLY}


def delta_message(n: int, patch: Any, events: list | None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "delta", "n": n, "base": n - 1, "patch": patch}
    if events:
        message["events"] = events
    return message


class SnapshotStream:
    """The latest snapshot of one match as this process sends it, and the delta from the one before."""

    __slots__ = ("n", "_message", "_body", "_prev_body", "_droppable", "_keyframe", "_delta")

    def __init__(self) -> None:
        self.n = 0
        self._message: dict[str, Any] | None = None
        self._body: dict[str, Any] | None = None
        self._prev_body: dict[str, Any] | None = None
        self._droppable = False
        self._keyframe: Frame | None = None
        self._delta: Frame | None = None

    def advance(self, frame: Frame) -> None:
        """The match's next snapshot (the v1 frame sent to every other socket). Nothing is diffed or encoded until a
        socket needs it."""
        self._prev_body = self.body() if self._message is not None else None
        self._message = frame.message
        self._body = None
        self._droppable = frame.droppable
        self._keyframe = self._delta = None
        self.n += 1

    def frame_for(self, last_n: int | None) -> Frame:
        """The frame for a socket that was last sent number `last_n` of this stream (None: nothing yet)."""
        if last_n is not None and last_n == self.n - 1 and self._prev_body is not None:
            return self.delta()
        return self.keyframe()

    def keyframe(self) -> Frame:
        if self._keyframe is None:
            self._keyframe = Frame({**self._message, "n": self.n}, droppable=self._droppable, stream_n=self.n)
        return self._keyframe

    def delta(self) -> Frame:
        if self._delta is None:
            patch = delta.diff(self._prev_body, self.body())
            events = self._message.get("events")
            self._delta = Frame(
                delta_message(self.n, {} if patch is delta.UNCHANGED else patch, events),
                droppable=self._droppable,
                stream_n=self.n,
            )
        return self._delta

    def body(self) -> dict[str, Any]:
        if self._body is None:
            self._body = snapshot_body(self._message)
        return self._body


class SnapshotStreams:
    """This process's streams, one per match with sockets here, created when a v2 socket first needs one."""

    def __init__(self) -> None:
        self._streams: dict[int, SnapshotStream] = {}

    def advance(self, mid: int, frame: Frame, conns: Iterable[Any]) -> SnapshotStream | None:
        """The match's stream moved on to `frame` (a snapshot); None when no socket of the match speaks v2."""
        if frame.message.get("type") != "snapshot":
            return None
        stream = self._streams.get(mid)
        if stream is None:
            if not any(conn.out.deltas for conn in conns):
                return None
            stream = self._streams[mid] = SnapshotStream()
        stream.advance(frame)
        return stream

    def discard(self, mid: int) -> None:
        """The match has no sockets here any more."""
        self._streams.pop(mid, None)
