"""The per-tick journal on the real Redis: a successor replays it to the dead owner's exact state, a tick is durable
before it is sent, a process that lost its lease can no longer append, and one whose lease merely expired takes it
back with its next write."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest
from channels.db import database_sync_to_async

from games import selectors
from games.engine.host import MatchHost
from games.engine.runner import MatchRunner
from games.engine.store import RedisStore, export_log
from tests.games.conftest import create_match

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

SEATS = 4


async def new_owner(url: str, prefix: str, proc: str, match_id: int, *, checkpoint=None) -> tuple[MatchHost, MatchRunner]:
    """A host of its own (no relay layer) that holds the match's lease, with a runner resumed from `checkpoint`."""
    host = MatchHost(store=RedisStore(url, prefix=prefix), relay=None, handover_on_sigterm=False)
    host.proc = proc
    assert await host.store.acquire(match_id, proc)
    info = await database_sync_to_async(selectors.match_info)(match_id=match_id)
    runner = MatchRunner(host, info, checkpoint)
    runner.lease_confirmed(time.monotonic() + 0.5)
    host.runners[match_id] = runner
    return host, runner


async def expire_lease(url: str, prefix: str, match_id: int) -> None:
    """What the TTL does to the lease of an owner that lagged past it."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    await client.delete(f"{prefix}:lease:{match_id}")
    await client.aclose()


def observable(runner: MatchRunner) -> dict:
    """Everything a successor must reproduce: the rules' state (with its RNG), phase, counters, acks, the input log."""
    return {
        "state": runner.game.to_checkpoint(runner.state),
        "phase": runner.phase,
        "countdown_left": runner.countdown_left,
        "steps": runner.steps,
        "acks": list(runner.acks),
        "removed": list(runner.removed),
        "started_wall": runner.started_wall,
        "log": export_log(runner.log),
        "journal_n": runner.journal_n,
    }


def queue_random_inputs(runner: MatchRunner, rng: random.Random, seqs: list[int]) -> None:
    for seat in range(SEATS):
        if runner.removed[seat] or rng.random() < 0.3:
            continue
        seqs[seat] += 1
        raw = {"dx": rng.uniform(-1, 1), "dy": rng.uniform(-1, 1), "fire": rng.random() < 0.2, "aim": rng.uniform(-3, 3)}
        assert runner.queue_input(seat, seqs[seat], runner.game.parse_input(raw), raw)


@pytest.fixture
async def arena_match(quick_games, alice, bob, carol, django_user_model):
    dave = await database_sync_to_async(django_user_model.objects.create_user)("dave", password="x")
    match = await database_sync_to_async(create_match)("arena-quick", [alice, bob, carol, dave])
    return match.pk


async def test_a_successor_replays_the_journal_to_the_exact_state_and_continues_identically(real_redis_url, arena_match):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    host_a, owner = await new_owner(real_redis_url, prefix, "proc-a", arena_match)
    for seat in range(SEATS):
        owner.seat_presence(seat, local_delta=1)
    rng, seqs = random.Random(7), [0] * SEATS
    clock = time.monotonic()
    for tick in range(36):
        clock += owner.settings.dt
        if tick == 12:
            owner.leave(3)  # removed at the next tick, from the journal on replay
        if tick == 14:
            owner.seat_presence(2, local_delta=-1)  # gone past its 0.5 s grace below: a removal decided by the clock
        if tick == 20:
            clock += 1.0
        queue_random_inputs(owner, rng, seqs)
        owner.run_one_step(clock)
        assert await owner.journal_tick(), f"tick {tick} not durable"
        if tick % 5 == 4:
            await host_a.run_maintenance()  # a checkpoint every 4th round; the journal is trimmed up to it
    assert owner.removed == [False, False, True, True] and owner.phase == "running" and owner.steps > 20

    loaded = await host_a.store.load(arena_match)
    assert loaded.data["jn"] < owner.journal_n, "the last checkpoint must be older than the last tick"
    assert len(loaded.journal) == owner.journal_n - loaded.data["jn"]  # trimmed: nothing before the checkpoint

    # The owner dies here (its lease expires); another process takes over from checkpoint + journal.
    await host_a.store.release(arena_match, "proc-a", clear=False)
    host_b, successor = await new_owner(real_redis_url, prefix, "proc-b", arena_match, checkpoint=loaded)
    assert observable(successor) == observable(owner)
    assert successor.last_seq == seqs

    # From here both get the same inputs: same steps, same RNG draws.
    owner_seqs = list(seqs)
    for seat in (0, 1):
        successor.seat_presence(seat, local_delta=1)  # its players reconnect to it
    for _ in range(5):
        clock += owner.settings.dt
        queue_random_inputs(owner, random.Random(clock), owner_seqs)
        queue_random_inputs(successor, random.Random(clock), seqs)
        owner.run_one_step(clock)
        successor.run_one_step(clock)
        assert await successor.journal_tick()
    assert observable(successor) == observable(owner)
    await host_b.store.release(arena_match, "proc-b", clear=True)
    for host in (host_a, host_b):
        await host.stop()


async def playing_owner(url: str, prefix: str, match_id: int) -> tuple[MatchHost, MatchRunner]:
    """new_owner with every seat connected and one tick journaled."""
    host, owner = await new_owner(url, prefix, "proc-a", match_id)
    for seat in range(SEATS):
        owner.seat_presence(seat, local_delta=1)
    owner.run_one_step(time.monotonic())
    assert await owner.journal_tick()
    return host, owner


async def test_a_process_that_lost_its_lease_cannot_journal_and_sends_nothing(real_redis_url, arena_match):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    host_a, owner = await playing_owner(real_redis_url, prefix, arena_match)
    # A stall past the TTL: the lease expired and another process took the match.
    await host_a.store.release(arena_match, "proc-a", clear=False)
    host_b = MatchHost(store=RedisStore(real_redis_url, prefix=prefix), relay=None, handover_on_sigterm=False)
    assert await host_b.store.acquire(arena_match, "proc-b")
    owner.run_one_step(time.monotonic())
    assert not await owner.journal_tick()
    assert not owner.lease_is_safe(time.monotonic())  # fenced: the loop sends nothing more
    loaded = await host_b.store.load(arena_match)
    assert [record[:3] for record in loaded.journal] == [b"[1,"]  # only the record written under the lease
    await host_a.run_maintenance()
    assert arena_match not in host_a.runners  # the next round hands it over
    await host_b.store.release(arena_match, "proc-b", clear=True)
    for host in (host_a, host_b):
        await host.stop()


async def test_a_lease_that_expired_while_the_owner_lagged_is_taken_again_by_its_next_journal_write(real_redis_url, arena_match):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    host, owner = await playing_owner(real_redis_url, prefix, arena_match)
    await expire_lease(real_redis_url, prefix, arena_match)  # nobody took it
    for _ in range(3):
        owner.run_one_step(time.monotonic())
        assert await owner.journal_tick()  # durable: the write took the free lease again
    assert await host.store.owner_of(arena_match) == "proc-a"
    assert owner.needs_checkpoint  # no checkpoint in Redis yet: the next round writes one
    loaded = await host.store.load(arena_match)
    assert loaded.data is None  # replay starts from the seed
    assert [int(record[1:].split(b",")[0]) for record in loaded.journal] == [1, 2, 3, 4]
    host_b = MatchHost(store=RedisStore(real_redis_url, prefix=prefix), relay=None, handover_on_sigterm=False)
    successor = MatchRunner(host_b, owner.info, loaded)
    assert observable(successor) == observable(owner)
    await host.store.release(arena_match, "proc-a", clear=True)
    for h in (host, host_b):
        await h.stop()


class Socket:
    """A match socket as the host sees it (host.Connection): records each snapshot it is sent, and when."""

    deltas = False  # protocol v1: every snapshot whole
    snapshot_n = None

    def __init__(self, match_id: int, seat: int, journal_written: list):
        self.match_id, self.seat, self.journal_written = match_id, seat, journal_written
        self.received: list[tuple[str, int]] = []  # (phase, records durable when it was sent)
        self.out = self  # its own Outlet

    def send(self, frame) -> None:
        self.received.append((frame.message["phase"], len(self.journal_written)))

    def close(self, code: int) -> None:
        pass


async def test_a_tick_is_sent_only_once_its_journal_record_is_durable(arena_match):
    """The journal's Redis call is held back: play starts, but no countdown or running snapshot reaches a socket
    until the records are written; after that every such snapshot follows its record."""
    from games.engine.journal import JournalWriter, Written
    from games.engine.store import MemoryStore

    gate, written = asyncio.Event(), []

    async def append(owner, items):
        await gate.wait()
        written.extend(record for _, records in items for record in records)
        return [Written.OK] * len(items)

    store = MemoryStore()
    store.journal = JournalWriter(append)
    host = MatchHost(store=store, relay=None, handover_on_sigterm=False)
    host.proc = "proc-a"
    info = await database_sync_to_async(selectors.match_info)(match_id=arena_match)
    runner = MatchRunner(host, info, None)
    sockets = [Socket(arena_match, seat, written) for seat in range(SEATS)]
    for socket in sockets:
        host.sockets.add(socket)
        runner.seat_presence(socket.seat, local_delta=1)
    runner.lease_confirmed(time.monotonic() + 60)
    host.runners[arena_match] = runner
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.3)
    assert runner.phase != "waiting"  # play started: its ticks wait for the journal
    assert all(phase == "waiting" for phase, _ in sockets[0].received)
    gate.set()
    await asyncio.sleep(0.3)
    sent = [(phase, durable) for phase, durable in sockets[0].received if phase != "waiting"]
    assert len(sent) >= 3
    # One record per tick from the start on: the i-th of these snapshots left once i records were durable.
    assert all(durable >= i for i, (_, durable) in enumerate(sent, start=1)), sent
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await host.stop()
