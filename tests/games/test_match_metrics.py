"""A match socket in the metrics: counted open while it is, its messages, and the close code it was sent."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from games.engine import protocol
from gameserver import metrics
from gameserver.closecodes import CloseCode
from tests.games.conftest import connect, create_match


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def pong_match(quick_games, alice, bob):
    return await database_sync_to_async(create_match)("pong-quick", [alice, bob])


@pytest.mark.django_db(transaction=True)
async def test_a_match_socket_is_counted_open_its_messages_and_its_rate_limit_close(engine_host, pong_match, alice):
    open_before = sample("gameserver_sockets_open", kind="match")
    in_before = sample("gameserver_ws_messages_received_total", kind="match")
    out_before = sample("gameserver_ws_messages_sent_total", kind="match")
    closes_before = sample("gameserver_ws_closes_total", code=str(CloseCode.RATE_LIMITED))
    a = await connect(alice, pong_match.pk)
    assert (await a.receive())["type"] == "welcome"
    assert sample("gameserver_sockets_open", kind="match") == open_before + 1
    assert sample("gameserver_ws_messages_sent_total", kind="match") >= out_before + 1
    assert sample("gameserver_ws_sent_bytes_total", kind="match") > 0
    for _ in range(int(protocol.RATE_BURST) + protocol.MAX_RATE_VIOLATIONS + 10):
        await a.send({"type": "ping"})
    assert await a.closed_with() == CloseCode.RATE_LIMITED
    assert sample("gameserver_ws_messages_received_total", kind="match") >= in_before + protocol.RATE_BURST
    assert sample("gameserver_ws_closes_total", code=str(CloseCode.RATE_LIMITED)) == closes_before + 1
    await a.close()
    assert sample("gameserver_sockets_open", kind="match") == open_before
