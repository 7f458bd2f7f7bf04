"""Match sessions over WebSocket: seats, spectators, refusals, inputs and acks, reconnects, bad input, the result."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import msgpack
import pytest
from channels.db import database_sync_to_async

from games.engine import protocol
from games.models import Match
from games.rules import get_game
from games.rules.base import play
from gameserver.closecodes import CloseCode
from lobby.models import RatingChange
from tests.games.conftest import connect, create_match

pytestmark = pytest.mark.django_db(transaction=True)
PROTOCOL_DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


@pytest.fixture
async def pong_match(quick_games, alice, bob):
    return await database_sync_to_async(create_match)("pong-quick", [alice, bob])


async def join_both(match, alice, bob):
    a = await connect(alice, match.pk)
    b = await connect(bob, match.pk)
    for client in (a, b):
        assert (await client.receive())["type"] == "welcome"
    return a, b


def is_running(message):
    return message["type"] == "snapshot" and message["phase"] == "running"


async def test_players_take_their_seats_and_get_a_full_snapshot_first(engine_host, pong_match, alice, bob):
    a = await connect(alice, pong_match.pk)
    welcome = await a.receive()
    assert (welcome["type"], welcome["match"], welcome["game"]) == ("welcome", pong_match.pk, "pong-quick")
    assert (welcome["role"], welcome["seat"], welcome["v"], welcome["encoding"]) == ("player", 0, 1, "json")
    assert (welcome["tick_rate"], welcome["reconnect_grace"]) == (30, 0.5)
    assert [p["username"] for p in welcome["players"]] == ["alice", "bob"]
    first = await a.receive()
    assert first["type"] == "snapshot" and first["full"] is True and first["phase"] == "waiting"
    assert first["connected"] == [True, False]
    b = await connect(bob, pong_match.pk)
    assert (await b.receive())["seat"] == 1
    running = await b.until(is_running)
    assert running["connected"] == [True, True]
    await a.close()
    await b.close()
    # The per-match lock of the ownership decisions is dropped once nobody holds or awaits it.
    assert engine_host._locks == {}


async def test_input_is_acknowledged_in_a_later_snapshot(engine_host, pong_match, alice, bob):
    a, b = await join_both(pong_match, alice, bob)
    await a.until(is_running)
    await a.send({"type": "input", "seq": 1, "input": {"dy": 1}})
    snapshot = await a.until(lambda m: m["type"] == "snapshot" and m["acks"][0] == 1)
    assert snapshot["acks"][1] == 0
    # Acknowledged means applied: the paddle moves down (y grows) from the centre at 300 while bob's stays put.
    later = await a.until(lambda m: m["type"] == "snapshot" and m["tick"] >= snapshot["tick"] + 2)
    assert later["state"]["paddles"][0] > 300.0 and later["state"]["paddles"][1] == 300.0
    await a.close()
    await b.close()


async def test_stale_and_duplicate_inputs_are_ignored_with_an_error(engine_host, pong_match, alice, bob):
    a, b = await join_both(pong_match, alice, bob)
    await a.send({"type": "input", "seq": 5, "input": {"dy": 1}})
    await a.send({"type": "input", "seq": 5, "input": {"dy": -1}})
    error = await a.until(lambda m: m["type"] == "error")
    assert (error["error"], error["seq"]) == ("stale_input", 5)
    await a.send({"type": "input", "seq": 3, "input": {"dy": -1}})
    assert (await a.until(lambda m: m["type"] == "error"))["error"] == "stale_input"
    await a.close()
    await b.close()


@pytest.mark.parametrize(
    "message, code",
    [
        ("not json", "malformed"),
        ("[1, 2]", "malformed"),
        ({"no": "type"}, "missing_type"),
        ({"type": "dance"}, "unknown_type"),
        ({"type": "input", "input": {"dy": 0}}, "bad_seq"),
        ({"type": "input", "seq": "1", "input": {"dy": 0}}, "bad_seq"),
        ({"type": "input", "seq": True, "input": {"dy": 0}}, "bad_seq"),
        ({"type": "input", "seq": -4, "input": {"dy": 0}}, "bad_seq"),
        ({"type": "input", "seq": 2**40, "input": {"dy": 0}}, "bad_seq"),
        ({"type": "input", "seq": 1}, "wrong_type"),
        ({"type": "input", "seq": 1, "input": {}}, "missing_field"),
        ({"type": "input", "seq": 1, "input": {"dy": "up"}}, "wrong_type"),
        ({"type": "input", "seq": 1, "input": {"dy": 7}}, "out_of_range"),
        # NaN and Infinity are not JSON (RFC 8259): the text is malformed. In msgpack they are floats, not_finite.
        ('{"type": "input", "seq": 1, "input": {"dy": NaN}}', "malformed"),
        ('{"type": "input", "seq": 1, "input": {"dy": Infinity}}', "malformed"),
    ],
)
async def test_each_bad_message_gets_a_documented_error(engine_host, pong_match, alice, message, code):
    a = await connect(alice, pong_match.pk)
    await a.send(message)
    error = await a.until(lambda m: m["type"] == "error")
    assert error["error"] == code, error
    assert error["message"]
    assert f"`{code}`" in PROTOCOL_DOC, f"{code} is not in docs/protocol.md"
    await a.close()


def ping_of_size(size: int, t: int) -> str:
    text = json.dumps({"type": "ping", "t": t, "pad": ""})
    return text.replace('"pad": ""', '"pad": "' + "x" * (size - len(text)) + '"')


async def test_a_message_over_4096_bytes_closes_with_4009(engine_host, pong_match, alice):
    a = await connect(alice, pong_match.pk)
    await a.send(ping_of_size(4096, 1))  # docs/protocol.md: at most 4096 bytes a message
    assert (await a.until(lambda m: m["type"] == "pong"))["t"] == 1
    await a.send(ping_of_size(4097, 2))
    assert await a.closed_with() == CloseCode.MESSAGE_TOO_BIG


async def test_a_stream_of_malformed_messages_closes_with_4007_after_20(engine_host, pong_match, alice):
    a = await connect(alice, pong_match.pk)
    for _ in range(20):  # docs/protocol.md: 4007 for over 20
        await a.send("{{{")
    await a.send({"type": "ping", "t": 1})
    assert (await a.until(lambda m: m["type"] == "pong"))["t"] == 1
    await a.send("{{{")
    assert await a.closed_with() == CloseCode.TOO_MANY_ERRORS


async def test_flooding_gets_rate_limited_then_closed_with_4008(engine_host, pong_match, alice):
    a = await connect(alice, pong_match.pk)
    for _ in range(125):  # docs/protocol.md: bursts of 120, then rate_limited errors
        await a.send({"type": "ping"})
    assert (await a.until(lambda m: m["type"] == "error"))["error"] == "rate_limited"
    for _ in range(230):  # over 200 dropped within 10 s: 4008, whatever the few tokens that came back meanwhile
        await a.send({"type": "ping"})
    assert await a.closed_with() == CloseCode.RATE_LIMITED


async def test_ping_is_answered_with_pong(engine_host, pong_match, alice):
    a = await connect(alice, pong_match.pk)
    await a.send({"type": "ping", "t": 123.5})
    pong = await a.until(lambda m: m["type"] == "pong")
    assert pong["t"] == 123.5 and pong["server_time"] > 0
    await a.close()


async def test_spectator_watches_but_cannot_send_inputs(engine_host, pong_match, alice, bob, carol):
    a, b = await join_both(pong_match, alice, bob)
    c = await connect(carol, pong_match.pk)
    welcome = await c.receive()
    assert (welcome["role"], welcome["seat"]) == ("spectator", None)
    await c.until(lambda m: m["type"] == "snapshot")
    await c.send({"type": "input", "seq": 1, "input": {"dy": 1}})
    assert (await c.until(lambda m: m["type"] == "error"))["error"] == "not_a_player"
    for client in (a, b, c):
        await client.close()


async def test_non_player_is_refused_when_spectators_are_not_allowed(engine_host, quick_games, alice, bob, carol):
    match = await database_sync_to_async(create_match)("pong-private", [alice, bob])
    c = await connect(carol, match.pk)
    assert await c.closed_with() == CloseCode.FORBIDDEN


async def test_unknown_match_closes_with_4004(engine_host, alice):
    assert await (await connect(alice, 999999)).closed_with() == CloseCode.NOT_FOUND


async def test_anonymous_socket_closes_with_4001(engine_host, pong_match):
    assert await (await connect(None, pong_match.pk)).closed_with() == CloseCode.UNAUTHENTICATED


async def test_unknown_protocol_version_closes_with_4002(engine_host, pong_match, alice):
    client = await connect(alice, pong_match.pk, subprotocols=["gs.v9.json"])
    assert await client.closed_with() == CloseCode.PROTOCOL_VERSION


async def test_msgpack_subprotocol_gets_binary_frames(engine_host, pong_match, alice):
    client = await connect(alice, pong_match.pk, subprotocols=["gs.v1.msgpack"])
    output = await client.comm.receive_output(3)
    welcome = msgpack.unpackb(output["bytes"], raw=False)
    assert welcome["type"] == "welcome" and welcome["encoding"] == "msgpack"
    await client.comm.send_to(bytes_data=msgpack.packb({"type": "ping", "t": 1}))
    assert (await client.until(lambda m: m["type"] == "pong"))["t"] == 1
    await client.close()


async def test_second_socket_for_a_seat_replaces_the_first_with_4011(engine_host, pong_match, alice):
    first = await connect(alice, pong_match.pk)
    await first.receive()
    second = await connect(alice, pong_match.pk)
    assert (await second.receive())["seat"] == 0
    assert await first.closed_with() == CloseCode.REPLACED
    await second.close()


async def test_reconnect_within_grace_resumes_the_same_seat(engine_host, pong_match, alice, bob):
    a, b = await join_both(pong_match, alice, bob)
    await a.until(is_running)
    await a.close()
    snapshot = await b.until(lambda m: m["type"] == "snapshot" and m["connected"] == [False, True])
    assert snapshot["removed"] == [False, False]
    again = await connect(alice, pong_match.pk)
    assert (await again.receive())["seat"] == 0
    snapshot = await again.until(lambda m: m["type"] == "snapshot")
    assert snapshot["phase"] == "running" and snapshot["connected"] == [True, True]
    await again.close()
    await b.close()


async def test_leaving_past_the_grace_period_forfeits_and_records_once(engine_host, pong_match, alice, bob):
    a, b = await join_both(pong_match, alice, bob)
    await b.until(is_running)
    await a.close()
    end = await b.until(lambda m: m["type"] == "match_end", timeout=5)
    assert end["reason"] == "forfeit" and end["status"] == "finished"
    by_seat = {r["seat"]: r for r in end["results"]}
    assert by_seat[0]["abandoned"] and by_seat[1]["placing"] == 1
    assert await b.closed_with() == CloseCode.MATCH_OVER
    late = await connect(alice, pong_match.pk)
    assert (await late.receive())["type"] == "welcome"
    assert await late.receive() == end  # the recorded result, not a second one
    assert await late.closed_with() == CloseCode.MATCH_OVER
    stored = await database_sync_to_async(Match.objects.get)(pk=pong_match.pk)
    assert (stored.status, stored.end_reason) == ("finished", "forfeit")
    ranks = await database_sync_to_async(lambda: sorted(RatingChange.objects.values_list("user__username", "rank")))()
    assert ranks == [("alice", 3), ("bob", 1)]  # one change each; the leaver ranks below every placing


def arena_input(seq: int, seat: int) -> dict:
    angle = seq * 0.7 + seat
    return {"dx": math.cos(angle), "dy": math.sin(angle), "fire": seq % 3 == 0, "aim": angle % 3}


async def test_finished_match_is_stored_once_and_replays_from_seed_and_log(engine_host, quick_games, alice, bob, carol):
    match = await database_sync_to_async(create_match)("arena-quick", [alice, bob, carol])
    clients = [await connect(user, match.pk) for user in (alice, bob, carol)]
    await clients[0].until(is_running)
    sent: dict[int, list[dict]] = {0: [], 1: [], 2: []}
    for seq in range(1, 15):
        for seat, client in enumerate(clients):
            sent[seat].append(arena_input(seq, seat))
            await client.send({"type": "input", "seq": seq, "input": sent[seat][-1]})
        await asyncio.sleep(0.05)
    snapshots: list[dict] = []

    def collect_until_end(message):
        if message["type"] == "snapshot":
            snapshots.append(message)
        return message["type"] == "match_end"

    end = await clients[0].until(collect_until_end, timeout=8)
    assert end["reason"] in {"time_limit", "score_limit"}
    stored = await database_sync_to_async(Match.objects.get)(pk=match.pk)
    assert stored.status == "finished" and stored.ticks == end["ticks"]
    changes = await database_sync_to_async(lambda: sorted(RatingChange.objects.values_list("user__username", flat=True)))()
    assert changes == ["alice", "bob", "carol"]  # recorded once: one rating change each
    # The log holds exactly what each player sent, in order, at non-decreasing steps.
    assert {seat: [raw for _, s, raw in stored.input_log if s == seat] for seat in sent} == sent
    assert [step for step, _, _ in stored.input_log] == sorted(step for step, _, _ in stored.input_log)
    # Seed and log rebuild the match the players saw: the replay's state at the last snapshot's tick is that snapshot.
    game = get_game("arena-quick")
    inputs: dict[int, list] = {}
    for step, seat, raw in stored.input_log:
        inputs.setdefault(step, []).append((seat, raw))
    last = max(snapshots, key=lambda m: m["tick"])
    replayed = play(game, 3, stored.seed, inputs, max_ticks=last["tick"])
    assert game.snapshot(replayed) == last["state"]
    assert [r["score"] for r in end["results"]] == game.result(replayed).scores
    assert [r["placing"] for r in end["results"]] == game.result(replayed).placings
    for client in clients:
        await client.close()


async def test_match_without_enough_players_is_cancelled_after_the_join_timeout(engine_host, quick_games, alice, bob, settings):
    settings.MATCH_JOIN_TIMEOUT_SECONDS = 0.3
    match = await database_sync_to_async(create_match)("pong-quick", [alice, bob])
    a = await connect(alice, match.pk)
    end = await a.until(lambda m: m["type"] == "match_end")
    assert (end["status"], end["reason"]) == ("cancelled", "players_missing")


async def test_leaving_gives_the_seat_up_at_once(engine_host, pong_match, alice, bob):
    a, b = await join_both(pong_match, alice, bob)
    running = await b.until(is_running)
    await a.send({"type": "leave"})
    end = await b.until(lambda m: m["type"] == "match_end", timeout=3)
    assert end["reason"] == "forfeit"
    assert [r["placing"] for r in end["results"]] == [2, 1]
    # At once, not after the 0.5 s (15 ticks) grace that a dropped connection gets.
    assert end["ticks"] - running["tick"] <= 12, (running["tick"], end["ticks"])


async def test_rate_violations_are_forgiven_after_the_window(engine_host, pong_match, alice, monkeypatch):
    """A backlog that a stalled server reads at once is not a flood: violations count per window."""
    monkeypatch.setattr(protocol, "RATE_VIOLATION_WINDOW_SECONDS", 0.2)
    a = await connect(alice, pong_match.pk)
    for _ in range(int(protocol.RATE_BURST) + protocol.MAX_RATE_VIOLATIONS - 10):
        await a.send({"type": "ping"})
    await asyncio.sleep(0.3)
    for _ in range(100):
        await a.send({"type": "ping"})
    await asyncio.sleep(0.1)  # a few tokens back
    await a.send({"type": "ping", "t": 7})
    assert (await a.until(lambda m: m["type"] == "pong" and m.get("t") == 7))["t"] == 7
    await a.close()


async def test_stale_inputs_do_not_count_towards_the_malformed_limit(engine_host, pong_match, alice):
    a = await connect(alice, pong_match.pk)
    await a.send({"type": "input", "seq": 100, "input": {"dy": 0}})
    for _ in range(protocol.MAX_BAD_MESSAGES + 5):
        await a.send({"type": "input", "seq": 1, "input": {"dy": 0}})
    await a.send("{{{")
    await a.send({"type": "ping", "t": 3})
    assert (await a.until(lambda m: m["type"] == "pong"))["t"] == 3
    await a.close()


def test_messages_that_arrive_before_the_host_knows_the_socket_are_handled_later_in_order():
    """A direct socket delivers messages while connect() still awaits the host: they wait, in arrival order, and
    past the cap they are refused as over the rate, never handled out of order (that made the rest stale)."""
    from collections import deque

    from games.consumers import MAX_EARLY_MESSAGES, MatchConsumer
    from games.rules import get_game
    from gameserver.ws import MessageRateLimit

    class Host:
        def __init__(self):
            self.inputs = []

        def submit_input(self, conn, seq, parsed, raw):
            self.inputs.append(seq)
            return True

    class Out:
        closed, deltas, snapshot_n = False, False, None

        def __init__(self):
            self.sent = deque()

        def send(self, frame):
            self.sent.append(frame)

        def close(self, code):
            self.closed = True

    consumer = MatchConsumer()
    consumer.serving, consumer.seat, consumer.game, consumer.host = True, 0, get_game("pong"), Host()
    consumer.last_seq, consumer.bad_messages, consumer.out = 0, 0, Out()
    # A bucket that admits them all: it bounds them first in real life; this checks the cap behind it.
    consumer.rate = MessageRateLimit(per_second=60, burst=10_000, max_dropped=200)
    consumer.early = []
    for seq in range(1, MAX_EARLY_MESSAGES + 3):
        consumer.on_message(json.dumps({"type": "input", "seq": seq, "input": {"dy": 0}}), None)
    assert consumer.host.inputs == [] and len(consumer.early) == MAX_EARLY_MESSAGES
    assert [f.message["error"] for f in consumer.out.sent] == ["rate_limited"]  # one error a second is enough
    early, consumer.early = consumer.early, None
    for text, data in early:
        consumer._handle(text, data)
    consumer.on_message(json.dumps({"type": "input", "seq": 10_000, "input": {"dy": 0}}), None)
    assert consumer.host.inputs == [*range(1, MAX_EARLY_MESSAGES + 1), 10_000]
