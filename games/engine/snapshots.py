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


# Key tables by their keys. A game's streams all start with the same keys, so they share one table and its
# {name: number} dict, which every delta reads for each changed key: one copy stays in the CPU's cache for all the
# process's matches instead of one per match. Bounded, for a game whose first snapshots' keys vary without end.
_KEY_TABLES: dict[tuple[str, ...], tuple[list[str], dict[str, int]]] = {}
KEY_TABLES_MAX = 64


def shared_key_table(body: dict[str, Any]) -> tuple[list[str], dict[str, int]]:
    """The key table of a stream starting with `body` (delta.key_table), and its {name: number} dict: shared, never
    changed."""
    keys = tuple(delta.key_table(body))
    table = _KEY_TABLES.get(keys)
    if table is None:
        if len(_KEY_TABLES) >= KEY_TABLES_MAX:
            _KEY_TABLES.clear()
        table = _KEY_TABLES[keys] = (list(keys), {key: number for number, key in enumerate(keys)})
    return table


def delta_message(n: int, patch: Any, events: list | None) -> list[Any]:
    """The compact form every tick's delta takes: [n, patch] or [n, patch, events], against stream number n - 1. An
    array, not an object with a "type": it goes to every player every tick, and the envelope was a fifth of it."""
    return [n, patch, events] if events else [n, patch]


class SnapshotStream:
    """The latest snapshot of one match as this process sends it, and the delta from the one before.

    JSON and msgpack sockets get different frames: msgpack deltas name object keys by number (delta.py, "Key numbers")
    from the stream's key table, which its msgpack keyframes carry as `keys`. The table is the keys of the stream's
    first snapshot and never changes, so any keyframe of the stream fits every later delta.

    Between ticks the stream holds no snapshot, only, per format, the last one's body as the diff keeps it
    (delta.Shadow): a copy in flat arrays, made while the snapshot was in the CPU's cache. The snapshot's own objects are
    freed at the end of its fan-out (sent()), while still in the cache too."""

    __slots__ = ("n", "keys", "_key_numbers", "_message", "_body", "_droppable", "_frames", "_shadows", "_kept")

    def __init__(self) -> None:
        self.n = 0
        self.keys: list[str] | None = None
        self._key_numbers: dict[str, int] = {}
        self._message: dict[str, Any] | None = None
        self._body: dict[str, Any] | None = None
        self._droppable = False
        # This number's frames, built when a socket first needs one: [JSON keyframe, msgpack keyframe, JSON delta,
        # msgpack delta] (a list indexed by 2 * delta + msgpack: frame_for runs for every socket of every tick).
        self._frames: list[Frame | None] = [None, None, None, None]
        # Per format (JSON, msgpack): the body of the number in `_kept`, kept for that format's next delta (its key
        # names differ); None while no socket of the format was sent the last number (none could take a delta).
        self._shadows: list[delta.Shadow | None] = [None, None]
        self._kept = [0, 0]

    def advance(self, frame: Frame) -> None:
        """The match's next snapshot (the v1 frame sent to every other socket). Nothing is diffed or encoded until a
        socket needs it."""
        self._message = frame.message
        self._body = None
        self._droppable = frame.droppable
        self._frames = [None, None, None, None]
        self.n += 1
        if self.keys is None:
            self.keys, self._key_numbers = shared_key_table(self.body())

    def sent(self) -> None:
        """Every socket has had this number. Each format whose sockets were sent it keeps its body for the next
        delta; then the snapshot is let go of, while its objects are still in the cache: a tick later, freeing them
        cost more than the diff with 250 matches (bench.server_path --matches). So are the frames (a socket's write
        queue keeps what it still needs). Nothing more is asked of this number after this."""
        frames = self._frames
        for binary in (0, 1):
            if frames[binary] is None and frames[2 + binary] is None:
                self._shadows[binary] = None  # no socket of this format has this number: the next delta fits none
            elif self._kept[binary] != self.n:  # (a delta already kept it)
                shadow = self._shadows[binary]
                if shadow is None:
                    shadow = self._shadows[binary] = delta.Shadow()
                delta.keep(shadow, self.body())
                self._kept[binary] = self.n
        self._frames = [None, None, None, None]
        self._message = self._body = None

    def frame_for(self, last_n: int | None, binary: bool = False) -> Frame:
        """The frame for a socket that was last sent number `last_n` of this stream (None: nothing yet)."""
        if last_n is not None and last_n == self.n - 1:
            frame = self._frames[2 + binary]
            if frame is not None:
                return frame
            if self._shadows[binary] is not None and self._kept[binary] == last_n:
                frame = self._frames[2 + binary] = self._delta(binary)
                return frame
        frame = self._frames[binary]
        if frame is None:
            frame = self._frames[binary] = self._keyframe(binary)
        return frame

    def _keyframe(self, binary: bool) -> Frame:
        message = {**self._message, "n": self.n}
        if binary:
            message["keys"] = self.keys
        return Frame(message, droppable=self._droppable, stream_n=self.n)

    def _delta(self, binary: bool) -> Frame:
        events = self._message.get("events")
        if binary and delta.COMPILED:
            # The msgpack delta written by the diff itself, with no patch objects (delta.shadow_delta); a value it leaves
            # to msgpack's packer (NotPacked, rare) takes the object path below, from the same shadow.
            try:
                data = delta.shadow_delta(self._shadows[1], self.body(), self._key_numbers, self.n, events)
            except delta.NotPacked:
                pass
            else:
                self._kept[1] = self.n
                return Frame.encoded(data, self._droppable, self.n)
        patch = delta.shadow_diff(self._shadows[binary], self.body(), self._key_numbers if binary else delta.NO_KEYS)
        self._kept[binary] = self.n
        # (droppable and stream_n by position: Frame's comment)
        return Frame(delta_message(self.n, {} if patch is delta.UNCHANGED else patch, events), self._droppable, self.n)

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
