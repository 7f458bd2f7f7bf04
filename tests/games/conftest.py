"""Fixtures for match sessions: quick variants of the built-in games, sockets, and a clean engine host per test."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from games import services
from games.engine.host import get_host
from games.rules import GAMES
from games.rules.arena import GAME as ARENA
from games.rules.arena import ArenaGame
from games.rules.pong import GAME as PONG
from games.rules.pong import PongGame

ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(autouse=True)
def _engine_settings(settings):
    settings.ENGINE_HANDOVER_ON_SIGTERM = False
    settings.MATCHMAKER_IN_PROCESS = False  # tests sweep by calling services.match_cancel_overdue


@pytest.fixture
def quick_games():
    """pong-quick: 0.1 s countdown, 0.5 s grace, 2 s limit; arena-quick likewise with 'continue' on abandon."""
    quick = {
        "pong-quick": PongGame(replace(PONG.settings, slug="pong-quick", countdown_seconds=0.1, reconnect_grace_seconds=0.5, match_seconds=2.0)),
        "arena-quick": ArenaGame(replace(ARENA.settings, slug="arena-quick", countdown_seconds=0.1, reconnect_grace_seconds=0.5, match_seconds=2.0)),
        "pong-private": PongGame(replace(PONG.settings, slug="pong-private", countdown_seconds=0.1, spectators_allowed=False)),
    }
    GAMES.update(quick)
    yield quick
    for slug in quick:
        GAMES.pop(slug, None)


@pytest.fixture
async def engine_host():
    host = get_host()
    yield host
    await host.stop()


def create_match(game: str, users, **kwargs):
    return services.match_create(game=game, users=users, **kwargs)


@database_sync_to_async
def token_header(user):
    key = Token.objects.get_or_create(user=user)[0].key
    return (b"authorization", f"Token {key}".encode())


def as_message(decoded):
    """A server message as an object: protocol v2's compact delta [n, patch(, events)] becomes
    {"type": "delta", "n", "base": n - 1, "patch"(, "events")}, so that tests read every message by its "type"."""
    if type(decoded) is not list:
        return decoded
    message = {"type": "delta", "n": decoded[0], "base": decoded[0] - 1, "patch": decoded[1]}
    if len(decoded) > 2:
        message["events"] = decoded[2]
    return message


class Client:
    """A match socket speaking JSON, with helpers to read until a message type arrives."""

    def __init__(self, communicator: WebsocketCommunicator):
        self.comm = communicator

    async def send(self, message) -> None:
        await self.comm.send_to(text_data=json.dumps(message) if not isinstance(message, str) else message)

    async def receive(self, timeout: float = 3.0) -> dict:
        output = await self.comm.receive_output(timeout)
        if output["type"] == "websocket.close":
            return {"type": "__closed__", "code": output.get("code")}
        if output.get("bytes") is not None:
            import msgpack

            return as_message(msgpack.unpackb(output["bytes"], raw=False, strict_map_key=False))
        return as_message(json.loads(output["text"]))

    async def until(self, predicate, timeout: float = 5.0, limit: int = 1000) -> dict:
        for _ in range(limit):
            message = await self.receive(timeout)
            if predicate(message):
                return message
            if message["type"] == "__closed__":
                raise AssertionError(f"closed with {message['code']} while waiting")
        raise AssertionError("no matching message")

    async def closed_with(self, timeout: float = 5.0) -> int:
        for _ in range(2000):
            message = await self.receive(timeout)
            if message["type"] == "__closed__":
                return message["code"]
        raise AssertionError("socket did not close")

    async def close(self) -> None:
        await self.comm.disconnect()


async def connect(user, match_id: int, *, subprotocols=None, path=None) -> Client:
    from gameserver.asgi import application

    headers = [ORIGIN]
    if user is not None:
        headers.append(await token_header(user))
    comm = WebsocketCommunicator(application, path or f"/ws/matches/{match_id}/", headers=headers, subprotocols=subprotocols)
    connected, _ = await comm.connect()
    assert connected
    return Client(comm)


@contextlib.contextmanager
def redis_nodes(directory_for, count: int = 2):
    """`count` redis-servers of the test's own (test_redis_faults.OwnRedis, empty on restart), each in the directory
    `directory_for(index)` gives; stopped afterwards."""
    from tests.games.test_redis_faults import OwnRedis

    nodes = [OwnRedis(directory_for(index), persistent=False) for index in range(count)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()

