"""The link between processes: who relays what, and the typed messages (messages.py) that go between them.

Players connected to a process that does not run their match are served by a relay: it forwards their inputs to the
owner and fans out the owner's snapshots, which cross once per tick per match as a single Redis PUBLISH on the
"relay" channel layer (channels-redis' RedisPubSubChannelLayer), and only while some relay is listening. This module
is the transport of that: the process's own channel, one ordered queue of everything a relay tells owners, the
groups a process joins (gs.m<id> to relay a match, gs.c<id> to own one), and the bookkeeping of both sides. What a
message means is decided by the host (host.py), which registers one handler per message kind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from games.engine import messages
from games.engine.control import control_group, relay_group
from games.engine.outage import RedisHealth

log = logging.getLogger("games.engine.host")

# A relay's heartbeat (Here) and a seat change count as "listening" for this long: an owner publishes a match's
# snapshots only while some relay listened within this window.
PRESENCE_TTL_SECONDS = 2.0
# A relay publish waits at most this long (a Redis that does not answer must not hold the tick loop).
RELAY_SEND_TIMEOUT_SECONDS = 0.5
# How long a relay lets messages for owners gather before it publishes them (_send_to_owners_loop).
RELAY_BATCH_SECONDS = 0.003
# After a failed publish to an owner, wait this long before sending what must not be lost (seat changes, leaves).
RESEND_AFTER_SECONDS = 0.5

Handler = Callable[[Any], Awaitable[None]]


class RelayLink:
    def __init__(self, layer: Any, health: RedisHealth) -> None:
        self.layer = layer
        self.health = health
        self.proc = ""
        # Relay side: match -> the owner's process channel, as last read; seats given up here, repeated in every
        # heartbeat until the match is no longer relayed (a one-off Leave lost to a Redis outage must not leave a
        # ghost seat that keeps the match going).
        self.relayed: dict[int, str | None] = {}
        self.left: dict[int, set[int]] = {}
        # Owner side: match -> relay process -> until when it listens for snapshots.
        self.listeners: dict[int, dict[str, float]] = {}
        self.handlers: dict[type, Handler] = {}
        self.refused_payloads = 0
        self._to_owners: asyncio.Queue[tuple[str, messages.RelayMessage]] = asyncio.Queue()
        self._pending_discard: set[str] = set()  # groups we could not leave yet (Redis away)

    async def open(self, spawn: Callable) -> None:
        self.proc = await self.layer.new_channel("gs.proc.")
        spawn(self._receive_loop())
        spawn(self._send_to_owners_loop())

    # --- relay side ----------------------------------------------------------------------------------------------

    def tell_owner(self, mid: int, message: messages.RelayMessage) -> None:
        """Everything a relay says to a match's owner goes through one queue, sent in order by one task
        (_send_to_owners_loop); synchronous, so that sockets can call it from the server's read callback."""
        owner = self.relayed.get(mid)
        if owner:
            self._to_owners.put_nowait((owner, message))

    def gave_up(self, mid: int, seat: int) -> None:
        self.left.setdefault(mid, set()).add(seat)
        self.tell_owner(mid, messages.Leave(mid, seat))

    def announce(self, mid: int, seats: set[int]) -> None:
        """Heartbeat of a relay to the owner: I listen for snapshots, these seats are here, these were given up."""
        left = self.left.get(mid, set())
        self.tell_owner(mid, messages.Here(mid, self.proc, sorted(seats - left), sorted(left)))

    async def start_relaying(self, mid: int, owner: str | None) -> None:
        self.relayed[mid] = owner
        try:
            await self.layer.group_add(relay_group(mid), self.proc)
        except BaseException:
            self.relayed.pop(mid, None)
            self.left.pop(mid, None)
            raise
        self._pending_discard.discard(relay_group(mid))

    async def stop_relaying(self, mid: int) -> set[int]:
        """No longer relayed here; returns the seats given up here meanwhile (still given up)."""
        self.relayed.pop(mid, None)
        left = self.left.pop(mid, set())
        await self.leave_group(relay_group(mid))
        return left

    # --- owner side ------------------------------------------------------------------------------------------------

    def listened(self, mid: int, proc: str, now: float) -> None:
        self.listeners.setdefault(mid, {})[proc] = now + PRESENCE_TTL_SECONDS

    async def start_owning(self, mid: int) -> None:
        await self.health.contained("join control group", self.layer.group_add(control_group(mid), self.proc))

    async def stop_owning(self, mid: int) -> None:
        self.listeners.pop(mid, None)
        await self.leave_group(control_group(mid))

    async def publish_snapshot(self, mid: int, message: dict[str, Any]) -> None:
        """To the relays of an owned match, if any listened lately. Called from the tick loop: an error or a silent
        Redis costs relayed players this tick, nothing more."""
        listeners = self.listeners.get(mid)
        if not listeners or self.health.is_down:
            return
        now = time.monotonic()
        for proc, until in list(listeners.items()):
            if until < now:
                del listeners[proc]
        if listeners:
            await self.health.contained("relay publish", self._publish_in_time(mid, message))

    async def _publish_in_time(self, mid: int, message: dict[str, Any]) -> None:
        # asyncio.timeout rather than wait_for: wait_for makes a task of every call, once per match per tick here.
        async with asyncio.timeout(RELAY_SEND_TIMEOUT_SECONDS):
            await self.to_relays(mid, messages.Snapshot(mid, message))

    # --- both --------------------------------------------------------------------------------------------------------

    def to_relays(self, mid: int, message: messages.RelayMessage) -> Awaitable[None]:
        """To every process relaying the match."""
        return self.layer.group_send(relay_group(mid), messages.to_layer(message))

    async def leave_group(self, group: str) -> None:
        if not await self.health.contained("leave group", self.layer.group_discard(group, self.proc)):
            self._pending_discard.add(group)

    async def retry_leaving(self, still_needed: Callable[[int], bool]) -> None:
        """After an outage: leave the groups we could not."""
        for group in list(self._pending_discard):
            # The layer forgot the group when the discard failed; join and leave it again to unsubscribe for real.
            mid = int(group[len("gs.m") :])  # relay_group / control_group: "gs.m<id>", "gs.c<id>"
            if still_needed(mid):
                self._pending_discard.discard(group)
                continue
            contained = self.health.contained
            if await contained("leave group", self.layer.group_add(group, self.proc)) and await contained(
                "leave group", self.layer.group_discard(group, self.proc)
            ):
                self._pending_discard.discard(group)

    @property
    def has_leftovers(self) -> bool:
        return bool(self._pending_discard)

    async def _send_to_owners_loop(self) -> None:
        """Everything queued since the last publish goes out as one envelope per owner, in order. One publish (and
        one round trip) per relayed input could not keep up: at 2 x 600 players with every match split across both
        processes, inputs waited seconds in this queue."""
        while True:
            owner, message = await self._to_owners.get()
            # A moment for more to queue: relayed inputs arrive one socket read at a time, and each publish costs the
            # relay and the owner a Redis round trip's CPU. A few ms of latency for relayed players buy several inputs
            # per publish (docs/benchmarks.md, "Players on two processes").
            await asyncio.sleep(RELAY_BATCH_SECONDS)
            batches: dict[str, list[messages.RelayMessage]] = {owner: [message]}
            while not self._to_owners.empty():
                owner, message = self._to_owners.get_nowait()
                batches.setdefault(owner, []).append(message)
            for owner, batch in batches.items():
                if not await self.health.contained("relay to owner", self.layer.send(owner, messages.to_layer(*batch))):
                    # Inputs are dropped (the player sees them refused by the next snapshots' acks); seat changes and
                    # leaves are kept and sent again, in order, once Redis answers: nobody stays seated who left.
                    kept = [m for m in batch if isinstance(m, (messages.SeatChange, messages.Leave))]
                    await asyncio.sleep(RESEND_AFTER_SECONDS)
                    for message in kept:
                        self._to_owners.put_nowait((owner, message))

    async def _receive_loop(self) -> None:
        while True:
            try:
                received = await self.layer.receive(self.proc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.health.layer_error("relay receive", exc)
                await asyncio.sleep(RESEND_AFTER_SECONDS)
                continue
            await self.on_payload(received)

    async def on_payload(self, payload: dict[str, Any]) -> None:
        """One channel-layer message from another process (ours or a group's): checked, then handled in order."""
        try:
            received = messages.from_layer(payload)
        except messages.RelayMessageError as exc:
            self.refused_payloads += 1
            if self.refused_payloads in (1, 10, 100) or self.refused_payloads % 1000 == 0:
                log.error("relay payload refused (%s so far): %s", self.refused_payloads, exc)
            return
        for message in received:
            try:
                await self.handlers[type(message)](message)
            except Exception:
                log.exception("match %s: handling relay message %s failed", message.match_id, type(message).__name__)
