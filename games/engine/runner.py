"""One match's authoritative simulation: phases, inputs, the fixed-rate tick loop, checkpoints and the result.

The runner lives in the process that holds the match's lease (see host.py). Everything it does to the game happens
in run_one_step(), which tests call directly; run() only schedules it against the monotonic clock. Each tick first
decides what depends on the clock and the sockets (which inputs, which removals, whether play starts), then applies
that decision through the pure rules (_apply); with Redis the decision goes to the journal (journal.py), and the
tick's snapshot is sent once it is durable, so that a successor replaying the journal reaches the same state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from channels.db import database_sync_to_async
from django.db import DatabaseError

from games import selectors, services
from games.engine.journal import PAUSE, RESUME, TickRecord, Written, decode_record
from games.engine.protocol import Frame
from games.engine.store import LEASE_SAFE_SECONDS, Checkpoint, LogEntry, Renewal, export_log, input_text, log_entry
from games.rules import get_game
from gameserver.logs import log_context
from gameserver.metrics import DATABASE_RETRIES, TickMetrics

if TYPE_CHECKING:
    from games.engine.host import MatchHost

log = logging.getLogger(__name__)

WAITING, COUNTDOWN, RUNNING, FINISHED = "waiting", "countdown", "running", "finished"
# A 1-v-1 match of a game that pauses (settings.pause_on_disconnect) while a player is disconnected.
PAUSED = "paused"
# A seat away this long pauses such a match: a socket that comes straight back (a blip, a takeover's reconnect) does
# not cost both players a countdown.
PAUSE_AFTER_SECONDS = 1.0
# While waiting nothing moves: a snapshot every this many ticks keeps clients' view of who has arrived fresh.
WAITING_SNAPSHOT_EVERY = 10
# A tick this many periods late is not caught up: the schedule restarts from now (the game slows, never bursts).
MAX_CATCH_UP_TICKS = 5
# While a finished match's result waits for the database, a "saving" snapshot this often tells players it is not lost.
SAVING_SNAPSHOT_EVERY_SECONDS = 1.0
# How much play a seat may have waiting, in time: each tick applies one input (docs/protocol.md, "Inputs and ticks");
# past this many ticks' worth, a tick applies the oldest surplus too. Every input waiting is a tick of latency, so the
# bound is a latency bound: a client that sends faster than the tick, or a server whose ticks fall behind (a busy
# process ticks at 19.5 Hz while clients send at 20), catches up at 200 ms instead of standing further behind. Less
# would merge inputs (a correction on the client) on every stall of a few ticks.
INPUT_BUFFER_SECONDS = 0.2
# ...but never fewer than this many, so that jitter of a tick or two is absorbed rather than merged.
INPUT_BUFFER_MIN = 3


# One input waiting for its tick: (seat, seq, parsed input, raw input, the raw input as JSON text). The text is made
# when the input arrives, while its dict is still in the CPU's cache, not at the tick: by then a busy process has run
# hundreds of other matches, and serialising a cold dict was a tenth of the tick (docs/benchmarks.md).
QueuedInput = tuple[int, int, Any, Any, str]


def input_buffer_max(tick_rate: int) -> int:
    """Inputs a seat of a game at this tick rate may have waiting: 4 at 20 Hz (arena), 6 at 30 Hz (pong)."""
    return max(INPUT_BUFFER_MIN, round(INPUT_BUFFER_SECONDS * tick_rate))


def tick_timer(delay: float) -> asyncio.Future:
    """What asyncio.sleep(delay) does, for the tick loop of every match: a future that a timer completes, without
    sleep's own coroutine and its cancelling of the timer afterwards (a quarter of what a match-tick's wait costs the
    event loop). Cancelling the waiting task cancels the future; the timer then finds it done and does nothing."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_later(delay if delay > 0.0 else 0.0, _wake, future)
    return future


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


# Ticks that ran dry (repeated a seat's held input) that the seat's next inputs may still be matched to: a spike of
# jitter, not a seat that was away for seconds.
INPUT_OWED_MAX = 3


@dataclass(slots=True)
class TickStats:
    ticks: int = 0
    late_ticks: int = 0  # started more than half a period late
    skipped: int = 0  # schedule resets after falling too far behind
    fenced: int = 0  # ticks held back because the lease might have expired
    max_lateness_ms: float = 0.0
    total_step_ms: float = 0.0
    max_step_ms: float = 0.0
    journaled: int = 0  # ticks that waited for their journal record
    total_journal_ms: float = 0.0
    max_journal_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        mean = self.total_step_ms / self.ticks if self.ticks else 0.0
        return {
            "ticks": self.ticks,
            "late_ticks": self.late_ticks,
            "skipped": self.skipped,
            "fenced": self.fenced,
            "max_lateness_ms": round(self.max_lateness_ms, 2),
            "mean_step_ms": round(mean, 3),
            "max_step_ms": round(self.max_step_ms, 2),
            "mean_journal_ms": round(self.total_journal_ms / self.journaled, 3) if self.journaled else 0.0,
            "max_journal_ms": round(self.max_journal_ms, 2),
        }


class MatchRunner:
    # Slots, because a tick reads a few dozen of these for every match 20-60 times a second. Python 3.11 keeps an
    # instance's attributes in a compact inline array only while its class has fewer than 30 attribute names; with
    # 41 every runner had a dict of its own (a 64-entry hash table), and at 1,000 players that cost 8-9% of the
    # server's CPU (docs/benchmarks.md, "the runner's attributes"). A new attribute goes in this list.
    __slots__ = (
        "acks",
        "away_since_takeover",
        "buffer_max",
        "countdown_left",
        "disconnected_since",
        "ended_by",
        "events",
        "ever_connected",
        "finishing",
        "game",
        "held",
        "host",
        "inbox",
        "info",
        "join_deadline",
        "journal",
        "journal_n",
        "journal_renewed_at",
        "last_seq",
        "lease_safe_until",
        "leaving",
        "local_conns",
        "local_here",
        "log",
        "log_flushed",
        "match_id",
        "needs_checkpoint",
        "owed",
        "pauses",
        "phase",
        "remote_latest",
        "remote_until",
        "removed",
        "seats",
        "settings",
        "started_wall",
        "state",
        "stats",
        "steps",
        "task",
        "tick_metrics",
        "tick_record",
        "waiting",
    )

    def __init__(self, host: MatchHost, info: selectors.MatchInfo, checkpoint: Checkpoint | None):
        self.host = host
        self.info = info
        self.match_id = info.match_id
        self.game = get_game(info.game)
        self.settings = self.game.settings
        seats = len(info.players)
        self.seats = seats
        # Each seat's inputs not applied yet (QueuedInput) in seq order, as take_inputs hands them on: one is applied
        # per tick. Lists, not deques: a few items each (the buffer's bound), and an empty deque is a 600-byte block,
        # read every tick for every seat of every match (bench.server_path --matches).
        self.inbox: list[list[QueuedInput]] = [[] for _ in range(seats)]
        self.buffer_max = input_buffer_max(self.settings.tick_rate)
        self.pauses = self.settings.pause_on_disconnect and seats == 2  # _pause_change: 1-v-1 games that pause
        self.waiting = [0] * seats  # inputs each seat had waiting when the last tick began, or -ticks owed
        self.held: list[Any] = [None] * seats  # raw input each seat's last tick applied (None: none yet)
        self.owed = [0] * seats  # ticks that repeated the seat's held input for want of a new one (take_inputs)
        self.last_seq = [0] * seats  # highest seq received per seat: older or repeated ones are ignored
        self.local_conns = [0] * seats
        self.remote_until = [0.0] * seats  # monotonic time until which another process says the seat is there
        # For the snapshot's "connected", every tick: whether each seat has a socket here, and the latest time until
        # which another process said any seat is there (past it, "connected" is a copy of local_here).
        self.local_here = [False] * seats
        self.remote_latest = 0.0
        self.disconnected_since: list[float | None] = [None] * seats
        # Seats away since a takeover and not back yet: their absence is the dead owner's doing, not theirs, so it
        # does not pause play (a failover goes on as before); a drop after they are back does.
        self.away_since_takeover: set[int] = set()
        self.events: list[dict] = []
        self.leaving: list[int] = []
        self.stats = TickStats()
        self.tick_metrics = TickMetrics(info.game, 1.0 / self.settings.tick_rate)
        # The match's join deadline (set when it became playable, the same for every process), on this clock.
        self.join_deadline = time.monotonic() + max(0.0, info.join_deadline - time.time())
        # Until when our lease is certainly ours (host.py sets it after each renewal): ticks wait past it.
        self.lease_safe_until = 0.0
        self.finishing = False
        self.ended_by: str | None = None  # an operator's reason when the live-match console ended play
        self.task: asyncio.Task | None = None
        # The process's journal writer (None without Redis, or with ENGINE_JOURNAL off); records of this match go
        # there, numbered from 1 (journal_n: the last one made), and ticks are sent once theirs is durable.
        self.journal = host.store.journal
        self.journal_n = 0
        self.tick_record: TickRecord | None = None  # the last tick's decisions, until run() hands them to the writer
        self.needs_checkpoint = True  # the next maintenance round writes one, whatever its schedule
        self.journal_renewed_at = float("-inf")  # when the last journal write (which extends the lease) was sent
        data = checkpoint.data if checkpoint is not None else None
        if data is None:
            self.state = self.game.initial_state(seats, seed=info.seed)
            self.phase = WAITING
            self.countdown_left = 0
            self.steps = 0
            self.acks = [0] * seats
            self.removed = [False] * seats
            self.log: list[LogEntry] = []
            self.started_wall: float | None = None
            self.ever_connected = [False] * seats
        else:
            self.state = self.game.from_checkpoint(data["state"])
            self.phase = data["phase"]
            self.countdown_left = data["countdown_left"]
            self.steps = data["steps"]
            self.acks = list(data["acks"])
            self.removed = list(data["removed"])
            self.log = [log_entry(step, seat, raw) for step, seat, raw in checkpoint.log]
            self.started_wall = data["started_wall"]
            # Checkpoints written before "connected" was kept: every seat still in the match counts as connected.
            self.ever_connected = list(data.get("connected", [not gone for gone in self.removed]))
            self.journal_n = data.get("jn", 0)
        self.log_flushed = len(self.log)
        if checkpoint is not None:
            self.replay(checkpoint.journal)
            self.last_seq = list(self.acks)
            # A takeover is nobody's fault: everyone gets a fresh grace period to reconnect.
            now = time.monotonic()
            self.disconnected_since = [None if gone else now for gone in self.removed]
            self.away_since_takeover = {seat for seat, gone in enumerate(self.removed) if not gone}

    def replay(self, records: list[bytes]) -> None:
        """Applies journal records after the checkpoint, in order, through the same code as the ticks that made
        them. A record already included (a write repeated after a timeout) is skipped; a gap ends the replay."""
        for raw in records:
            n, started, inputs, removals, pause = decode_record(raw)
            if n <= self.journal_n:
                continue
            if n != self.journal_n + 1:
                log.warning("match %s: journal gap after record %s (next is %s); replay stops", self.match_id, self.journal_n, n)
                break
            applied = [(seat, seq, self.game.parse_input(value), value, input_text(value)) for seat, seq, value in inputs]
            self._apply(TickRecord(n=n, removals=removals, started=started, pause=pause), applied)
            self.journal_n = n
        # The players saw these ticks' events already, from the dead owner.
        self.events = []

    # --- connections and inputs (called by the host) ---------------------------------------------------------

    def is_connected(self, seat: int, now: float) -> bool:
        return self.local_conns[seat] > 0 or self.remote_until[seat] > now

    def _connected(self, now: float) -> list[bool]:
        # (zip without strict=: a keyword argument costs more than the rest of the line; both lists are per seat.)
        return [here > 0 or until > now for here, until in zip(self.local_conns, self.remote_until)]  # noqa: B905

    def seat_presence(self, seat: int, *, local_delta: int = 0, remote_until: float | None = None) -> None:
        self.local_conns[seat] += local_delta
        self.local_here[seat] = self.local_conns[seat] > 0
        if remote_until is not None:
            self.remote_until[seat] = remote_until
            self.remote_latest = max(self.remote_latest, remote_until)
        now = time.monotonic()
        if self.is_connected(seat, now):
            self.disconnected_since[seat] = None
            self.ever_connected[seat] = True
            self.away_since_takeover.discard(seat)
        elif self.disconnected_since[seat] is None:
            self.disconnected_since[seat] = now

    def leave(self, seat: int) -> None:
        """The player gave their seat up: removed at the next tick, as if their grace period had run out."""
        if not self.removed[seat] and seat not in self.leaving:
            self.leaving.append(seat)

    def end_now(self, reason: str) -> None:
        """An operator ends play (the live-match console): the loop stops before its next tick and records the
        result as the rules rank the state now, with this reason."""
        if self.phase in (COUNTDOWN, RUNNING, PAUSED):
            self.ended_by = reason
            self.phase = FINISHED

    def queue_input(self, seat: int, seq: int, parsed: Any, raw: Any) -> bool:
        """False for a stale or repeated sequence number (ignored); otherwise the input waits in the seat's buffer,
        and the ticks apply the buffer one input each, in seq order (take_inputs)."""
        if self.phase == FINISHED:
            # Over: the final snapshot told the client so, and inputs still in flight (or sent while the result is
            # being saved) are dropped without a word, not answered one input_rejected each.
            return True
        if seq <= self.last_seq[seat] or self.removed[seat]:
            return False
        self.last_seq[seat] = seq
        # (store.input_text's line, inline: every input of every player)
        self.inbox[seat].append((seat, seq, parsed, raw, orjson.dumps(raw).decode()))
        return True

    def take_inputs(self) -> list[QueuedInput]:
        """This tick's inputs by seat: the oldest waiting input of each seat, and when
        more than `buffer_max` wait, the surplus before it (all applied in order: none is ever dropped).

        A seat with none waiting gets nothing: its last input holds (the rules keep it), its ack stays, and the tick
        is owed to the seat's next input. When that input arrives and is the same as the one repeated, the repeat
        was it: it is acknowledged (applied again, a no-op) together with the input after it, so a late input does
        not move the seat twice. An input that differs ends what was owed (the repeat was not what the player did).
        The snapshot tells the seat (`waiting`: how many were waiting, or minus how many ticks are owed)."""
        taken: list[QueuedInput] = []
        take = taken.append
        owed_by_seat, held, waiting_by_seat, buffer_max = self.owed, self.held, self.waiting, self.buffer_max
        for seat, box in enumerate(self.inbox):
            waiting = len(box)
            owed = owed_by_seat[seat]
            if waiting == 1 and not owed:  # the steady state: one input waiting, no tick owed (what the rest does)
                take(box.pop())
                waiting_by_seat[seat] = 1
                continue
            if owed:
                owed_by_seat[seat] = 0
                while owed and box and box[0][3] == held[seat]:
                    owed -= 1
                    take(box.pop(0))
            if box:
                take(box.pop(0))
                while len(box) >= buffer_max:  # more than buffer_max were waiting: the surplus goes now too
                    take(box.pop(0))
            elif held[seat] is not None and not self.removed[seat]:
                owed_by_seat[seat] = min(INPUT_OWED_MAX, owed + 1)
            waiting_by_seat[seat] = -owed_by_seat[seat] if owed_by_seat[seat] else waiting
        return taken

    def _clear_inputs(self) -> None:
        for box in self.inbox:
            box.clear()
        self.waiting = [0] * self.seats
        self.owed = [0] * self.seats

    # --- the tick ---------------------------------------------------------------------------------------------

    def run_one_step(self, now: float) -> Frame | None:
        """Advance the match by one tick at monotonic time `now`; returns the snapshot to send, if any. What the tick
        decided is left in `tick_record` (None when nothing changed) for the journal."""
        if self.phase == WAITING:
            started = self._start_if_ready(now)
            inputs: list[QueuedInput] = []
            removals = started[1] if started else []
            pause = None
        else:
            started = None
            # Every tick of every match: the calls only when a seat left or is away, and for games that pause.
            away = self.disconnected_since.count(None) != self.seats
            removals = self._due_removals(now) if away or self.leaving else []
            pause = self._pause_change(now, removals) if self.pauses else None
            if self.phase == PAUSED or pause == PAUSE:
                self._clear_inputs()  # nothing is played while paused; the controls' state starts afresh after it
                inputs = []
            else:
                inputs = self.take_inputs()
        record = None
        if self.phase != WAITING or started:
            self.journal_n += 1
            record = TickRecord(self.journal_n, [], removals, started[0] if started else None, pause)
            self._apply(record, inputs)
            if started:
                self.host.spawn(database_sync_to_async(services.match_start)(match_id=self.match_id))
        self.tick_record = record
        if self.phase == WAITING and self.stats.ticks % WAITING_SNAPSHOT_EVERY:
            return None
        message = self.snapshot_message(now)
        return Frame(message, "events" not in message)  # (droppable, by position: Frame's comment)

    def _start_if_ready(self, now: float) -> tuple[float, list[int]] | None:
        """(wall time, seats removed for not showing up) when play starts at this tick; None while waiting."""
        self._clear_inputs()
        present = [self.is_connected(seat, now) for seat in range(self.seats)]
        if not all(present) and now < self.join_deadline:
            return None
        if not all(present) and sum(present) < self.settings.min_players:
            return None  # run() cancels the match
        return time.time(), [seat for seat, here in enumerate(present) if not here]

    def _due_removals(self, now: float) -> list[int]:
        """Seats to remove at this tick, in order: those who left, then those past their grace period."""
        due = [seat for seat in dict.fromkeys(self.leaving) if not self.removed[seat]]
        self.leaving.clear()
        grace = self.settings.reconnect_grace_seconds
        for seat, since in enumerate(self.disconnected_since):
            if since is not None and not self.removed[seat] and seat not in due and now - since > grace:
                due.append(seat)
        return due

    def _pause_change(self, now: float, removals: list[int]) -> str | None:
        """PAUSE when a seat of a 1-v-1 match that pauses has been away PAUSE_AFTER_SECONDS, RESUME once every seat is
        back; None otherwise (and on a tick that removes a seat: the rules decide what that means)."""
        if not self.pauses or removals:
            return None
        away = {seat: since for seat, since in enumerate(self.disconnected_since) if since is not None and not self.removed[seat]}
        if self.phase in (COUNTDOWN, RUNNING) and any(
            now - since >= PAUSE_AFTER_SECONDS for seat, since in away.items() if seat not in self.away_since_takeover
        ):
            return PAUSE
        if self.phase == PAUSED and not away:
            return RESUME
        return None

    def _apply(self, record: TickRecord, inputs: list[QueuedInput]) -> None:
        """One tick's decisions through the pure rules: the same on the owner and when a successor replays the
        journal, so both reach the same state. `inputs`: QueuedInput in order; their JSON text goes into the record
        as the tick applies them."""
        if self.phase == WAITING:  # play starts (the only record made while waiting)
            for seat in record.removals:
                self._remove(seat)
            self.phase = COUNTDOWN
            self.countdown_left = self._countdown_ticks()
            self.started_wall = record.started
        else:
            self._apply_play(record, inputs)
        if self.phase in (COUNTDOWN, RUNNING, PAUSED) and self.game.is_finished(self.state):
            self.phase = FINISHED

    def _apply_play(self, record: TickRecord, inputs: list[QueuedInput]) -> None:
        if inputs:
            apply_input, state, steps = self.game.apply_input, self.state, self.steps
            acks, held, ever_connected = self.acks, self.held, self.ever_connected
            to_log, to_record = self.log.append, record.inputs.append
            for seat, seq, parsed, raw, text in inputs:
                apply_input(state, seat, parsed)
                acks[seat] = seq
                held[seat] = raw
                to_log((steps, seat, text))  # store.log_entry's entry, inline: every input of every player
                to_record((seat, seq, text))
                ever_connected[seat] = True  # it sent an input (on replay: as the dead owner saw it)
        for seat in record.removals:
            self._remove(seat)
        if record.pause == PAUSE:
            self.phase = PAUSED
        elif record.pause == RESUME:
            # Back to the countdown the match began with: nobody is surprised by a ball already moving.
            self.phase = COUNTDOWN
            self.countdown_left = self._countdown_ticks()
        elif self.phase == COUNTDOWN:
            self.countdown_left -= 1
            if self.countdown_left <= 0:
                self.phase = RUNNING
        elif self.phase == RUNNING and not self.game.is_finished(self.state):
            self.events.extend(self.game.step(self.state, self.settings.dt))
            self.steps += 1

    def _countdown_ticks(self) -> int:
        return max(1, round(self.settings.countdown_seconds * self.settings.tick_rate))

    def _remove(self, seat: int) -> None:
        self.removed[seat] = True
        self.inbox[seat].clear()  # queue_input takes no more for the seat either
        self.owed[seat] = 0
        self.game.remove_player(self.state, seat)
        self.log.append(log_entry(self.steps, seat, None))
        self.events.append({"type": "player_removed", "seat": seat})

    def snapshot_message(self, now: float, *, take_events: bool = True) -> dict[str, Any]:
        message = {
            "type": "snapshot",
            "full": True,
            "tick": self.steps,
            "phase": self.phase,
            # Copies: the message outlives the tick (a v2 stream diffs the next snapshot against it; snapshots.py).
            "acks": self.acks[:],
            # A copy of local_here while no other process says a seat is there (most matches, most ticks).
            "connected": self.local_here[:] if now >= self.remote_latest else self._connected(now),
            "removed": self.removed[:],
            "state": self.game.snapshot(self.state),
        }
        if any(self.waiting):  # omitted while all are 0 (a list of small ints every tick otherwise)
            message["waiting"] = self.waiting[:]
        if self.phase == COUNTDOWN:
            message["countdown"] = round(self.countdown_left / self.settings.tick_rate, 2)
        if self.phase == WAITING:
            message["join_deadline_in"] = round(max(0.0, self.join_deadline - now), 1)
        if self.phase == PAUSED:
            # Per seat: seconds left of the grace period of a disconnected player (null: connected, or removed).
            grace = self.settings.reconnect_grace_seconds
            message["away"] = [
                None if since is None or self.removed[seat] else round(max(0.0, grace - (now - since)), 1)
                for seat, since in enumerate(self.disconnected_since)
            ]
        if self.events and take_events:
            message["events"] = self.events
            self.events = []
        return message

    # --- the loop -------------------------------------------------------------------------------------------------

    def lease_confirmed(self, safe_until: float) -> None:
        self.lease_safe_until = max(self.lease_safe_until, safe_until)

    def lease_is_safe(self, now: float) -> bool:
        """Fencing: no other process can have taken the match over before `now`. After a stall (a paused or
        overloaded process) this is False until the next renewal: the host then either confirms the lease (ticks
        resume) or finds it taken and stops this loop, so a stale owner never sends a tick. While Redis cannot be
        reached nobody can take the lease: the loop goes on for the local players (host.may_tick_without_lease)."""
        return now < self.lease_safe_until or self.host.may_tick_without_lease(now)

    async def run(self) -> None:
        log_context(match_id=self.match_id, user_id=None)  # this task's lines; it was created by a player's socket
        try:
            await self._run()
        finally:
            if self.journal is not None:
                self.journal.forget(self.match_id)

    async def _run(self) -> None:
        period = 1.0 / self.settings.tick_rate
        next_at = time.monotonic()
        while self.phase != FINISHED:
            now = time.monotonic()
            if now >= self.lease_safe_until and not self.lease_is_safe(now):  # (the call only past the safe time)
                self.stats.fenced += 1
                await asyncio.sleep(period / 2)
                next_at = time.monotonic()
                continue
            lateness = now - next_at
            stats = self.stats
            if lateness > period / 2:
                stats.late_ticks += 1
            if lateness * 1000 > stats.max_lateness_ms:  # (not max(): a call, every tick of every match)
                stats.max_lateness_ms = lateness * 1000
            frame = self.run_one_step(now)
            if self.journal is None:  # embedded mode: nothing to make durable
                waited = 0.0
                self.tick_record = None  # (nothing takes it: freed now, while in the cache, as `frame` below)
                if frame is not None and (relaying := self.host.publish(self.match_id, frame)) is not None:
                    await relaying
            else:
                waiting_since = time.monotonic()
                durable = await self.journal_tick()
                waited = time.monotonic() - waiting_since  # not the tick's own time (TickStats: the simulation's)
                stats.journaled += 1
                stats.total_journal_ms += waited * 1000
                if waited * 1000 > stats.max_journal_ms:
                    stats.max_journal_ms = waited * 1000
                if frame is not None and (durable or self.host.may_tick_without_lease(time.monotonic())):
                    if (relaying := self.host.publish(self.match_id, frame)) is not None:
                        await relaying
            # Let go of the snapshot now, while its objects are in the CPU's cache, not when the next tick replaces it:
            # freeing them then, after hundreds of other matches' ticks, cost ~2 µs a match-tick (docs/benchmarks.md).
            frame = None
            spent = (time.monotonic() - now - waited) * 1000
            stats.ticks += 1
            stats.total_step_ms += spent
            if spent > stats.max_step_ms:
                stats.max_step_ms = spent
            self.tick_metrics.observe(lateness, spent)
            if self.phase == WAITING and now >= self.join_deadline:
                await self._cancel("players_missing")
                return
            next_at += period
            delay = next_at - time.monotonic()
            if delay < -MAX_CATCH_UP_TICKS * period:
                self.stats.skipped += 1
                next_at = time.monotonic()
                delay = 0
            await tick_timer(delay)
        await self._finish()

    async def journal_tick(self) -> bool:
        """Hands this tick's record to the process's journal writer and waits for the flush that carries it: True
        once it is durable (or nothing needs to be: no journal, or nothing changed). Any failure means the tick is not
        sent (a successor could not reproduce it), except during a Redis outage (run(): nobody can take the match
        over then; the records stay queued and are written when Redis is back, docs/architecture.md)."""
        record, self.tick_record = self.tick_record, None
        if self.journal is None or record is None:
            return True
        flush = self.journal.submit(self.host.proc, self.match_id, [record.encode()])
        if not self.host.may_tick_without_lease(time.monotonic()):  # in an outage, don't wait on Redis
            await flush.done
            written = flush.results.get(self.match_id)
            if written is not None and written.durable:
                self.lease_confirmed(flush.started + LEASE_SAFE_SECONDS)
                self.journal_renewed_at = flush.started
                if written is not Written.OK:
                    log.warning("match %s: lease was gone (renewals late, or a Redis restart); taken again", self.match_id)
                if written is Written.RETAKEN_EMPTY:
                    self.stored_state_lost()  # Redis lost the match's keys: checkpoint and whole log next round
                return True
            if written is Written.LOST:
                self.lease_safe_until = 0.0  # fenced until the maintenance round hands the match to its new owner
        # The first round that can write a checkpoint writes one: it covers the records still queued (the writer
        # keeps a bounded backlog of them) and ends the window in which a successor would have to replay them.
        self.needs_checkpoint = True
        return False

    async def _with_db_retries(self, call, **kwargs):
        # PostgreSQL away for a moment must not lose a result: keep trying while the lease (and checkpoint) is kept.
        for attempt in range(60):
            try:
                return await database_sync_to_async(call)(**kwargs)
            except DatabaseError:
                log.warning("match %s: database unavailable, retrying (%s)", self.match_id, attempt + 1)
                DATABASE_RETRIES.labels(call.__name__).inc()
                await asyncio.sleep(min(5.0, 0.25 * 2**attempt))
        raise RuntimeError(f"match {self.match_id}: could not reach the database")

    async def _finish(self) -> None:
        self.finishing = True
        result = self.game.result(self.state)
        if self.ended_by is not None:
            result = dataclasses.replace(result, reason=self.ended_by)
        duration = time.time() - self.started_wall if self.started_wall else 0.0
        saving = asyncio.ensure_future(
            self._with_db_retries(
                services.match_finish,
                match_id=self.match_id,
                result=result,
                ticks=self.steps,
                duration_seconds=round(duration, 3),
                abandoned_seats=[seat for seat, gone in enumerate(self.removed) if gone],
                connected_seats=[seat for seat, here in enumerate(self.ever_connected) if here],
                input_log=export_log(self.log),
            )
        )
        recorded = await self._while_saving(saving)
        log.info(
            "match %s finished (%s); recorded here: %s; %s",
            self.match_id,
            result.reason,
            recorded,
            self.stats.as_dict(),
        )
        await self._end()

    async def _while_saving(self, saving: asyncio.Future):
        """Awaits the result's write; when the database keeps it waiting (an outage: _with_db_retries), players get the
        final state again every SAVING_SNAPSHOT_EVERY_SECONDS with "saving": true, instead of silence."""
        try:
            while True:
                done, _ = await asyncio.wait([saving], timeout=SAVING_SNAPSHOT_EVERY_SECONDS)
                if done:
                    return saving.result()
                message = self.snapshot_message(time.monotonic())
                message["saving"] = True
                if (relaying := self.host.publish(self.match_id, Frame(message, droppable=True))) is not None:
                    await relaying
        finally:
            saving.cancel()  # only when this task itself is cancelled (the process stops) before the write ended

    async def _cancel(self, reason: str) -> None:
        self.finishing = True
        await self._with_db_retries(services.match_cancel, match_id=self.match_id, reason=reason, stop_running=False)
        await self._end()

    async def _end(self) -> None:
        # Retried too: the database can go away again between storing the result and reading it back.
        end = await self._with_db_retries(selectors.match_end_message, match_id=self.match_id)
        await self.host.match_ended(self.match_id, end)

    # --- checkpoints -------------------------------------------------------------------------------------------

    def renewal(self, *, checkpoint: bool = True) -> Renewal:
        """This match's part of the host's renewal round: the lease, and with `checkpoint` (or when one is owed) a
        checkpoint and the new log entries. Its "jn" is the last journal record it includes: the journal is trimmed
        up to there, and a successor replays only what follows."""
        if self.finishing or not self.host.store.keeps_checkpoints or not (checkpoint or self.needs_checkpoint):
            return Renewal(match_id=self.match_id)
        data = {
            "v": 1,
            "state": self.game.to_checkpoint(self.state),
            "phase": self.phase,
            "countdown_left": self.countdown_left,
            "steps": self.steps,
            "acks": self.acks,
            "removed": self.removed,
            "started_wall": self.started_wall,
            "connected": self.ever_connected,
            "log_len": len(self.log),
            "jn": self.journal_n,
        }
        return Renewal(match_id=self.match_id, checkpoint=data, new_log_entries=self.log[self.log_flushed :])

    def renewed(self, renewal: Renewal) -> None:
        if renewal.checkpoint is not None:
            self.log_flushed = renewal.checkpoint["log_len"]
            self.needs_checkpoint = False

    def stored_state_lost(self) -> None:
        """Redis lost the match's keys (restarted empty): the next round writes a checkpoint and the whole log."""
        self.log_flushed = 0
        self.needs_checkpoint = True
