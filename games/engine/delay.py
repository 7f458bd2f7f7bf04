"""A spectator delay: a game's spectators see the match `spectator_delay_seconds` late (GameSettings), so that a
player cannot watch their own match from a second tab to spy on the others.

A spectator's socket gets a DelayedOutlet in front of its Outlet (games/consumers.py): the match's snapshots, its
match_end and the close after it wait that long, in order; everything else (pong, errors, an operator's notice, a
close for any other reason) goes at once. One task per event loop (DelayLine) writes what is due, every
FLUSH_SECONDS, for every delayed socket: no timer per frame, and players' sockets never pass through here.
"""

from __future__ import annotations

import asyncio
import collections
import time
import weakref
from typing import Any

from gameserver.closecodes import CloseCode

FLUSH_SECONDS = 0.02
DELAYED_TYPES = frozenset({"snapshot", "match_end"})


class DelayLine:
    """This event loop's writer of delayed frames."""

    def __init__(self) -> None:
        self.outlets: set[DelayedOutlet] = set()
        self._task: asyncio.Task | None = None

    def add(self, outlet: DelayedOutlet) -> None:
        self.outlets.add(outlet)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self.outlets:
            await asyncio.sleep(FLUSH_SECONDS)
            now = time.monotonic()
            for outlet in list(self.outlets):
                if outlet.flush(now):
                    self.outlets.discard(outlet)


_lines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DelayLine] = weakref.WeakKeyDictionary()


def delay_line() -> DelayLine:
    loop = asyncio.get_running_loop()
    line = _lines.get(loop)
    if line is None:
        line = _lines[loop] = DelayLine()
    return line


def is_delayed(frame: Any) -> bool:
    """A snapshot (whole, or a v2 stream frame: keyframe or delta) or the match_end."""
    if frame.stream_n is not None:
        return True
    message = frame.message
    return isinstance(message, dict) and message.get("type") in DELAYED_TYPES


class DelayedOutlet:
    """The engine's view of a spectator's socket (fanout.Outlet), `delay` seconds behind."""

    def __init__(self, inner: Any, delay: float, line: DelayLine | None = None) -> None:
        self.inner = inner
        self.delay = delay
        self.line = line or delay_line()
        self._queue: collections.deque[tuple[float, Any]] = collections.deque()  # (due, frame or close code)
        self._closing = False
        # v2: the stream number of the last snapshot queued here; the next delta the match hands this socket must fit
        # it (it will be written after it). A keyframe request (None) reaches the socket itself too.
        self._snapshot_n: int | None = inner.snapshot_n

    @property
    def binary(self) -> bool:
        return self.inner.binary

    @property
    def deltas(self) -> bool:
        return self.inner.deltas

    @property
    def closed(self) -> bool:
        return self._closing or self.inner.closed

    @property
    def snapshot_n(self) -> int | None:
        return self._snapshot_n

    @snapshot_n.setter
    def snapshot_n(self, value: int | None) -> None:
        self._snapshot_n = value
        self.inner.snapshot_n = value

    def send(self, frame: Any) -> None:
        if self.closed:
            return
        if not is_delayed(frame):
            self.inner.send(frame)
            return
        if frame.stream_n is not None:
            self._snapshot_n = frame.stream_n
        self._queue.append((time.monotonic() + self.delay, frame))
        self.line.add(self)

    def close(self, code: int) -> None:
        if self.closed:
            return
        if code == CloseCode.MATCH_OVER and self._queue:  # after the delayed match_end
            self._closing = True
            self._queue.append((time.monotonic() + self.delay, code))
            return
        self._queue.clear()
        self.inner.close(code)

    def gone(self) -> None:
        self._queue.clear()
        self.inner.gone()

    def flush(self, now: float) -> bool:
        """Writes what is due; True when nothing is left to write."""
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, item = queue.popleft()
            if isinstance(item, int):
                self.inner.close(item)
            else:
                self.inner.send(item)
        return not queue
