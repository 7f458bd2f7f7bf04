"""The objects every tick and every input read keep their attributes where CPython reads them fastest.

CPython 3.11 stores an instance's attributes in a compact inline array, read by one indexed load, only while its
class has fewer than 30 attribute names; from the 30th on, every instance gets a hash-table dict of its own. The
match runner crossed that line (41 names) and a process of 1,000 players spent 8-9% more CPU for it
(docs/benchmarks.md, "The runner's attributes"). These tests fail when a hot class crosses it again.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from games.engine.runner import MatchRunner
from tests.games.conftest import connect, create_match

# Attribute names of a class from which on CPython 3.11 gives its instances a dict each (measured: four attributes of
# objects with 29 names read in 62 ns, with 30 names in 99 ns).
INLINE_NAMES_LIMIT = 30


def test_the_match_runner_keeps_its_attributes_in_slots():
    assert "__dict__" not in dir(MatchRunner), "MatchRunner must not grow an instance dict: add new names to __slots__"
    assert len(MatchRunner.__slots__) == len(set(MatchRunner.__slots__))


@pytest.mark.django_db(transaction=True)
async def test_a_connected_match_consumer_keeps_its_attributes_inline(engine_host, quick_games, alice, bob):
    match = await database_sync_to_async(create_match)("pong-quick", [alice, bob])
    a = await connect(alice, match.pk, subprotocols=["gs.v2.json"])
    b = await connect(bob, match.pk)
    await a.receive()
    await b.receive()
    await a.send({"type": "input", "seq": 1, "input": {"dy": 1}})
    await a.send({"type": "ping", "t": 1})
    await a.until(lambda m: m["type"] == "pong")
    consumers = list(engine_host.sockets.of(match.pk))
    assert all(consumer.seat is not None and consumer.serving for consumer in consumers)
    assert len(consumers) == 2
    for consumer in consumers:
        # Those in the instance dict (Channels' and BaseConsumer's; MatchConsumer's own are slots), and `direct`,
        # which a direct socket adds and this test's socket (through ASGI) does not.
        names = sorted({*vars(consumer), "direct"})
        assert len(names) < INLINE_NAMES_LIMIT, (
            f"MatchConsumer has {len(names)} names in its instance dict ({names}): at {INLINE_NAMES_LIMIT} CPython 3.11 gives each "
            "instance a dict of its own; move some into an object of their own or into MatchConsumer.__slots__"
        )
    for client in (a, b):
        await client.close()
