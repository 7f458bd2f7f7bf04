"""Leases, checkpoints and journals, on the real Redis, on two Redis nodes of the test's own (engine keys sharded by
match id) and in memory: exclusive ownership, fencing, loss of Redis data, a node down."""

from __future__ import annotations

import uuid

import pytest

from games.engine.journal import Written
from games.engine.store import MemoryStore, RedisStore, Renewal, export_log, log_entry


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """Two redis-servers of this module's own, empty on restart."""
    from tests.games.conftest import redis_nodes

    with redis_nodes(lambda index: tmp_path_factory.mktemp(f"redis-node-{index}")) as nodes:
        yield nodes


@pytest.fixture(params=["memory", "redis", "two-nodes"])
async def store(request):
    if request.param == "memory":
        store = MemoryStore()
    elif request.param == "redis":
        store = RedisStore(request.getfixturevalue("real_redis_url"), prefix=f"t{uuid.uuid4().hex[:8]}")
    else:
        store = RedisStore([node.url for node in request.getfixturevalue("two_nodes")], prefix=f"t{uuid.uuid4().hex[:8]}")
    yield store
    await store.close()


async def forget_everything(url: str, prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def checkpoint(log_len: int) -> dict:
    return {"state": {"x": log_len}, "log_len": log_len}


async def test_only_one_process_holds_a_lease(store):
    assert await store.acquire(1, "proc-a")
    assert not await store.acquire(1, "proc-b")
    assert await store.owner_of(1) == "proc-a"


async def test_checkpoint_and_log_round_trip(store):
    await store.acquire(1, "a")
    await store.renew("a", [Renewal(1, checkpoint(2), [log_entry(0, 0, {"dy": 1}), log_entry(1, 1, None)])])
    await store.renew("a", [Renewal(1, checkpoint(3), [log_entry(2, 0, {"dy": -1})])])
    loaded = await store.load(1)
    assert loaded.data["state"] == {"x": 3}
    assert loaded.log == [[0, 0, {"dy": 1}], [1, 1, None], [2, 0, {"dy": -1}]]


async def test_a_process_that_lost_its_lease_cannot_write_checkpoints(store):
    await store.acquire(1, "a")
    await store.renew("a", [Renewal(1, checkpoint(1), [log_entry(0, 0, {})])])
    await store.release(1, "a", clear=False)
    assert await store.acquire(1, "b")
    assert await store.renew("a", [Renewal(1, checkpoint(5), [log_entry(9, 9, {})] * 4)]) == [False]
    loaded = await store.load(1)
    assert loaded.data["log_len"] == 1 and loaded.log == [[0, 0, {}]]


async def test_release_with_clear_forgets_the_match(store):
    await store.acquire(1, "a")
    await store.renew("a", [Renewal(1, checkpoint(1), [log_entry(0, 0, {})])])
    await store.release(1, "a", clear=True)
    assert await store.load(1) is None and await store.owner_of(1) is None
    assert not await store.has_checkpoint(1)


async def test_vanished_leases_are_taken_again_in_one_call_unless_someone_else_holds_them(store):
    for match_id in (1, 2, 3):
        assert await store.acquire(match_id, "a")
    await store.renew("a", [Renewal(1, checkpoint(1), [log_entry(0, 0, {})])])
    # 1 and 2 vanish (what expiry or a Redis restart does); 3 is taken by another process meanwhile.
    await store.release(1, "a", clear=False)
    await store.release(2, "a", clear=True)
    await store.release(3, "a", clear=True)
    assert await store.acquire(3, "b")
    assert await store.reacquire("a", [1, 2, 3]) == [(True, True), (True, False), (False, False)]
    assert [await store.owner_of(m) for m in (1, 2, 3)] == ["a", "a", "b"]
    assert await store.reacquire("a", [1]) == [(True, True)]  # our own lease: still ours


async def test_release_by_a_non_owner_does_nothing(store):
    await store.acquire(1, "a")
    await store.release(1, "b", clear=True)
    assert await store.owner_of(1) == "a"


@pytest.mark.django_db(transaction=True)
async def test_owner_takes_its_lease_back_after_redis_lost_everything(real_redis_url, quick_games, alice, bob, settings):
    """Redis keeps nothing on disk here: after a restart the owner re-acquires and rewrites the whole log."""
    from channels.db import database_sync_to_async

    from games import selectors
    from games.engine.host import MatchHost
    from games.engine.runner import MatchRunner
    from tests.games.conftest import create_match

    match = await database_sync_to_async(create_match)("pong-quick", [alice, bob])
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = RedisStore(real_redis_url, prefix=prefix)
    host = MatchHost(store=store, relay=None, handover_on_sigterm=False)
    host.proc = "proc-a"
    info = await database_sync_to_async(selectors.match_info)(match_id=match.pk)
    assert await store.acquire(match.pk, "proc-a")
    runner = MatchRunner(host, info, None)
    host.runners[match.pk] = runner
    runner.log.extend([log_entry(0, 0, {"dy": 1}), log_entry(0, 1, {"dy": -1})])
    await host.run_maintenance()
    await forget_everything(real_redis_url, prefix)  # what a Redis restart does to us
    runner.log.append(log_entry(1, 0, {"dy": 0}))
    await host.run_maintenance()  # renewal fails, lease re-acquired
    await host.run_maintenance()  # checkpoint rewritten
    assert host.runners[match.pk] is runner
    loaded = await store.load(match.pk)
    assert loaded.log == export_log(runner.log) == [[0, 0, {"dy": 1}], [0, 1, {"dy": -1}], [1, 0, {"dy": 0}]]
    await store.release(match.pk, "proc-a", clear=True)
    await store.close()


async def test_relayed_messages_queued_together_go_to_their_owner_as_one_envelope_in_order():
    """A relay's inputs leave in one publish per owner for everything queued meanwhile, and the owner unpacks the
    envelope into the same messages in the same order."""
    import asyncio

    from games.engine import messages
    from games.engine.host import MatchHost

    class Relay:
        def __init__(self):
            self.sent = []
            self.inbox: asyncio.Queue = asyncio.Queue()

        async def send(self, channel, message):
            self.sent.append((channel, message))

        async def receive(self, channel):
            return await self.inbox.get()

    relay = Relay()
    link = MatchHost(store=MemoryStore(), relay=relay, handover_on_sigterm=False).link
    for seq in (1, 2, 3):
        link._to_owners.put_nowait(("owner-a", messages.Input(7, 0, seq, {})))
    link._to_owners.put_nowait(("owner-b", messages.Leave(8, 1)))
    sender = asyncio.create_task(link._send_to_owners_loop())
    await asyncio.sleep(0.05)
    sender.cancel()
    assert [(owner, messages.from_layer(payload)) for owner, payload in relay.sent] == [
        ("owner-a", [messages.Input(7, 0, q, {}) for q in (1, 2, 3)]),
        ("owner-b", [messages.Leave(8, 1)]),
    ]

    handled = []

    async def on_input(message):
        handled.append(message.seq)

    link.handlers[messages.Input] = on_input
    receiver = asyncio.create_task(link._receive_loop())
    relay.inbox.put_nowait(relay.sent[0][1])
    relay.inbox.put_nowait(messages.to_layer(messages.Input(7, 0, 4, {})))
    await asyncio.sleep(0.05)
    receiver.cancel()
    assert handled == [1, 2, 3, 4]


@pytest.mark.django_db(transaction=True)
async def test_a_relay_that_missed_the_end_of_its_match_tells_its_sockets_when_it_finds_the_lease_free(quick_games, alice, bob):
    """Pub/sub keeps nothing: after a Redis outage the owner's "end" can go out before the relay's subscriber is back.
    The relay's next takeover attempt finds the lease free and the match over, and sends its sockets the stored end."""
    import asyncio

    from channels.db import database_sync_to_async

    from games import selectors, services
    from games.engine.host import MatchHost
    from gameserver.closecodes import CloseCode
    from tests.games.conftest import create_match

    match = await database_sync_to_async(create_match)("pong-quick", [alice, bob])
    await database_sync_to_async(services.match_cancel)(match_id=match.pk, reason="admin", stop_running=False)
    info = await database_sync_to_async(selectors.match_info)(match_id=match.pk)

    class Relay:
        async def group_add(self, group, channel):
            pass

        async def group_discard(self, group, channel):
            pass

    class Socket:
        """A match socket as the host sees it (fanout.Connection), its own Outlet."""

        match_id, seat = match.pk, 1
        deltas, snapshot_n = False, None

        def __init__(self):
            self.info, self.sent, self.closed_with, self.out = info, [], None, self

        def send(self, frame):
            self.sent.append(frame.message)

        def close(self, code):
            self.closed_with = code

    host = MatchHost(store=MemoryStore(), relay=Relay(), handover_on_sigterm=False)
    host.proc = "proc-relay"
    socket = Socket()
    host.link.relayed[match.pk] = "proc-gone"
    host.sockets.add(socket)
    await host._try_take_over(match.pk)
    for _ in range(100):
        if socket.closed_with is not None:
            break
        await asyncio.sleep(0.01)
    assert [m["type"] for m in socket.sent] == ["match_end"] and socket.sent[0]["reason"] == "admin"
    assert socket.closed_with == CloseCode.MATCH_OVER
    assert match.pk not in host.runners


@pytest.mark.django_db(transaction=True)
async def test_a_running_match_with_no_owner_and_no_checkpoint_is_cancelled_by_its_relays(quick_games, alice, bob):
    """Its owner died while Redis had lost its data: nothing to resume from, and never started again from tick 0. The
    relays wait ORPHAN_CANCEL_SECONDS (an owner that is alive takes its lease back well before), then cancel it."""
    from channels.db import database_sync_to_async

    from games import services
    from games.engine import host as host_module
    from games.engine.host import MatchHost
    from games.models import Match
    from tests.games.conftest import create_match

    match = await database_sync_to_async(create_match)("pong-quick", [alice, bob])
    await database_sync_to_async(services.match_start)(match_id=match.pk)
    host = MatchHost(store=MemoryStore(), relay=None, handover_on_sigterm=False)
    mid, t0 = match.pk, 1000.0

    await host._cancel_if_orphaned(mid, None, t0)
    await host._cancel_if_orphaned(mid, "gs.proc.back", t0 + 5)  # an owner showed up: the clock starts again
    await host._cancel_if_orphaned(mid, None, t0 + 6)
    await host._cancel_if_orphaned(mid, None, t0 + 6 + host_module.ORPHAN_CANCEL_SECONDS - 0.1)
    assert (await Match.objects.aget(pk=mid)).status == Match.Status.RUNNING

    await host._cancel_if_orphaned(mid, None, t0 + 6 + host_module.ORPHAN_CANCEL_SECONDS)
    cancelled = await Match.objects.aget(pk=mid)
    assert (cancelled.status, cancelled.end_reason) == (Match.Status.CANCELLED, "server_lost")


@pytest.mark.django_db(transaction=True)
async def test_relays_do_not_count_an_orphan_while_redis_is_away_or_just_back(quick_games, alice, bob):
    from channels.db import database_sync_to_async

    from games import services
    from games.engine import host as host_module
    from games.engine.host import MatchHost
    from games.models import Match
    from tests.games.conftest import create_match

    match = await database_sync_to_async(create_match)("pong-quick", [alice, bob])
    await database_sync_to_async(services.match_start)(match_id=match.pk)
    host = MatchHost(store=MemoryStore(), relay=None, handover_on_sigterm=False)
    mid, t0 = match.pk, 1000.0
    host.health.back_at = t0  # Redis just came back: live owners get TAKEOVER_GRACE_SECONDS to take their leases
    await host._cancel_if_orphaned(mid, None, t0 + 0.5)
    await host._cancel_if_orphaned(mid, None, t0 + host_module.TAKEOVER_GRACE_SECONDS - 0.1)
    assert mid not in host._orphaned_since
    await host._cancel_if_orphaned(mid, None, t0 + host_module.TAKEOVER_GRACE_SECONDS)
    await host._cancel_if_orphaned(mid, None, t0 + host_module.TAKEOVER_GRACE_SECONDS + host_module.ORPHAN_CANCEL_SECONDS)
    assert (await Match.objects.aget(pk=mid)).end_reason == "server_lost"


def journal_of(nodes, prefix: str, match_id: int) -> list[bytes]:
    """The match's journal as stored, read from the node its id picks."""
    return nodes[match_id % len(nodes)].client().lrange(f"{prefix}:jrnl:{match_id}", 0, -1)


async def test_engine_keys_shard_by_match_id_and_a_node_down_fails_only_its_matches(two_nodes):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = RedisStore([node.url for node in two_nodes], prefix=prefix)
    for match_id in (1, 2, 3, 4):
        assert await store.acquire(match_id, "a")
    assert await store.renew("a", [Renewal(m, {**checkpoint(0), "jn": 0}) for m in (1, 2, 3, 4)]) == [True] * 4
    assert await store.append_journal("a", [(m, [b"[1,null,[],[]]"]) for m in (1, 2, 3, 4)]) == [Written.OK] * 4
    for index, node in enumerate(two_nodes):
        keys = {key.decode() for key in node.client().scan_iter(f"{prefix}:*")}
        mine = [m for m in (1, 2, 3, 4) if m % 2 == index]
        assert keys == {f"{prefix}:{kind}:{m}" for m in mine for kind in ("lease", "ckpt", "jrnl")}

    two_nodes[1].stop()
    try:
        written = await store.append_journal("a", [(m, [b"[2,null,[],[]]"]) for m in (1, 2, 3, 4)])
        assert written == [Written.UNREACHABLE, Written.OK, Written.UNREACHABLE, Written.OK]
        assert len(journal_of(two_nodes, prefix, 2)) == 2
    finally:
        two_nodes[1].start()
    await store.close()


async def test_journal_records_kept_through_an_outage_are_written_in_order_when_redis_is_back(two_nodes):
    """Node 1 stops (match 1 lives there) while match 2's node stays up; the writer keeps match 1's records and
    writes them, in order and after the older ones, once the node is back and the lease is taken again."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = RedisStore([node.url for node in two_nodes], prefix=prefix)
    for match_id in (1, 2):
        assert await store.acquire(match_id, "a")
    flush = store.journal.submit("a", 1, [b"[1,null,[],[]]"])
    store.journal.submit("a", 2, [b"[1,null,[],[]]"])
    await flush.done
    assert flush.results == {1: Written.OK, 2: Written.OK}
    two_nodes[1].stop()
    try:
        for n in (2, 3, 4):
            flush = store.journal.submit("a", 1, [f"[{n},null,[],[]]".encode()])
            store.journal.submit("a", 2, [f"[{n},null,[],[]]".encode()])
            await flush.done
            assert flush.results == {1: Written.UNREACHABLE, 2: Written.OK}
        assert store.journal.pending(1) == 3 and store.journal.pending(2) == 0
    finally:
        two_nodes[1].start()  # empty: the lease went with it
    assert await store.reacquire("a", [1]) == [(True, False)]
    flush = store.journal.submit("a", 1, [b"[5,null,[],[]]"])
    await flush.done
    assert flush.results == {1: Written.OK}
    assert [record[:2] for record in journal_of(two_nodes, prefix, 1)] == [b"[2", b"[3", b"[4", b"[5"]  # [1 was lost with the node's data
    assert [record[:2] for record in journal_of(two_nodes, prefix, 2)] == [b"[1", b"[2", b"[3", b"[4"]
    await store.close()


async def test_a_long_backlog_is_written_in_one_flush_in_order(two_nodes):
    """After a long outage a match can have thousands of records queued: all go out, in order (the script pushes them
    500 at a time), beside another match's few."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = RedisStore([two_nodes[0].url], prefix=prefix)
    for match_id in (1, 2):
        assert await store.acquire(match_id, "a")
    backlog = [f"[{n},null,[],[]]".encode() for n in range(1, 1201)]
    assert await store.append_journal("a", [(1, backlog), (2, backlog[:3])]) == [Written.OK, Written.OK]
    assert journal_of(two_nodes[:1], prefix, 1) == backlog
    assert journal_of(two_nodes[:1], prefix, 2) == backlog[:3]
    await store.close()


async def test_the_backlog_kept_for_an_unreachable_redis_is_bounded_oldest_first():
    from games.engine.journal import MAX_BACKLOG_RECORDS
    from tests.procs import free_port

    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", prefix="nobody")  # nothing listens there
    records = [f"[{n},null,[],[]]".encode() for n in range(1, MAX_BACKLOG_RECORDS + 101)]
    flush = store.journal.submit("a", 1, records)
    await flush.done
    assert flush.results == {1: Written.UNREACHABLE}
    assert store.journal.pending(1) == MAX_BACKLOG_RECORDS
    store.journal.forget(1)  # the match ended here: nothing more is kept for it
    assert store.journal.pending(1) == 0
    await store.close()


async def test_a_write_still_in_flight_after_the_owner_released_its_lease_does_not_take_it_back(real_redis_url):
    """A match that ended or was handed over: a journal write of its owner that reaches Redis after the release
    neither takes the lease back (a successor could not start it for a lease's lifetime) nor recreates keys."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = RedisStore(real_redis_url, prefix=prefix)
    assert await store.acquire(1, "a") and await store.acquire(2, "a")
    await store.release(1, "a", clear=True)
    await forget_everything(real_redis_url, f"{prefix}:lease")  # lease 2 expired: nobody holds it, no release mark
    written = await store.append_journal("a", [(1, [b"[9,null,[],[]]"]), (2, [b"[9,null,[],[]]"])])
    assert written == [Written.LOST, Written.RETAKEN_EMPTY]
    assert await store.owner_of(1) is None and await store.load(1) is None
    assert await store.acquire(1, "b")
    assert await store.owner_of(2) == "a"
    await store.close()
