"""The per-process match host: which matches this process runs (ownership), which it relays, and its sockets.

Each running match has one authoritative tick loop, in the process that holds its lease (store.py). That process
sends snapshots straight to its local sockets (fanout.py). Players connected to other processes are served by relays,
which forward their inputs to the owner and fan out the owner's snapshots (relay.py, with the typed messages of
messages.py). Relays also try to take the lease over, so a match whose owner died resumes in another process about a
second later, from its last checkpoint plus the journal of every tick since (journal.py): nothing acknowledged is
lost. docs/architecture.md explains the choices.

This module is the ownership job and the entry points: sockets attach, detach, send inputs and leave here; the
2 Hz maintenance round renews leases and checkpoints, takes over matches whose owner is gone, and cancels orphans;
SIGTERM hands every owned match over. Redis being away is contained where it happens (outage.py).

An owner publishes a tick only while its lease is certainly still its own (fencing: see MatchRunner.lease_is_safe),
and stops a match at once when told to from outside (control.py: an admin's cancel, a deadline sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Coroutine
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from games import selectors, services
from games.engine import live, messages
from games.engine.fanout import Connection, LocalSockets
from games.engine.outage import TAKEOVER_GRACE_SECONDS, RedisHealth
from games.engine.protocol import Frame
from games.engine.relay import PRESENCE_TTL_SECONDS, RelayLink
from games.engine.runner import MatchRunner
from games.engine.store import LEASE_SAFE_SECONDS, MemoryStore, RedisStore
from games.rules.base import InputError
from gameserver.closecodes import CloseCode
from gameserver.logs import log_context
from gameserver.metrics import HANDOVERS, LEASE_TAKEOVERS, LEASES_LOST

__all__ = ["Connection", "MatchHost", "get_host", "local_hosts", "TAKEOVER_GRACE_SECONDS"]

log = logging.getLogger(__name__)

# Renewals (for matches not ticking: waiting, saving their result), relays' heartbeats and takeover attempts. Four
# rounds per lease TTL; a relay notices a dead owner's expired lease within a round (docs/architecture.md).
MAINTENANCE_SECONDS = 0.25
# With the journal a checkpoint only bounds what a successor replays: one a second. Without it (ENGINE_JOURNAL off)
# the checkpoint is all a successor has: every round.
CHECKPOINT_EVERY_ROUNDS = 4
# Relays' heartbeats (Here) stay at every 0.5 s: PRESENCE_TTL_SECONDS allows for it, and relayed matches pay for each.
HEARTBEAT_EVERY_ROUNDS = 2
HANDOVER_TIMEOUT_SECONDS = 3.0
# A running match with no owner and no checkpoint (its owner died while Redis lost its data) cannot be resumed
# without starting it again: relays cancel it after this long instead.
ORPHAN_CANCEL_SECONDS = 10.0
# Every this many maintenance rounds, cancel matches past their deadline (services.match_cancel_overdue).
SWEEP_EVERY_ROUNDS = 20


class MatchHost:
    def __init__(self, *, store: Any, relay: Any, handover_on_sigterm: bool) -> None:
        self.store = store
        self.handover_on_sigterm = handover_on_sigterm
        self.health = RedisHealth()
        self.link = RelayLink(relay, self.health) if relay is not None else None
        self.proc = ""
        self.runners: dict[int, MatchRunner] = {}
        self.sockets = LocalSockets()
        self.closing = False
        self._locks: dict[int, list] = {}  # match -> [lock, holders and waiters]; see _match_lock
        self._tasks: set[asyncio.Task] = set()
        self._started: asyncio.Future | None = None
        self._rounds = 0
        self._pending_release: set[int] = set()  # ended matches whose keys could not be deleted yet
        self._orphaned_since: dict[int, float] = {}
        if self.link is not None:
            self.link.handlers.update({
                messages.Snapshot: self._on_snapshot,
                messages.End: self._on_end,
                messages.Stop: self._on_stop,
                messages.Kick: self._on_kick,
                messages.Moved: self._on_moved,
                messages.Input: self._on_input,
                messages.SeatChange: self._on_seat_change,
                messages.Leave: self._on_leave,
                messages.Here: self._on_here,
            })
        # The live-match console's messages (control.py): by the relay layer with Redis, else handle_control.
        self.control_handlers = {
            messages.Finish: self._on_finish,
            messages.Remove: self._on_remove,
            messages.Notice: self._on_notice,
        }
        if self.link is not None:
            self.link.handlers.update(self.control_handlers)
        self._tick_times = live.TickTimes()

    @property
    def relayed(self) -> dict[int, str | None]:
        """Matches this process relays -> their owner's process channel, as last read."""
        return self.link.relayed if self.link is not None else {}

    # --- life cycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            if self.link is not None:
                await self.link.open(self.spawn)
                self.proc = self.link.proc
            else:
                self.proc = f"local.{uuid.uuid4().hex}"
            self.spawn(self._maintenance_loop())
            if self.handover_on_sigterm:
                self._install_sigterm_handover()
            self._started.set_result(True)
        await self._started

    def spawn(self, coro: Coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine task failed", exc_info=task.exception())

    async def stop(self) -> None:
        """Stop every task of this host (tests; the server process just exits)."""
        for runner in self.runners.values():
            if runner.task:
                runner.task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        live.forget_local(self.proc)
        await self.store.close()

    @contextlib.asynccontextmanager
    async def _match_lock(self, mid: int):
        """One match's ownership decisions, one at a time. The lock is dropped when nobody holds or awaits it, so
        that a long-running process does not keep one per match it ever saw."""
        entry = self._locks.get(mid)
        if entry is None:
            entry = self._locks[mid] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[mid]

    def may_tick_without_lease(self, now: float) -> bool:
        return self.health.may_tick_without_lease(now)

    # --- sockets -----------------------------------------------------------------------------------------------

    async def attach(self, conn: Connection) -> None:
        """A socket joined its match: make sure the match runs here or is relayed, then count the seat."""
        await self.start()
        mid = conn.match_id
        async with self._match_lock(mid):
            runner = self.runners.get(mid)
            if runner is None and mid not in self.relayed:
                runner = await self._try_own(mid, conn.info)
                if runner is None and self.link is not None:
                    await self.link.start_relaying(mid, await self.store.owner_of(mid))
                    self.link.announce(mid, self.sockets.seats(mid))
            # Added after the ownership decision: a runner created above counted the sockets already here.
            self.sockets.add(conn)
            if runner is not None and conn.seat is not None:
                runner.seat_presence(conn.seat, local_delta=1)
        if runner is not None:
            if conn.seat is not None:
                await self._claim_seat(mid, conn.seat, keep=conn)
            conn.out.send(Frame(runner.snapshot_message(time.monotonic(), take_events=False)))
        elif mid in self.relayed:
            if conn.seat is not None:
                await self._claim_seat(mid, conn.seat, keep=conn)
                self.link.tell_owner(mid, messages.SeatChange(mid, conn.seat, True, self.proc))
        else:
            # Nobody runs it and we could not start it: it has just ended.
            end = await database_sync_to_async(selectors.match_end_message)(match_id=mid)
            conn.out.send(Frame(end))
            conn.out.close(CloseCode.MATCH_OVER)

    async def detach(self, conn: Connection) -> None:
        mid = conn.match_id
        if not self.sockets.discard(conn):
            return
        runner = self.runners.get(mid)
        if runner is not None:
            if conn.seat is not None:
                runner.seat_presence(conn.seat, local_delta=-1)
        elif mid in self.relayed:
            if conn.seat is not None and conn.seat not in self.sockets.seats(mid):
                self.link.tell_owner(mid, messages.SeatChange(mid, conn.seat, False, self.proc))
            if mid not in self.sockets:
                self._orphaned_since.pop(mid, None)
                await self.link.stop_relaying(mid)

    # Synchronous, so that a socket can call them from the server's read callback (gameserver/directws.py).

    def submit_input(self, conn: Connection, seq: int, parsed: Any, raw: Any) -> bool:
        """Queue a player's input with the match's owner; False when it was stale, repeated or too late."""
        runner = self.runners.get(conn.match_id)
        if runner is not None:
            return runner.queue_input(conn.seat, seq, parsed, raw)
        if conn.match_id in self.relayed:
            self.link.tell_owner(conn.match_id, messages.Input(conn.match_id, conn.seat, seq, raw))
            return True
        return False

    def leave(self, conn: Connection) -> None:
        runner = self.runners.get(conn.match_id)
        if runner is not None:
            runner.leave(conn.seat)
        elif conn.match_id in self.relayed:
            self.link.gave_up(conn.match_id, conn.seat)

    async def _claim_seat(self, mid: int, seat: int, *, keep: Connection) -> None:
        """A seat is played from one socket: an older socket for it, here or elsewhere, is closed with 4011."""
        self.sockets.replace(mid, seat, keep=keep)
        if self.link is not None:
            await self.health.contained("kick", self.link.to_relays(mid, messages.Kick(mid, seat, self.proc)))

    # --- snapshots and ends out -------------------------------------------------------------------------------

    def publish(self, mid: int, frame: Frame) -> Awaitable[None] | None:
        """A tick's snapshot of an owned match: to the sockets here at once; to the relays that listen for it by the
        awaitable returned, None when none does (most matches: no coroutine to make and await, every tick)."""
        self.sockets.fan_out(mid, frame)
        if self.link is not None and self.link.listeners.get(mid):
            return self.link.publish_snapshot(mid, frame.message)
        return None

    async def match_ended(self, mid: int, end: dict[str, Any]) -> None:
        # Everything here runs whatever Redis does: the runner and its lease must not outlive the match.
        self.runners.pop(mid, None)
        self.sockets.end(mid, end)
        if self.link is not None:
            await self.health.contained("match end to relays", self.link.to_relays(mid, messages.End(mid, end)))
        if not await self.health.contained("release", self.store.release(mid, self.proc, clear=True)):
            self._pending_release.add(mid)  # retried when Redis is back (the lease itself expires on its own)
        if self.link is not None:
            await self.link.stop_owning(mid)

    async def stop_match(self, mid: int, end: dict[str, Any]) -> None:
        """The match was ended from outside its loop (control.py): stop the loop if it runs here, and send
        match_end and close 4013 to this process's sockets of it (the owner also tells the relays)."""
        runner = self.runners.get(mid)
        if runner is not None and not runner.finishing:
            runner.finishing = True
            if runner.task:
                runner.task.cancel()
            log.info("match %s: stopped from outside (%s)", mid, end.get("reason"))
            await self.match_ended(mid, end)
        elif runner is None:
            self.sockets.end(mid, end)

    async def _end_relayed(self, mid: int) -> None:
        end = await database_sync_to_async(selectors.match_end_message)(match_id=mid)
        log.info("match %s: ended while its end message was lost on the way here; telling our sockets", mid)
        self.sockets.end(mid, end)

    # --- messages from other processes (relay.py decodes and checks them) ---------------------------------------

    # Relay side: what the owner (or anyone ending the match) tells the processes that relay it.

    async def _on_snapshot(self, message: messages.Snapshot) -> None:
        if message.match_id in self.relayed:
            self.sockets.fan_out(message.match_id, Frame(message.message))

    async def _on_end(self, message: messages.End) -> None:
        self.sockets.end(message.match_id, message.message)

    async def _on_stop(self, message: messages.Stop) -> None:
        await self.stop_match(message.match_id, message.message)

    async def _on_kick(self, message: messages.Kick) -> None:
        if message.keep != self.proc:
            self.sockets.replace(message.match_id, message.seat)

    async def _on_moved(self, message: messages.Moved) -> None:
        if message.match_id in self.relayed:
            await self._try_take_over(message.match_id)

    # The live-match console (control.py): to the owner and the relays alike.

    async def handle_control(self, message: messages.RelayMessage) -> None:
        """A console message without Redis (control.py calls this host directly)."""
        await self.control_handlers[type(message)](message)

    async def _on_finish(self, message: messages.Finish) -> None:
        runner = self.runners.get(message.match_id)
        if runner is None or runner.finishing:
            return
        if runner.phase == "waiting":  # no play yet, so no result to record: cancelled instead
            await database_sync_to_async(services.match_cancel)(match_id=message.match_id, reason="cancelled_by_admin")
            return
        log.info("match %s: ended by an operator (%s)", message.match_id, message.reason)
        runner.end_now(message.reason)

    async def _on_remove(self, message: messages.Remove) -> None:
        runner = self._owned(message.match_id, message.seat)
        if runner is not None:
            log.info("match %s: seat %s kicked by an operator", message.match_id, message.seat)
            runner.leave(message.seat)
        for conn in [c for c in self.sockets.of(message.match_id) if c.seat == message.seat]:
            conn.out.close(CloseCode.KICKED)

    async def _on_notice(self, message: messages.Notice) -> None:
        frame = Frame({"type": "notice", "text": message.text})
        for conn in list(self.sockets.of(message.match_id)):
            conn.out.send(frame)

    # Owner side: what relays tell the process that runs the match (ignored by any other process).

    def _owned(self, mid: int, seat: int) -> MatchRunner | None:
        """The runner of a match we own, if the seat exists in it (a rogue or confused process may name any)."""
        runner = self.runners.get(mid)
        return runner if runner is not None and seat < runner.seats else None

    async def _on_input(self, message: messages.Input) -> None:
        runner = self._owned(message.match_id, message.seat)
        if runner is None:
            return
        try:
            parsed = runner.game.parse_input(message.input)
        except InputError:
            return  # the relay validated it already; a mismatch means a rogue sender
        runner.queue_input(message.seat, message.seq, parsed, message.input)

    async def _on_seat_change(self, message: messages.SeatChange) -> None:
        runner = self._owned(message.match_id, message.seat)
        if runner is None:
            return
        if message.connected:
            self.sockets.replace(message.match_id, message.seat)
        now = time.monotonic()
        runner.seat_presence(message.seat, remote_until=now + PRESENCE_TTL_SECONDS if message.connected else 0.0)
        self.link.listened(message.match_id, message.proc, now)

    async def _on_leave(self, message: messages.Leave) -> None:
        runner = self._owned(message.match_id, message.seat)
        if runner is not None:
            runner.leave(message.seat)

    async def _on_here(self, message: messages.Here) -> None:
        runner = self.runners.get(message.match_id)
        if runner is None:
            return
        now = time.monotonic()
        self.link.listened(message.match_id, message.proc, now)
        for seat in message.seats:
            if seat < runner.seats:
                runner.seat_presence(seat, remote_until=now + PRESENCE_TTL_SECONDS)
        for seat in message.left:  # idempotent: the runner ignores a seat already leaving or gone
            if seat < runner.seats:
                runner.leave(seat)

    # --- ownership: leases, takeovers ----------------------------------------------------------------------------

    async def _try_own(self, mid: int, info: selectors.MatchInfo) -> MatchRunner | None:
        asked_at = time.monotonic()
        if not await self.store.acquire(mid, self.proc):
            return None
        fresh = await database_sync_to_async(selectors.match_info)(match_id=mid)
        if fresh is None or fresh.status not in ("waiting", "running"):
            await self.store.release(mid, self.proc, clear=True)
            if mid in self.relayed:
                # We relay a match that has ended: its owner's one-off End never reached us (pub/sub keeps nothing,
                # and our subscriber reconnects a moment later than our publisher after a Redis outage).
                self.spawn(self._end_relayed(mid))
            return None
        checkpoint = await self.store.load(mid)
        if checkpoint is None and fresh.status == "running":
            # Play began, yet there is no checkpoint: Redis lost it (restarted empty) and its owner, alive, will write
            # it again; or the owner died meanwhile (then a relay cancels it: ORPHAN_CANCEL_SECONDS). Never start a
            # running match again from tick 0.
            await self.store.release(mid, self.proc, clear=False)
            return None
        runner = MatchRunner(self, fresh, checkpoint)
        runner.lease_confirmed(asked_at + LEASE_SAFE_SECONDS)
        for conn in self.sockets.of(mid):
            if conn.seat is not None:
                runner.seat_presence(conn.seat, local_delta=1)
        self.runners[mid] = runner
        self._orphaned_since.pop(mid, None)
        if self.link is not None:
            if mid in self.link.relayed:
                for seat in await self.link.stop_relaying(mid):  # given up here while we relayed: still given up
                    runner.leave(seat)
            await self.link.start_owning(mid)
        runner.task = self.spawn(self._run(runner))
        if checkpoint is None:
            log.info("match %s: running here (new)", mid)
        else:
            LEASE_TAKEOVERS.inc()
            log.info("match %s: running here (from checkpoint), tick %s after %s journal records", mid, runner.steps, len(checkpoint.journal))
        return runner

    async def _run(self, runner: MatchRunner) -> None:
        try:
            await runner.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("match %s: tick loop failed; cancelling the match", runner.match_id)
            await database_sync_to_async(services.match_cancel)(
                match_id=runner.match_id, reason="server_error", stop_running=False
            )
            end = await database_sync_to_async(selectors.match_end_message)(match_id=runner.match_id)
            await self.match_ended(runner.match_id, end)

    async def _lose(self, runner: MatchRunner) -> None:
        """Our lease was taken (we stalled past its expiry): stop ticking, and relay to the new owner instead."""
        mid = runner.match_id
        log.warning("match %s: lease lost; stopping the local loop", mid)
        LEASES_LOST.inc()
        if runner.task:
            runner.task.cancel()
        self.runners.pop(mid, None)
        if self.link is not None:
            await self.link.stop_owning(mid)
            if mid in self.sockets:
                await self.link.start_relaying(mid, await self.store.owner_of(mid))
                self.link.announce(mid, self.sockets.seats(mid))

    async def _try_take_over(self, mid: int) -> None:
        if not self.health.takeovers_allowed(time.monotonic()):
            return
        async with self._match_lock(mid):
            if mid in self.relayed and mid in self.sockets:
                conn = next(iter(self.sockets.of(mid)))
                await self._try_own(mid, conn.info)

    # --- the 2 Hz round: leases, checkpoints, heartbeats, takeovers -----------------------------------------------

    async def _maintenance_loop(self) -> None:
        log_context(match_id=None, user_id=None)  # created from the first socket's task: its lines are no one's
        while True:
            await asyncio.sleep(MAINTENANCE_SECONDS)
            try:
                await self.run_maintenance()
            except Exception as exc:
                self._redis_unreachable(exc, time.monotonic())

    def _redis_unreachable(self, exc: BaseException, now: float) -> None:
        self.health.failed(exc, now)
        # Relays cannot tell the owner who is connected meanwhile: a seat connected elsewhere when the outage began
        # counts as still there (a player who left is told to the owner when Redis is back: relay.py resends).
        for runner in self.runners.values():
            for seat, until in enumerate(runner.remote_until):
                if until >= self.health.down_since:
                    runner.seat_presence(seat, remote_until=now + PRESENCE_TTL_SECONDS)

    async def run_maintenance(self) -> None:
        self._rounds += 1
        if self._rounds % SWEEP_EVERY_ROUNDS == 0:
            self.spawn(self._sweep_overdue())  # beside the renewals: a slow database must not delay them
        if self._rounds % live.LIVE_EVERY_ROUNDS == 0:
            self.spawn(self.publish_live())  # beside the renewals too
        checkpoint = self.store.journal is None or self._rounds % CHECKPOINT_EVERY_ROUNDS == 0
        round_started = time.monotonic()
        # A ticking match's journal renews its lease every tick: the round renews only the others (waiting, saving a
        # result, or whose journal writes failed), and writes checkpoints when due.
        runners, renewals = [], []
        for runner in list(self.runners.values()):
            renewal = runner.renewal(checkpoint=checkpoint)
            if renewal.checkpoint is not None or runner.journal_renewed_at < round_started - MAINTENANCE_SECONDS:
                runners.append(runner)
                renewals.append(renewal)
        try:
            results = await self.store.renew(self.proc, renewals) if renewals else []
            if not renewals:
                await self.store.ping()  # owning nothing (or only journaled matches), it must notice outages too
        except Exception as exc:
            self._redis_unreachable(exc, round_started)
            return
        self.health.answered(round_started)
        await self._retry_leftovers()
        vanished = []
        for runner, renewal, kept in zip(runners, renewals, results, strict=True):
            if kept:
                runner.renewed(renewal)
                runner.lease_confirmed(round_started + LEASE_SAFE_SECONDS)
            elif self.runners.get(runner.match_id) is runner:
                vanished.append(runner)
        if vanished:
            retaken_at = time.monotonic()
            # A lease that vanished (Redis restarted: it keeps nothing on disk; or this process fell behind past the
            # TTL) is taken again, and the next round rewrites the checkpoint; only a lease that someone else holds
            # means we stalled and lost. One round trip for all of them: taking them one by one, a process that
            # had fallen behind fell further behind with each, until it lost them all again.
            taken = await self.store.reacquire(self.proc, [runner.match_id for runner in vanished])
            for runner, (acquired, has_checkpoint) in zip(vanished, taken, strict=True):
                if self.runners.get(runner.match_id) is not runner:
                    continue
                if acquired:
                    runner.lease_confirmed(retaken_at + LEASE_SAFE_SECONDS)
                    if not has_checkpoint:
                        runner.stored_state_lost()  # the log went with it: write all of it again
                    log.warning("match %s: lease was gone (Redis restart, or renewals late); taken again", runner.match_id)
                else:
                    await self._lose(runner)
        for mid in list(self.relayed):
            await self._try_take_over(mid)
            if mid in self.relayed:
                self.link.relayed[mid] = owner = await self.store.owner_of(mid)
                if self._rounds % HEARTBEAT_EVERY_ROUNDS == 0:
                    self.link.announce(mid, self.sockets.seats(mid))
                await self._cancel_if_orphaned(mid, owner, time.monotonic())

    async def publish_live(self) -> None:
        """This process's summary for the live-match console (live.py); a Redis error costs one summary."""
        await self.health.contained("live summary", live.publish(self, live.summary(self, self._tick_times)))

    async def _retry_leftovers(self) -> None:
        """After an outage: delete the keys of matches that ended meanwhile, and leave the groups we could not."""
        for mid in list(self._pending_release):
            if mid in self.runners:
                self._pending_release.discard(mid)
            elif await self.health.contained("release", self.store.release(mid, self.proc, clear=True)):
                self._pending_release.discard(mid)
        if self.link is not None and self.link.has_leftovers:
            await self.link.retry_leaving(lambda mid: mid in self.relayed or mid in self.runners)

    async def _cancel_if_orphaned(self, mid: int, owner: str | None, now: float) -> None:
        """A match nobody owns for ORPHAN_CANCEL_SECONDS while relays wait (no checkpoint to resume) is cancelled."""
        if owner is not None or not self.health.takeovers_allowed(now):
            self._orphaned_since.pop(mid, None)
            return
        since = self._orphaned_since.setdefault(mid, now)
        if now - since >= ORPHAN_CANCEL_SECONDS:
            self._orphaned_since.pop(mid, None)
            log.warning("match %s: no owner and no checkpoint for %.0f s; cancelling it", mid, now - since)
            await database_sync_to_async(services.match_cancel)(match_id=mid, reason="server_lost")

    async def _sweep_overdue(self) -> None:
        """Here too (besides the matchmaker), so that a match nobody ever joins is cancelled without a worker."""
        try:
            await database_sync_to_async(services.match_cancel_overdue)()
        except Exception:
            log.exception("sweeping matches past their deadline failed")

    # --- SIGTERM: hand matches over instead of dropping them ----------------------------------------------------

    def _install_sigterm_handover(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum, frame):
            async def handover_then_exit():
                try:
                    await asyncio.wait_for(self.handover(), HANDOVER_TIMEOUT_SECONDS)
                except Exception:
                    log.exception("handover on SIGTERM failed")
                await asyncio.sleep(settings.SHUTDOWN_DRAIN_SECONDS)  # readiness answers 503 meanwhile (health.py)
                if callable(previous):
                    previous(signum, frame)
                else:
                    raise SystemExit(0)

            loop.call_soon_threadsafe(lambda: self.spawn(handover_then_exit()))

        signal.signal(signal.SIGTERM, on_sigterm)

    async def handover(self) -> None:
        """Checkpoint every match we run, free its lease, and send every socket away with 4010 to reconnect."""
        self.closing = True
        for mid, runner in list(self.runners.items()):
            if runner.finishing:
                continue
            if runner.task:
                runner.task.cancel()
            renewal = runner.renewal()
            self.runners.pop(mid, None)
            await self.health.contained("handover", self.store.renew(self.proc, [renewal]))
            await self.health.contained("handover", self.store.release(mid, self.proc, clear=False))
            if self.link is not None:
                await self.link.stop_owning(mid)
                await self.health.contained("handover", self.link.to_relays(mid, messages.Moved(mid)))
            HANDOVERS.inc()
        for mid in list(self.sockets.matches()):
            for conn in list(self.sockets.of(mid)):
                conn.out.close(CloseCode.SERVER_RESTART)
        log.info("handed over; exiting")


_hosts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MatchHost] = weakref.WeakKeyDictionary()


def local_hosts() -> list[tuple[asyncio.AbstractEventLoop, MatchHost]]:
    """This process's hosts with their running loops (control.py reaches them directly when there is no Redis). A
    server has one; tests run a loop each, and a finished test's closed loop can linger here until collected."""
    return [(loop, host) for loop, host in list(_hosts.items()) if not loop.is_closed()]


def get_host() -> MatchHost:
    """This process's host (one per event loop: tests run a loop each)."""
    loop = asyncio.get_running_loop()
    host = _hosts.get(loop)
    if host is None:
        redis_url = settings.REDIS_URL
        host = MatchHost(
            store=RedisStore(settings.ENGINE_REDIS_URLS, prefix=settings.ENGINE_PREFIX, journal=settings.ENGINE_JOURNAL)
            if redis_url
            else MemoryStore(keep_checkpoints=False),
            relay=get_channel_layer("relay") if redis_url else None,
            handover_on_sigterm=settings.ENGINE_HANDOVER_ON_SIGTERM,
        )
        _hosts[loop] = host
    return host
