"""Spectating: the list of live matches one may watch, and a game's optional spectator delay (spectators see the
match late; players do not wait for anything)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from channels.db import database_sync_to_async

from games import services
from games.engine.delay import DelayedOutlet, DelayLine
from games.engine.protocol import Frame
from games.models import Match
from games.rules import GAMES
from games.rules.pong import GAME as PONG
from games.rules.pong import PongGame
from gameserver.closecodes import CloseCode
from tests.games.conftest import connect, create_match

DELAY = 0.6


@pytest.fixture
def pong_delayed():
    GAMES["pong-delayed"] = PongGame(replace(PONG.settings, slug="pong-delayed", countdown_seconds=0.1, match_seconds=60.0,
                                             spectator_delay_seconds=DELAY))
    yield
    GAMES.pop("pong-delayed", None)


@pytest.mark.django_db
def test_the_watch_list_has_live_matches_of_games_that_allow_spectators(api_as, alice, bob, carol, quick_games):
    running = create_match("pong", [alice, bob])
    services.match_start(match_id=running.pk)
    waiting = create_match("arena", [alice, bob, carol])
    private = create_match("pong-private", [alice, bob])
    over = create_match("pong", [bob, carol])
    services.match_cancel(match_id=over.pk, reason="cancelled_by_admin")
    body = api_as(carol).get("/api/matches/live/").json()
    listed = {m["id"]: m for m in body["results"]}
    assert set(listed) == {running.pk, waiting.pk}
    assert private.pk not in listed
    assert listed[running.pk]["status"] == "running" and listed[waiting.pk]["status"] == "waiting"
    assert [p["username"] for p in listed[running.pk]["players"]] == ["alice", "bob"]
    assert listed[running.pk]["ws_path"] == f"/ws/matches/{running.pk}/"
    assert listed[running.pk]["spectators"] == 0 and listed[running.pk]["spectator_delay_seconds"] == 0
    only_arena = api_as(carol).get("/api/matches/live/", {"game": "arena"}).json()["results"]
    assert [m["id"] for m in only_arena] == [waiting.pk]
    assert api_as(carol).get("/api/matches/live/", {"limit": "0"}).status_code == 400


@pytest.mark.django_db
def test_the_watch_page_loads_its_script(client, alice):
    client.force_login(alice)
    page = client.get("/watch/")
    assert page.status_code == 200 and b"js/pages/watch.js" in page.content


@pytest.mark.django_db(transaction=True)
async def test_spectators_of_a_delayed_game_see_each_tick_late_and_players_do_not_wait(engine_host, pong_delayed, alice,
                                                                                         bob, carol):
    match = await database_sync_to_async(create_match)("pong-delayed", [alice, bob])
    a = await connect(alice, match.pk)
    b = await connect(bob, match.pk)
    watcher = await connect(carol, match.pk)
    welcome = await watcher.receive()
    assert welcome["role"] == "spectator" and welcome["spectator_delay"] == DELAY
    assert "spectator_delay" not in (await a.receive())
    await b.receive()

    seen_by_player: dict[int, float] = {}
    seen_by_watcher: dict[int, float] = {}

    async def read(client, into):
        while True:
            message = await client.receive(timeout=5)
            if message["type"] == "snapshot" and message["phase"] == "running":
                into.setdefault(message["tick"], time.monotonic())
                if len(into) >= 40:
                    return

    await asyncio.gather(read(a, seen_by_player), read(watcher, seen_by_watcher))
    common = sorted(set(seen_by_player) & set(seen_by_watcher))
    assert len(common) >= 10
    lags = [seen_by_watcher[tick] - seen_by_player[tick] for tick in common]
    assert min(lags) >= DELAY - 0.05, lags
    assert max(lags) < DELAY + 0.3, lags
    # What is not the match (a pong) is not delayed.
    sent = time.monotonic()
    await watcher.send({"type": "ping", "t": 1})
    await watcher.until(lambda m: m["type"] == "pong", timeout=2)
    assert time.monotonic() - sent < DELAY / 2

    # The end too comes late, then the close.
    await database_sync_to_async(services.match_cancel)(match_id=match.pk, reason="cancelled_by_admin")
    ended = time.monotonic()
    await a.until(lambda m: m["type"] == "match_end")
    await watcher.until(lambda m: m["type"] == "match_end", timeout=3)
    assert time.monotonic() - ended >= DELAY - 0.05
    assert await watcher.closed_with() == CloseCode.MATCH_OVER
    for client in (a, b, watcher):
        await client.close()
    assert (await Match.objects.aget(pk=match.pk)).status == "cancelled"


class FakeOutlet:
    binary = False
    deltas = True

    def __init__(self) -> None:
        self.sent: list = []
        self.closed = False
        self.snapshot_n = None

    def send(self, frame) -> None:
        self.sent.append(frame.message)

    def close(self, code: int) -> None:
        self.sent.append(code)
        self.closed = True

    def gone(self) -> None:
        self.closed = True


async def test_a_delayed_outlet_keeps_the_order_and_lets_other_messages_and_closes_through_at_once():
    inner = FakeOutlet()
    out = DelayedOutlet(inner, 0.1, DelayLine())
    out.send(Frame([5, {}], stream_n=5))
    out.send(Frame({"type": "notice", "text": "hi"}))
    out.send(Frame([6, {}], stream_n=6))
    assert inner.sent == [{"type": "notice", "text": "hi"}]
    assert out.snapshot_n == 6  # the next delta must fit what is queued, not what was written
    out.snapshot_n = None  # the client asked for a keyframe
    assert inner.snapshot_n is None
    await asyncio.sleep(0.2)
    assert inner.sent[1:] == [[5, {}], [6, {}]]
    out.send(Frame({"type": "snapshot", "tick": 7}))
    out.close(CloseCode.REPLACED)  # not the match's end: at once, and what was queued is dropped
    assert inner.sent[-1] == CloseCode.REPLACED
    await asyncio.sleep(0.2)
    assert inner.sent[-1] == CloseCode.REPLACED and {"type": "snapshot", "tick": 7} not in inner.sent
