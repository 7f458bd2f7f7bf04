"""This process's match sockets, by match: the local fan-out of snapshots and ends.

A snapshot is encoded once per format (protocol.Frame) and the same bytes go to every socket of the match here,
whether this process runs the match (host.publish, from the tick loop) or relays it (the owner's Snapshot message).
Protocol v2 sockets get the match's shared delta or keyframe instead (snapshots.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Protocol

from games import selectors
from games.engine.protocol import Frame
from games.engine.snapshots import SnapshotStreams
from gameserver.closecodes import CloseCode

log = logging.getLogger("games.engine.host")


class Outlet(Protocol):
    """How the engine sends to a socket (gameserver.ws.Outlet): synchronous, never raises."""

    binary: bool  # msgpack (else JSON)
    deltas: bool  # protocol v2: snapshots as deltas from the match's SnapshotStream
    snapshot_n: int | None  # the stream number of the last one written to this socket

    def send(self, frame: Frame) -> None: ...

    def close(self, code: int) -> None: ...


class Connection(Protocol):
    """What the engine needs of a match socket (games.consumers.MatchConsumer)."""

    match_id: int
    seat: int | None
    info: selectors.MatchInfo
    out: Outlet


class LocalSockets:
    def __init__(self) -> None:
        self.by_match: dict[int, set[Connection]] = {}
        # Each match's sockets in the order a tick is sent: players, then spectators (200 spectators must not delay a
        # player's snapshot by the milliseconds their writes take). Rebuilt when a socket comes or goes, not per tick;
        # replaced, never changed in place, so a send that closes a socket does not disturb the loop over it.
        self.send_order: dict[int, tuple[Connection, ...]] = {}
        self.streams = SnapshotStreams()
        self.with_deltas: set[int] = set()  # matches with a protocol v2 socket here (since they last had none)

    def __contains__(self, mid: int) -> bool:
        return mid in self.by_match

    def of(self, mid: int) -> set[Connection]:
        return self.by_match.get(mid, set())

    def matches(self) -> Iterator[int]:
        return iter(list(self.by_match))

    def add(self, conn: Connection) -> None:
        self.by_match.setdefault(conn.match_id, set()).add(conn)
        self._order(conn.match_id)
        if conn.out.deltas:
            self.with_deltas.add(conn.match_id)

    def discard(self, conn: Connection) -> bool:
        """False when the socket was not here (detached already)."""
        conns = self.by_match.get(conn.match_id)
        if conns is None or conn not in conns:
            return False
        conns.discard(conn)
        self._order(conn.match_id)
        if not conns:
            del self.by_match[conn.match_id]
            del self.send_order[conn.match_id]
            self.streams.discard(conn.match_id)
            self.with_deltas.discard(conn.match_id)
        return True

    def _order(self, mid: int) -> None:
        conns = self.by_match[mid]
        self.send_order[mid] = (*(c for c in conns if c.seat is not None), *(c for c in conns if c.seat is None))

    def seats(self, mid: int) -> set[int]:
        return {c.seat for c in self.of(mid) if c.seat is not None}

    def fan_out(self, mid: int, frame: Frame) -> None:
        """The same frame to every v1 socket; to every v2 socket the stream's shared delta, or its shared keyframe
        when the last snapshot the socket was sent is not the delta's base."""
        conns = self.send_order.get(mid, ())
        stream = self.streams.advance(mid, frame, mid in self.with_deltas)
        for conn in conns:
            out = conn.out
            try:
                out.send(stream.frame_for(out.snapshot_n, out.binary) if stream is not None and out.deltas else frame)
            except Exception:  # one broken socket must not stop the others' snapshots
                log.exception("match %s: send failed", mid)
        if stream is not None:
            stream.sent()

    def end(self, mid: int, end: dict[str, Any]) -> None:
        """match_end to every socket of the match here, then close 4013."""
        frame = Frame(end)
        for conn in list(self.of(mid)):
            conn.out.send(frame)
            conn.out.close(CloseCode.MATCH_OVER)

    def replace(self, mid: int, seat: int, *, keep: Connection | None = None) -> None:
        """A seat is played from one socket: the others for it here are closed with 4011."""
        for conn in [c for c in self.of(mid) if c.seat == seat and c is not keep]:
            conn.out.close(CloseCode.REPLACED)
