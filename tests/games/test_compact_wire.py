"""Protocol v2's compact forms of the two messages sent every tick: the client's input as [seq, value, ...] in the
game's declared field order, and the server's delta as [n, patch(, events)], with 32-bit floats in msgpack."""

from __future__ import annotations

import json
import struct

import msgpack
import pytest
from channels.db import database_sync_to_async

from games.engine import protocol
from games.engine.protocol import ClientMessageError, Frame
from games.engine.snapshots import delta_message
from games.rules import get_game
from tests.games.conftest import connect, create_match

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def pong_match(quick_games, alice, bob):
    return await database_sync_to_async(create_match)("pong-quick", [alice, bob])


def test_a_compact_input_maps_values_to_the_games_fields_in_order():
    fields = get_game("arena").settings.input_fields
    assert protocol.compact_input([7, 0.5, -1, True, 1.25], fields) == (7, {"dx": 0.5, "dy": -1, "fire": True, "aim": 1.25})
    # Trailing fields may be left out: the game reads them as absent (arena: no fire, aim unchanged).
    assert protocol.compact_input([8, 0, 1], fields) == (8, {"dx": 0, "dy": 1})


FIELD_SETS = [
    ("dy",), ("col", "move"), ("dx", "dy", "fire", "aim"), tuple(f"f{i}" for i in range(12)),
    ("class", "not an identifier", "x"),
]


@pytest.mark.parametrize("fields", FIELD_SETS)
def test_every_field_count_reads_what_zip_reads(fields):
    """A socket reads compact inputs with its game's reader (a dict display for a full input, made once per game),
    which gives what compact_input gives: the values by the fields' names, in their order, for any names (one that is
    not an identifier falls back to compact_input)."""
    read = protocol.compact_reader(fields)
    for given in range(len(fields) + 1):
        values = [f"value {i}" for i in range(given)]
        seq, raw = read([41, *values])
        assert seq == 41
        assert list(raw.items()) == list(zip(fields, values, strict=False))
        assert (seq, raw) == protocol.compact_input([41, *values], fields)


BAD_COMPACT_INPUTS = [
    ([], ("dy",), "malformed"),
    (["1", 1], ("dy",), "bad_seq"),
    ([0, 1], ("dy",), "bad_seq"),
    ([True, 1], ("dy",), "bad_seq"),
    ([2**31, 1], ("dy",), "bad_seq"),
    ([1, 1, 2], ("dy",), "bad_input"),  # more values than the game has fields
    ([1, 1], (), "bad_input"),  # a game without input_fields takes objects only
]


@pytest.mark.parametrize(("message", "fields", "code"), BAD_COMPACT_INPUTS)
def test_bad_compact_inputs_are_refused_by_code(message, fields, code):
    for read in (lambda m: protocol.compact_input(m, fields), protocol.compact_reader(fields)):
        with pytest.raises(ClientMessageError) as caught:
            read(message)
        assert caught.value.code == code


def test_a_float_seq_that_is_whole_is_read_as_an_int_by_both():
    fields = ("dx", "dy")
    assert protocol.compact_reader(fields)([3.0, 1, 2]) == protocol.compact_input([3.0, 1, 2], fields) == (3, {"dx": 1, "dy": 2})


def test_only_v2_sockets_may_send_arrays():
    assert protocol.decode("[1, 0.5]", None, compact=True) == [1, 0.5]
    with pytest.raises(ClientMessageError) as caught:
        protocol.decode("[1, 0.5]", None)
    assert caught.value.code == "malformed"


def test_stream_frames_carry_32_bit_floats_in_msgpack_and_others_64():
    delta = Frame(delta_message(5, {"state": {"x": 421.8}}, None), stream_n=5)
    assert msgpack.unpackb(delta.binary()) == [5, {"state": {"x": struct.unpack(">f", struct.pack(">f", 421.8))[0]}}]
    assert b"\xca" in delta.binary() and b"\xcb" not in delta.binary()
    assert json.loads(delta.json()) == [5, {"state": {"x": 421.8}}]  # JSON keeps the game's decimals
    other = Frame({"type": "pong", "t": 421.8})
    assert b"\xcb" in other.binary() and msgpack.unpackb(other.binary())["t"] == 421.8


def test_a_delta_with_events_has_them_third():
    assert delta_message(9, {}, [{"type": "point"}]) == [9, {}, [{"type": "point"}]]
    assert delta_message(9, {}, []) == [9, {}]


async def test_v2_welcome_lists_the_input_fields_and_compact_inputs_are_applied(engine_host, pong_match, alice, bob):
    a = await connect(alice, pong_match.pk, subprotocols=["gs.v2.json"])
    b = await connect(bob, pong_match.pk, subprotocols=["gs.v1.json"])
    welcome = await a.receive()
    assert welcome["input_fields"] == ["dy"]
    assert "input_fields" not in await b.receive()  # version 1 has no compact inputs
    await a.until(lambda m: m.get("phase") == "running" or m.get("patch", {}).get("phase") == "running")
    await a.send([1, 1])  # paddle down, compactly
    await b.send([1, 1])
    error = await b.until(lambda m: m["type"] == "error")
    assert error["error"] == "malformed"  # v1: an array is not a message
    await a.send([2, 5])
    error = ack = None
    while error is None or ack is None:
        output = await a.comm.receive_output(3)
        decoded = json.loads(output["text"])
        if isinstance(decoded, list):  # a delta travels as [n, patch(, events)]
            assert len(decoded) in (2, 3) and isinstance(decoded[1], dict)
            if "acks" in decoded[1]:
                ack = decoded[1]["acks"]
        elif decoded["type"] == "error":
            error = decoded
    assert (error["error"], error["seq"]) == ("out_of_range", 2)
    assert ack == [1, 2, 0, 1]  # seat 0's ack became 1: the compact input was applied
    await a.close()
    await b.close()


def test_msgpack_messages_are_read_with_strings_as_str_and_only_string_keys():
    """protocol.decode relies on msgpack's defaults (raw=False, strict_map_key=True), which it no longer passes."""
    assert protocol.decode(None, msgpack.packb({"type": "ping", "t": "x"})) == {"type": "ping", "t": "x"}
    assert protocol.decode(None, msgpack.packb([1, "a"]), compact=True) == [1, "a"]
    with pytest.raises(ClientMessageError) as caught:
        protocol.decode(None, msgpack.packb({1: "x", "type": "ping"}))
    assert caught.value.code == "malformed"
