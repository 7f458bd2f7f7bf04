"""The per-process match host: which matches this process runs, which it relays, and how the two talk.

Each running match has one authoritative tick loop, in the process that holds its lease (store.py). That process
sends snapshots straight to its local sockets. Players connected to other processes are served by relays: a relay
forwards their inputs to the owner and fans out the owner's snapshots, which cross once per tick per match as a
single Redis PUBLISH on the "relay" channel layer (channels-redis' RedisPubSubChannelLayer), and only while some
relay is listening. Relays also try to take the lease over, so a match whose owner died resumes from its last
checkpoint in another process within a couple of seconds. docs/architecture.md explains the choices.

An owner publishes a tick only while its lease is certainly still its own (fencing: see MatchRunner.lease_is_safe),
and stops a match at once when told to from outside (control.py: an admin's cancel, a deadline sweep).

Redis going away (a restart, a failover, an outage of seconds) is not a reason to stop a match: an error of the
relay layer or of the store is contained where it happens (logged once per outage, never raised into a tick loop or
a socket's handler). While Redis is unreachable nobody can take a lease, so owners keep ticking their local players
and relays wait; when it is back, owners take their vanished leases again and rewrite their checkpoints before any
relay may take over (TAKEOVER_GRACE_SECONDS), and a relay never starts a running match without its checkpoint.
docs/operations.md ("Redis outages") tells operators what players see and what to configure.
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
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any, Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from games import selectors, services
from games.engine import control
from games.engine.control import control_group, relay_group
from games.engine.protocol import Frame
from games.engine.runner import MatchRunner
from games.engine.store import LEASE_SAFE_SECONDS, LEASE_TTL_MS, MemoryStore, RedisStore
from games.rules.base import InputError
from gameserver.ws import CloseCode

log = logging.getLogger(__name__)

# Renewals (for matches not ticking: waiting, saving their result), relays' heartbeats and takeover attempts. Four
# rounds per lease TTL; a relay notices a dead owner's expired lease within a round (docs/architecture.md).
MAINTENANCE_SECONDS = 0.25
# With the journal a checkpoint only bounds what a successor replays: one a second. Without it (ENGINE_JOURNAL off)
# the checkpoint is all a successor has: every round.
CHECKPOINT_EVERY_ROUNDS = 4
# Relays' heartbeats (`here`) stay at every 0.5 s: PRESENCE_TTL_SECONDS allows for it, and relayed matches pay for each.
HEARTBEAT_EVERY_ROUNDS = 2
PRESENCE_TTL_SECONDS = 2.0
HANDOVER_TIMEOUT_SECONDS = 3.0
# While renewals fail because Redis cannot be reached, nobody else can take a lease either: an owner keeps ticking
# its local players as long as its last failed attempt is this recent (a stalled process's is not).
OUTAGE_TICK_SECONDS = 4.0
# After Redis comes back, relays wait this long before taking a match over, so that a live owner takes its lease
# again and rewrites its checkpoint first (one maintenance round, plus a lease's lifetime for slow ones).
TAKEOVER_GRACE_SECONDS = LEASE_TTL_MS / 1000 + 1.0
# A running match with no owner and no checkpoint (its owner died while Redis lost its data) cannot be resumed
# without starting it again: relays cancel it after this long instead.
ORPHAN_CANCEL_SECONDS = 10.0
# A relay publish waits at most this long (a Redis that does not answer must not hold the tick loop).
RELAY_SEND_TIMEOUT_SECONDS = 0.5
# Every this many maintenance rounds, cancel matches past their deadline (services.match_cancel_overdue).
SWEEP_EVERY_ROUNDS = 20


class Connection(Protocol):
    """What the host needs of a match socket (games.consumers.MatchConsumer)."""

    match_id: int
    seat: int | None
    info: selectors.MatchInfo

    def push(self, frame: Frame) -> bool: ...

    async def send_frame(self, frame: Frame) -> None: ...

    async def close_with(self, code: int) -> None: ...


class MatchHost:
    def __init__(self, *, store: Any, relay: Any, handover_on_sigterm: bool) -> None:
        self.store = store
        self.relay = relay
        self.handover_on_sigterm = handover_on_sigterm
        self.proc = ""
        self.runners: dict[int, MatchRunner] = {}
        self.local: dict[int, set[Connection]] = defaultdict(set)
        self.relayed: dict[int, str | None] = {}  # match -> the owner's process channel, as last read
        self.relay_listeners: dict[int, dict[str, float]] = defaultdict(dict)  # owned match -> relay proc -> until
        # Relayed match -> seats whose player gave them up here. Repeated in every heartbeat to the owner until the
        # match is no longer relayed: a one-off "leave" lost to a Redis outage (pub/sub keeps nothing) must not leave
        # a ghost seat that keeps the match going.
        self.relay_left: dict[int, set[int]] = defaultdict(set)
        self.closing = False
        self._locks: dict[int, list] = {}  # match -> [lock, holders and waiters]; see _match_lock
        self._tasks: set[asyncio.Task] = set()
        self._to_owners: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._started: asyncio.Future | None = None
        self._rounds = 0
        # Redis health as this process sees it (maintenance rounds and relay calls): see _redis_unreachable.
        self.redis_down_since: float | None = None
        self.redis_failed_at: float | None = None
        self.redis_back_at = float("-inf")
        self._outage_logged = False
        self._pending_release: set[int] = set()  # ended matches whose keys could not be deleted yet
        self._pending_discard: set[str] = set()  # relay-layer groups we could not leave yet
        self._orphaned_since: dict[int, float] = {}

    # --- life cycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            if self.relay is not None:
                self.proc = await self.relay.new_channel("gs.proc.")
                self.spawn(self._receive_loop())
                self.spawn(self._send_to_owners_loop())
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

    # --- sockets -----------------------------------------------------------------------------------------------

    async def attach(self, conn: Connection) -> None:
        """A socket joined its match: make sure the match runs here or is relayed, then count the seat."""
        await self.start()
        mid = conn.match_id
        async with self._match_lock(mid):
            runner = self.runners.get(mid)
            if runner is None and mid not in self.relayed:
                runner = await self._try_own(mid, conn.info)
                if runner is None and self.relay is not None:
                    await self._become_relay(mid)
            # Added after the ownership decision: a runner created above counted the sockets already here.
            self.local[mid].add(conn)
            if runner is not None and conn.seat is not None:
                runner.seat_presence(conn.seat, local_delta=1)
        if runner is not None:
            if conn.seat is not None:
                await self._claim_seat(mid, conn.seat, keep=conn)
            await conn.send_frame(Frame(runner.snapshot_message(time.monotonic(), take_events=False)))
        elif mid in self.relayed:
            if conn.seat is not None:
                await self._claim_seat(mid, conn.seat, keep=conn)
                self._tell_owner(mid, {"type": "seat", "m": mid, "s": conn.seat, "c": True, "p": self.proc})
        else:
            # Nobody runs it and we could not start it: it has just ended.
            end = await database_sync_to_async(selectors.match_end_message)(match_id=mid)
            await conn.send_frame(Frame(end))
            await conn.close_with(CloseCode.MATCH_OVER)

    async def detach(self, conn: Connection) -> None:
        mid = conn.match_id
        conns = self.local.get(mid)
        if conns is None or conn not in conns:
            return
        conns.discard(conn)
        if not conns:
            del self.local[mid]
        runner = self.runners.get(mid)
        if runner is not None:
            if conn.seat is not None:
                runner.seat_presence(conn.seat, local_delta=-1)
        elif mid in self.relayed:
            if conn.seat is not None and not any(c.seat == conn.seat for c in self.local.get(mid, ())):
                self._tell_owner(mid, {"type": "seat", "m": mid, "s": conn.seat, "c": False, "p": self.proc})
            if mid not in self.local:
                del self.relayed[mid]
                self.relay_left.pop(mid, None)
                self._orphaned_since.pop(mid, None)
                await self._leave_group(relay_group(mid))

    # Synchronous, so that a socket can call them from the server's read callback (gameserver/directws.py).

    def submit_input(self, conn: Connection, seq: int, parsed: Any, raw: Any) -> bool:
        """Queue a player's input with the match's owner; False when it was stale, repeated or too late."""
        runner = self.runners.get(conn.match_id)
        if runner is not None:
            return runner.queue_input(conn.seat, seq, parsed, raw)
        if conn.match_id in self.relayed:
            self._tell_owner(conn.match_id, {"type": "in", "m": conn.match_id, "s": conn.seat, "q": seq, "i": raw})
            return True
        return False

    def leave(self, conn: Connection) -> None:
        runner = self.runners.get(conn.match_id)
        if runner is not None:
            runner.leave(conn.seat)
        elif conn.match_id in self.relayed:
            self.relay_left[conn.match_id].add(conn.seat)
            self._tell_owner(conn.match_id, {"type": "leave", "m": conn.match_id, "s": conn.seat})

    async def _claim_seat(self, mid: int, seat: int, *, keep: Connection | None) -> None:
        """A seat is played from one socket: an older socket for it, here or elsewhere, is closed with 4011."""
        await self._replace_local(mid, seat, keep=keep)
        if self.relay is not None and keep is not None:
            await self._contained("kick", self.relay.group_send(relay_group(mid), {"type": "kick", "m": mid, "s": seat, "keep": self.proc}))

    # --- ownership -------------------------------------------------------------------------------------------

    async def _try_own(self, mid: int, info: selectors.MatchInfo) -> MatchRunner | None:
        asked_at = time.monotonic()
        if not await self.store.acquire(mid, self.proc):
            return None
        fresh = await database_sync_to_async(selectors.match_info)(match_id=mid)
        if fresh is None or fresh.status not in ("waiting", "running"):
            await self.store.release(mid, self.proc, clear=True)
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
        for conn in self.local.get(mid, ()):
            if conn.seat is not None:
                runner.seat_presence(conn.seat, local_delta=1)
        self.runners[mid] = runner
        self._orphaned_since.pop(mid, None)
        for seat in self.relay_left.pop(mid, ()):  # given up here while we relayed: still given up
            runner.leave(seat)
        if mid in self.relayed:
            del self.relayed[mid]
            await self._leave_group(relay_group(mid))
        if self.relay is not None:
            await self._contained("join control group", self.relay.group_add(control_group(mid), self.proc))
        runner.task = self.spawn(self._run(runner))
        if checkpoint is None:
            log.info("match %s: running here (new)", mid)
        else:
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

    async def _become_relay(self, mid: int) -> None:
        try:
            self.relayed[mid] = await self.store.owner_of(mid)
            await self.relay.group_add(relay_group(mid), self.proc)
        except BaseException:
            self.relayed.pop(mid, None)
            self.relay_left.pop(mid, None)
            raise
        self._pending_discard.discard(relay_group(mid))
        self._announce(mid)

    async def _lose(self, runner: MatchRunner) -> None:
        """Our lease was taken (we stalled past its expiry): stop ticking, and relay to the new owner instead."""
        mid = runner.match_id
        log.warning("match %s: lease lost; stopping the local loop", mid)
        if runner.task:
            runner.task.cancel()
        self.runners.pop(mid, None)
        await self._stop_listening_as_owner(mid)
        if self.local.get(mid) and self.relay is not None:
            await self._become_relay(mid)

    async def _stop_listening_as_owner(self, mid: int) -> None:
        if self.relay is not None:
            await self._leave_group(control_group(mid))

    async def match_ended(self, mid: int, end: dict[str, Any]) -> None:
        # Everything here runs whatever Redis does: the runner and its lease must not outlive the match.
        self.runners.pop(mid, None)
        self.relay_listeners.pop(mid, None)
        await self._end_local(mid, end)
        if self.relay is not None:
            await self._contained("match end to relays", self.relay.group_send(relay_group(mid), {"type": "end", "m": mid, "msg": end}))
        if not await self._contained("release", self.store.release(mid, self.proc, clear=True)):
            self._pending_release.add(mid)  # retried when Redis is back (the lease itself expires on its own)
        await self._stop_listening_as_owner(mid)

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
            await self._end_local(mid, end)

    async def _end_local(self, mid: int, end: dict[str, Any]) -> None:
        frame = Frame(end)
        for conn in list(self.local.get(mid, ())):
            await conn.send_frame(frame)
            await conn.close_with(CloseCode.MATCH_OVER)

    async def _replace_local(self, mid: int, seat: int, *, keep: Connection | None = None) -> None:
        for conn in [c for c in self.local.get(mid, ()) if c.seat == seat and c is not keep]:
            await conn.close_with(CloseCode.REPLACED)

    # --- snapshots out ------------------------------------------------------------------------------------------

    async def publish(self, mid: int, frame: Frame) -> None:
        await self._fan_out(mid, frame)
        listeners = self.relay_listeners.get(mid)
        if listeners and self.redis_down_since is None:
            now = time.monotonic()
            for proc, until in list(listeners.items()):
                if until < now:
                    del listeners[proc]
            if listeners:
                # Called from the tick loop: an error or a silent Redis costs relayed players this tick, nothing more.
                await self._contained(
                    "relay publish",
                    asyncio.wait_for(
                        self.relay.group_send(relay_group(mid), {"type": "snap", "m": mid, "msg": frame.message}),
                        RELAY_SEND_TIMEOUT_SECONDS,
                    ),
                )

    async def _fan_out(self, mid: int, frame: Frame) -> None:
        for conn in list(self.local.get(mid, ())):
            try:
                if not conn.push(frame):
                    await conn.send_frame(frame)
            except Exception:  # one broken socket must not stop the others' snapshots
                log.exception("match %s: send failed", mid)

    # --- between processes ------------------------------------------------------------------------------------

    def _tell_owner(self, mid: int, message: dict[str, Any]) -> None:
        """Everything a relay says to a match's owner goes through one queue, sent in order by one task
        (_send_to_owners_loop); synchronous, so that sockets can call it from the server's read callback."""
        owner = self.relayed.get(mid)
        if owner:
            self._to_owners.put_nowait((owner, message))

    async def _send_to_owners_loop(self) -> None:
        """Everything queued since the last publish goes out as one message per owner, in order. One publish (and
        one round trip) per relayed input could not keep up: at 2 x 600 players with every match split across both
        processes, inputs waited seconds in this queue."""
        while True:
            owner, message = await self._to_owners.get()
            batches: dict[str, list[dict[str, Any]]] = {owner: [message]}
            while not self._to_owners.empty():
                owner, message = self._to_owners.get_nowait()
                batches.setdefault(owner, []).append(message)
            for owner, messages in batches.items():
                sent = await self._contained(
                    "relay to owner", self.relay.send(owner, messages[0] if len(messages) == 1 else {"type": "batch", "msgs": messages})
                )
                if not sent:
                    # Inputs are dropped (the player sees them refused by the next snapshots' acks); seat changes and
                    # leaves are kept and sent again, in order, once Redis answers: nobody stays seated who left.
                    kept = [m for m in messages if m["type"] in ("seat", "leave")]
                    await asyncio.sleep(MAINTENANCE_SECONDS)
                    for message in kept:
                        self._to_owners.put_nowait((owner, message))

    def _announce(self, mid: int) -> None:
        """Heartbeat of a relay to the owner: I listen for snapshots, and these seats are connected here."""
        left = self.relay_left.get(mid, set())
        seats = sorted({c.seat for c in self.local.get(mid, ()) if c.seat is not None} - left)
        message = {"type": "here", "m": mid, "p": self.proc, "seats": seats}
        if left:
            message["left"] = sorted(left)
        self._tell_owner(mid, message)

    async def _receive_loop(self) -> None:
        while True:
            try:
                received = await self.relay.receive(self.proc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._layer_error("relay receive", exc)
                await asyncio.sleep(MAINTENANCE_SECONDS)
                continue
            for message in received["msgs"] if received["type"] == "batch" else (received,):
                try:
                    await self._on_relay_message(message)
                except Exception:
                    log.exception("bad relay message %r", message.get("type"))

    async def _on_relay_message(self, message: dict[str, Any]) -> None:
        kind, mid = message["type"], message["m"]
        if kind == "snap":
            if mid in self.relayed:
                await self._fan_out(mid, Frame(message["msg"]))
        elif kind == "end":
            await self._end_local(mid, message["msg"])
        elif kind == control.STOP:
            await self.stop_match(mid, message["msg"])
        elif kind == "kick":
            if message["keep"] != self.proc:
                await self._replace_local(mid, message["s"])
        elif kind == "moved":
            if mid in self.relayed:
                await self._try_take_over(mid)
        else:
            runner = self.runners.get(mid)
            if runner is None:
                return
            now = time.monotonic()
            if kind == "in":
                try:
                    parsed = runner.game.parse_input(message["i"])
                except InputError:
                    return  # the relay validated it already; a mismatch means a rogue sender
                runner.queue_input(message["s"], message["q"], parsed, message["i"])
            elif kind == "seat":
                if message["c"]:
                    await self._replace_local(mid, message["s"])
                runner.seat_presence(message["s"], remote_until=now + PRESENCE_TTL_SECONDS if message["c"] else 0.0)
                self.relay_listeners[mid][message["p"]] = now + PRESENCE_TTL_SECONDS
            elif kind == "leave":
                runner.leave(message["s"])
            elif kind == "here":
                self.relay_listeners[mid][message["p"]] = now + PRESENCE_TTL_SECONDS
                for seat in message["seats"]:
                    runner.seat_presence(seat, remote_until=now + PRESENCE_TTL_SECONDS)
                for seat in message.get("left", ()):  # idempotent: the runner ignores a seat already leaving or gone
                    runner.leave(seat)

    def takeovers_allowed(self, now: float) -> bool:
        """Not while Redis is away, nor just after: a live owner takes its lease back first."""
        return self.redis_down_since is None and now - self.redis_back_at >= TAKEOVER_GRACE_SECONDS

    def may_tick_without_lease(self, now: float) -> bool:
        """An owner whose renewals fail because Redis cannot be reached keeps ticking its local players: nobody can
        take the lease meanwhile. Only while the failures are recent (a process that was paused has none)."""
        return self.redis_failed_at is not None and now - self.redis_failed_at < OUTAGE_TICK_SECONDS

    async def _try_take_over(self, mid: int) -> None:
        if not self.takeovers_allowed(time.monotonic()):
            return
        async with self._match_lock(mid):
            if mid in self.relayed and self.local.get(mid):
                conn = next(iter(self.local[mid]))
                await self._try_own(mid, conn.info)

    # --- Redis errors: contained where they happen ------------------------------------------------------------

    def _layer_error(self, what: str, exc: BaseException) -> None:
        """Logged once per outage (not per tick or per socket); the maintenance round notices the outage's end."""
        if not self._outage_logged:
            self._outage_logged = True
            log.warning("Redis unreachable (%s: %s: %s); matches carry on locally", what, type(exc).__name__, exc)

    async def _contained(self, what: str, awaitable) -> bool:
        try:
            await awaitable
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._layer_error(what, exc)
            return False

    async def _leave_group(self, group: str) -> None:
        if self.relay is not None and not await self._contained("leave group", self.relay.group_discard(group, self.proc)):
            self._pending_discard.add(group)

    async def _retry_leftovers(self) -> None:
        """After an outage: delete the keys of matches that ended meanwhile, and leave the groups we could not."""
        for mid in list(self._pending_release):
            if mid in self.runners:
                self._pending_release.discard(mid)
            elif await self._contained("release", self.store.release(mid, self.proc, clear=True)):
                self._pending_release.discard(mid)
        for group in list(self._pending_discard):
            # The layer forgot the group when the discard failed; join and leave it again to unsubscribe for real.
            mid = int(group[len("gs.m") :])  # relay_group / control_group: "gs.m<id>", "gs.c<id>"
            if mid in self.relayed or mid in self.runners:
                self._pending_discard.discard(group)
                continue
            if await self._contained("leave group", self.relay.group_add(group, self.proc)) and await self._contained(
                "leave group", self.relay.group_discard(group, self.proc)
            ):
                self._pending_discard.discard(group)

    def _redis_unreachable(self, exc: BaseException, now: float) -> None:
        if self.redis_down_since is None:
            self.redis_down_since = now
            self._layer_error("maintenance", exc)
        self.redis_failed_at = now
        # Relays cannot tell the owner who is connected meanwhile: a seat connected elsewhere when the outage began
        # counts as still there (a player who left is told to the owner when Redis is back: _send_to_owners_loop).
        for runner in self.runners.values():
            for seat, until in enumerate(runner.remote_until):
                if until >= self.redis_down_since:
                    runner.seat_presence(seat, remote_until=now + PRESENCE_TTL_SECONDS)

    def _redis_reachable(self, now: float) -> None:
        if self.redis_down_since is not None or self._outage_logged:
            since = self.redis_down_since
            log.warning("Redis reachable again%s", f" after {now - since:.1f} s" if since is not None else "")
            self.redis_back_at = now
        self.redis_down_since = None
        self.redis_failed_at = None
        self._outage_logged = False

    # --- the 2 Hz round: leases, checkpoints, heartbeats, takeovers -----------------------------------------------

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_SECONDS)
            try:
                await self.run_maintenance()
            except Exception as exc:
                self._redis_unreachable(exc, time.monotonic())

    async def run_maintenance(self) -> None:
        self._rounds += 1
        if self._rounds % SWEEP_EVERY_ROUNDS == 0:
            self.spawn(self._sweep_overdue())  # beside the renewals: a slow database must not delay them
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
        self._redis_reachable(round_started)
        if self._pending_release or self._pending_discard:
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
                self.relayed[mid] = owner = await self.store.owner_of(mid)
                if self._rounds % HEARTBEAT_EVERY_ROUNDS == 0:
                    self._announce(mid)
                await self._cancel_if_orphaned(mid, owner, time.monotonic())

    async def _cancel_if_orphaned(self, mid: int, owner: str | None, now: float) -> None:
        """A match nobody owns for ORPHAN_CANCEL_SECONDS while relays wait (no checkpoint to resume) is cancelled."""
        if owner is not None or not self.takeovers_allowed(now):
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
            await self._contained("handover", self.store.renew(self.proc, [renewal]))
            await self._contained("handover", self.store.release(mid, self.proc, clear=False))
            await self._stop_listening_as_owner(mid)
            if self.relay is not None:
                await self._contained("handover", self.relay.group_send(relay_group(mid), {"type": "moved", "m": mid}))
        for conns in list(self.local.values()):
            for conn in list(conns):
                await conn.close_with(CloseCode.SERVER_RESTART)
        log.info("handed over; exiting")


_hosts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MatchHost] = weakref.WeakKeyDictionary()


def local_hosts() -> list[tuple[asyncio.AbstractEventLoop, MatchHost]]:
    """This process's hosts with their loops (control.py reaches them directly when there is no Redis)."""
    return list(_hosts.items())


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
