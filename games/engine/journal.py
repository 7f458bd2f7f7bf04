"""The per-tick journal: what each tick applied, made durable in Redis before the tick's snapshot is sent.

A tick's record holds what was decided outside the pure rules (which inputs were applied, with their seq; which seats
were removed; when play started): a successor replays the records after the last checkpoint through the same code
and reaches the dead owner's exact state, so an acknowledged input is never lost and acks never go backwards.
One writer per process commits the records of all its matches together (group commit): whatever ticks are queued
when the previous flush completes (and at least MIN_FLUSH_INTERVAL_SECONDS after it started) go out in one script
call per Redis node.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

log = logging.getLogger(__name__)

# A flush not done within this long counts as failed (the store times out each Redis node sooner: store.py).
FLUSH_TIMEOUT_SECONDS = 1.5
# Flushes start at most this often: ticks queued meanwhile go out together. A flush has a fixed CPU cost on the
# owner beside its cost per record (bench.failover --node-cost; docs/benchmarks.md, "Failover drills"), and matches
# tick at staggered times: without a floor a flush could carry a single match. It delays a snapshot by at most 2 ms.
MIN_FLUSH_INTERVAL_SECONDS = 0.002
# Records kept per match while Redis cannot take them (a minute of ticks at 20 Hz). Past it the oldest go: the
# checkpoint written as soon as Redis is back covers them (MatchRunner.journal_tick), so only an owner that dies in
# the round between Redis coming back and that checkpoint would replay short (then up to the first missing record).
MAX_BACKLOG_RECORDS = 1200
# After a flush that reached no Redis node at all, the next attempt waits this long: an outage costs one attempt per
# pause, not one per tick. (One node down among several does not slow the others' matches.)
RETRY_PAUSE_SECONDS = 0.25


class Written(enum.IntEnum):
    """What became of one match's records in a flush."""

    OK = 1  # durable, and the lease was extended
    LOST = 0  # another process holds the lease: the records are dropped (our loop is fenced)
    RETAKEN = 2  # nobody held the lease (it expired while we lagged): taken again, and the records are durable
    RETAKEN_EMPTY = 3  # the same, and the checkpoint was gone too (Redis restarted empty): one must be written
    UNREACHABLE = -2  # Redis did not answer: kept for the next flush

    @property
    def durable(self) -> bool:
        return self in (Written.OK, Written.RETAKEN, Written.RETAKEN_EMPTY)


@dataclass(slots=True)
class TickRecord:
    """One tick's decisions. `inputs`: (seat, seq, raw input as JSON text) in the order applied; `removals`: seats
    removed this tick, in order; `started`: wall time when play started this tick (waiting -> countdown), else None;
    `pause`: PAUSE or RESUME when play paused for a disconnected player or resumed this tick, else None."""

    n: int
    inputs: list[tuple[int, int, str]] = field(default_factory=list)
    removals: list[int] = field(default_factory=list)
    started: float | None = None
    pause: str | None = None

    def encode(self) -> bytes:
        # The raw inputs are JSON text already (the input log's): spliced in, not decoded and encoded again.
        inputs = ",".join(f"[{seat},{seq},{raw}]" for seat, seq, raw in self.inputs)
        started = "null" if self.started is None else repr(self.started)
        removals = ",".join(map(str, self.removals))
        # A fifth item only on the rare ticks that pause or resume: every other record keeps its old form.
        pause = "" if self.pause is None else f',"{self.pause}"'
        return f"[{self.n},{started},[{inputs}],[{removals}]{pause}]".encode()


PAUSE, RESUME = "pause", "resume"


def decode_record(raw: bytes | str) -> tuple[int, float | None, list[tuple[int, int, Any]], list[int], str | None]:
    """(n, started, [(seat, seq, raw input as a value)], removals, pause): a stored record, for replay."""
    n, started, inputs, removals, *rest = orjson.loads(raw)
    pause = rest[0] if rest and rest[0] in (PAUSE, RESUME) else None
    return n, started, [(seat, seq, value) for seat, seq, value in inputs], removals, pause


def record_number(raw: bytes | str) -> int:
    return int((raw.decode() if isinstance(raw, bytes) else raw)[1:].split(",", 1)[0])


class Flush:
    """One group commit: the records queued for it, and once `done`, each match's outcome."""

    __slots__ = ("owner", "records", "results", "started", "done")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = ""
        self.records: dict[int, list[bytes]] = {}
        self.results: dict[int, Written] = {}
        self.started = 0.0
        self.done: asyncio.Future = loop.create_future()


Append = Callable[[str, list[tuple[int, list[bytes]]]], Awaitable[list[Written]]]


class JournalWriter:
    """The process's group commit. `submit` queues a tick's records and returns the flush that will carry them; a
    runner awaits `flush.done` before it sends the tick. Records whose write failed for want of Redis stay queued
    (in order, ahead of newer ones) until a flush succeeds or the match is forgotten."""

    def __init__(self, append: Append) -> None:
        self._append = append
        self._next: Flush | None = None
        self._active: set[int] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def submit(self, owner: str, match_id: int, records: list[bytes]) -> Flush:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._next = Flush(loop)
            self._task = loop.create_task(self._run())
        flush = self._next
        flush.owner = owner
        flush.records.setdefault(match_id, []).extend(records)
        self._active.add(match_id)
        self._wake.set()
        return flush

    def forget(self, match_id: int) -> None:
        """The match stopped running here (ended, lost, handed over): drop what is still queued for it."""
        self._active.discard(match_id)
        if self._next is not None:
            self._next.records.pop(match_id, None)

    def pending(self, match_id: int) -> int:
        """Records of the match waiting for the next flush (kept through an outage)."""
        return len(self._next.records.get(match_id, ())) if self._next is not None else 0

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            flush, self._next = self._next, Flush(asyncio.get_running_loop())
            self._next.owner = flush.owner
            flush.started = time.monotonic()
            items = list(flush.records.items())
            try:
                async with asyncio.timeout(FLUSH_TIMEOUT_SECONDS):
                    outcomes = await self._append(flush.owner, items)
            except asyncio.CancelledError:
                flush.done.cancel()
                raise
            except Exception as exc:  # TimeoutError included
                log.debug("journal flush failed: %s: %s", type(exc).__name__, exc)
                outcomes = [Written.UNREACHABLE] * len(items)
            for (match_id, records), outcome in zip(items, outcomes, strict=True):
                flush.results[match_id] = outcome
                if outcome is Written.UNREACHABLE and match_id in self._active:
                    # Ahead of what was queued meanwhile, so the journal stays in tick order. Not woken for them
                    # alone: the match's next tick wakes the writer (no busy retries).
                    kept = records + self._next.records.get(match_id, [])
                    self._next.records[match_id] = kept[-MAX_BACKLOG_RECORDS:]
            flush.done.set_result(None)
            if outcomes and all(outcome is Written.UNREACHABLE for outcome in outcomes):
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
            else:
                await asyncio.sleep(max(0.0, flush.started + MIN_FLUSH_INTERVAL_SECONDS - time.monotonic()))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
