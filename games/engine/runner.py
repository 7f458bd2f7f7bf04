"""One match's authoritative simulation: phases, inputs, the fixed-rate tick loop, checkpoints and the result.

The runner lives in the process that holds the match's lease (see host.py). Everything it does to the game happens
in run_one_step(), which tests call directly; run() only schedules it against the monotonic clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.db import DatabaseError

from games import selectors, services
from games.engine.protocol import Frame
from games.engine.store import Checkpoint, LogEntry, Renewal, export_log, log_entry
from games.rules import get_game

if TYPE_CHECKING:
    from games.engine.host import MatchHost

log = logging.getLogger(__name__)

WAITING, COUNTDOWN, RUNNING, FINISHED = "waiting", "countdown", "running", "finished"
# While waiting nothing moves: a snapshot every this many ticks keeps clients' view of who has arrived fresh.
WAITING_SNAPSHOT_EVERY = 10
# A tick this many periods late is not caught up: the schedule restarts from now (the game slows, never bursts).
MAX_CATCH_UP_TICKS = 5
# While a finished match's result waits for the database, a "saving" snapshot this often tells players it is not lost.
SAVING_SNAPSHOT_EVERY_SECONDS = 1.0


@dataclass(slots=True)
class TickStats:
    ticks: int = 0
    late_ticks: int = 0  # started more than half a period late
    skipped: int = 0  # schedule resets after falling too far behind
    fenced: int = 0  # ticks held back because the lease might have expired
    max_lateness_ms: float = 0.0
    total_step_ms: float = 0.0
    max_step_ms: float = 0.0

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
        }


class MatchRunner:
    def __init__(self, host: MatchHost, info: selectors.MatchInfo, checkpoint: Checkpoint | None):
        self.host = host
        self.info = info
        self.match_id = info.match_id
        self.game = get_game(info.game)
        self.settings = self.game.settings
        seats = len(info.players)
        self.seats = seats
        self.pending: list[tuple[int, int, Any, Any]] = []  # (seat, seq, parsed input, raw input), arrival order
        self.last_seq = [0] * seats  # highest seq received per seat: older or repeated ones are ignored
        self.local_conns = [0] * seats
        self.remote_until = [0.0] * seats  # monotonic time until which another process says the seat is there
        self.disconnected_since: list[float | None] = [None] * seats
        self.events: list[dict] = []
        self.leaving: list[int] = []
        self.stats = TickStats()
        # The match's join deadline (set when it became playable, the same for every process), on this clock.
        self.join_deadline = time.monotonic() + max(0.0, info.join_deadline - time.time())
        # Until when our lease is certainly ours (host.py sets it after each renewal): ticks wait past it.
        self.lease_safe_until = 0.0
        self.finishing = False
        self.task: asyncio.Task | None = None
        if checkpoint is None:
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
            data = checkpoint.data
            self.state = self.game.from_checkpoint(data["state"])
            self.phase = data["phase"]
            self.countdown_left = data["countdown_left"]
            self.steps = data["steps"]
            self.acks = list(data["acks"])
            self.last_seq = list(data["acks"])
            self.removed = list(data["removed"])
            self.log = [log_entry(step, seat, raw) for step, seat, raw in checkpoint.log]
            self.started_wall = data["started_wall"]
            # Checkpoints written before "connected" was kept: every seat still in the match counts as connected.
            self.ever_connected = list(data.get("connected", [not gone for gone in self.removed]))
            # A takeover is nobody's fault: everyone gets a fresh grace period to reconnect.
            now = time.monotonic()
            self.disconnected_since = [None if gone else now for gone in self.removed]
        self.log_flushed = len(self.log)

    # --- connections and inputs (called by the host) ---------------------------------------------------------

    def is_connected(self, seat: int, now: float) -> bool:
        return self.local_conns[seat] > 0 or self.remote_until[seat] > now

    def seat_presence(self, seat: int, *, local_delta: int = 0, remote_until: float | None = None) -> None:
        self.local_conns[seat] += local_delta
        if remote_until is not None:
            self.remote_until[seat] = remote_until
        now = time.monotonic()
        if self.is_connected(seat, now):
            self.disconnected_since[seat] = None
            self.ever_connected[seat] = True
        elif self.disconnected_since[seat] is None:
            self.disconnected_since[seat] = now

    def leave(self, seat: int) -> None:
        """The player gave their seat up: removed at the next tick, as if their grace period had run out."""
        if not self.removed[seat] and seat not in self.leaving:
            self.leaving.append(seat)

    def queue_input(self, seat: int, seq: int, parsed: Any, raw: Any) -> bool:
        """False for a stale or repeated sequence number (ignored); inputs apply at the next tick, in order."""
        if self.phase == FINISHED:
            # Over: the final snapshot told the client so, and inputs still in flight (or sent while the result is
            # being saved) are dropped without a word, not answered one input_rejected each.
            return True
        if seq <= self.last_seq[seat] or self.removed[seat]:
            return False
        self.last_seq[seat] = seq
        self.pending.append((seat, seq, parsed, raw))
        return True

    # --- the tick ---------------------------------------------------------------------------------------------

    def run_one_step(self, now: float) -> Frame | None:
        """Advance the match by one tick at monotonic time `now`; returns the snapshot to send, if any."""
        if self.phase == WAITING:
            self._step_waiting(now)
        elif self.phase == COUNTDOWN:
            self._apply_inputs()
            self._expire_grace(now)
            self.countdown_left -= 1
            if self.countdown_left <= 0:
                self.phase = RUNNING
        elif self.phase == RUNNING:
            self._apply_inputs()
            self._expire_grace(now)
            if not self.game.is_finished(self.state):
                self.events.extend(self.game.step(self.state, self.settings.dt))
                self.steps += 1
        if self.phase in (COUNTDOWN, RUNNING) and self.game.is_finished(self.state):
            self.phase = FINISHED
        if self.phase == WAITING and self.stats.ticks % WAITING_SNAPSHOT_EVERY:
            return None
        message = self.snapshot_message(now)
        return Frame(message, droppable="events" not in message)

    def _step_waiting(self, now: float) -> None:
        self.pending.clear()
        present = [self.is_connected(seat, now) for seat in range(self.seats)]
        if not all(present) and now < self.join_deadline:
            return
        if not all(present):
            if sum(present) < self.settings.min_players:
                return  # run() cancels the match
            for seat, here in enumerate(present):
                if not here:
                    self._remove(seat)
        self.phase = COUNTDOWN
        self.countdown_left = max(1, round(self.settings.countdown_seconds * self.settings.tick_rate))
        self.started_wall = time.time()
        self.host.spawn(database_sync_to_async(services.match_start)(match_id=self.match_id))

    def _apply_inputs(self) -> None:
        for seat, seq, parsed, raw in self.pending:
            if self.removed[seat]:
                continue
            self.game.apply_input(self.state, seat, parsed)
            self.acks[seat] = seq
            self.log.append(log_entry(self.steps, seat, raw))
        self.pending.clear()

    def _expire_grace(self, now: float) -> None:
        for seat in self.leaving:
            if not self.removed[seat]:
                self._remove(seat)
        self.leaving.clear()
        grace = self.settings.reconnect_grace_seconds
        for seat, since in enumerate(self.disconnected_since):
            if since is not None and not self.removed[seat] and now - since > grace:
                self._remove(seat)

    def _remove(self, seat: int) -> None:
        self.removed[seat] = True
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
            "connected": [self.is_connected(seat, now) for seat in range(self.seats)],
            "removed": self.removed[:],
            "state": self.game.snapshot(self.state),
        }
        if self.phase == COUNTDOWN:
            message["countdown"] = round(self.countdown_left / self.settings.tick_rate, 2)
        if self.phase == WAITING:
            message["join_deadline_in"] = round(max(0.0, self.join_deadline - now), 1)
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
        period = 1.0 / self.settings.tick_rate
        next_at = time.monotonic()
        while self.phase != FINISHED:
            now = time.monotonic()
            if not self.lease_is_safe(now):
                self.stats.fenced += 1
                await asyncio.sleep(period / 2)
                next_at = time.monotonic()
                continue
            lateness = now - next_at
            if lateness > period / 2:
                self.stats.late_ticks += 1
            self.stats.max_lateness_ms = max(self.stats.max_lateness_ms, lateness * 1000)
            frame = self.run_one_step(now)
            if frame is not None:
                await self.host.publish(self.match_id, frame)
            spent = (time.monotonic() - now) * 1000
            self.stats.ticks += 1
            self.stats.total_step_ms += spent
            self.stats.max_step_ms = max(self.stats.max_step_ms, spent)
            if self.phase == WAITING and now >= self.join_deadline:
                await self._cancel("players_missing")
                return
            next_at += period
            delay = next_at - time.monotonic()
            if delay < -MAX_CATCH_UP_TICKS * period:
                self.stats.skipped += 1
                next_at = time.monotonic()
                delay = 0
            await asyncio.sleep(max(0.0, delay))
        await self._finish()

    async def _with_db_retries(self, call, **kwargs):
        # PostgreSQL away for a moment must not lose a result: keep trying while the lease (and checkpoint) is kept.
        for attempt in range(60):
            try:
                return await database_sync_to_async(call)(**kwargs)
            except DatabaseError:
                log.warning("match %s: database unavailable, retrying (%s)", self.match_id, attempt + 1)
                await asyncio.sleep(min(5.0, 0.25 * 2**attempt))
        raise RuntimeError(f"match {self.match_id}: could not reach the database")

    async def _finish(self) -> None:
        self.finishing = True
        result = self.game.result(self.state)
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
                await self.host.publish(self.match_id, Frame(message, droppable=True))
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

    def renewal(self) -> Renewal:
        """This match's part of the host's renewal round: the lease, a checkpoint and the new log entries."""
        if self.finishing or not self.host.store.keeps_checkpoints:
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
        }
        return Renewal(match_id=self.match_id, checkpoint=data, new_log_entries=self.log[self.log_flushed :])

    def renewed(self, renewal: Renewal) -> None:
        if renewal.checkpoint is not None:
            self.log_flushed = renewal.checkpoint["log_len"]
