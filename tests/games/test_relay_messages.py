"""The relay protocol between processes (games/engine/messages.py): typed, versioned, refused at the boundary."""

from __future__ import annotations

import logging

import msgspec
import pytest

from games.engine import messages
from games.engine.host import MatchHost
from games.engine.store import MemoryStore

EVERY_KIND = [
    messages.Input(3, 1, 17, {"dx": 1, "fire": True}),
    messages.SeatChange(3, 0, True, "gs.proc.a"),
    messages.Leave(3, 2),
    messages.Here(3, "gs.proc.b", [0, 1], [2]),
    messages.Snapshot(3, {"type": "snapshot", "tick": 9, "state": {"x": [1.5, 2.25]}}),
    messages.End(3, {"type": "match_end", "reason": "score"}),
    messages.Stop(3, {"type": "match_end", "reason": "admin"}),
    messages.Kick(3, 1, "gs.proc.a"),
    messages.Moved(3),
]


def test_every_kind_survives_the_channel_layer_in_order():
    payload = messages.to_layer(*EVERY_KIND)
    assert payload["type"] == messages.LAYER_TYPE and isinstance(payload["b"], bytes)
    assert messages.from_layer(payload) == EVERY_KIND


def test_a_relayed_input_is_small_on_the_wire():
    # Arrays, not maps with key names: the bulk of what crosses Redis between processes is relayed inputs.
    assert len(messages.to_layer(messages.Input(123456, 3, 100000, {"dx": -1, "dy": 1}))["b"]) <= 32


def raw(envelope) -> dict:
    return {"type": messages.LAYER_TYPE, "b": msgspec.msgpack.encode(envelope)}


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (raw([messages.VERSION + 1, [["in", 3, 1, 17, {}]]]), f"version {messages.VERSION + 1} from another process"),
        (raw([messages.VERSION + 1, [["teleport", 3]]]), f"version {messages.VERSION + 1} from another process"),
        (raw([messages.VERSION, [["in", 3, -1, 17, {}]]]), "invalid relay message"),
        (raw([messages.VERSION, [["in", 0, 1, 17, {}]]]), "invalid relay message"),
        (raw([messages.VERSION, [["in", 3, 1, 0, {}]]]), "invalid relay message"),
        (raw([messages.VERSION, [["here", 3, "p", "not a list"]]]), "invalid relay message"),
        (raw([messages.VERSION, [["teleport", 3]]]), "invalid relay message"),
        ({"type": messages.LAYER_TYPE, "b": b"\xc1"}, "malformed"),
        ({"type": "stop", "m": 3, "msg": {}}, "not a relay envelope"),
        ({"type": messages.LAYER_TYPE, "b": "text"}, "not a relay envelope"),
    ],
)
def test_what_does_not_match_its_schema_is_refused_with_a_reason(payload, says):
    with pytest.raises(messages.RelayMessageError, match=says):
        messages.from_layer(payload)


async def test_the_link_drops_a_refused_payload_with_a_log_line_and_goes_on(caplog):
    link = MatchHost(store=MemoryStore(), relay=object(), handover_on_sigterm=False).link
    seen = []

    async def on_moved(message):
        seen.append(message)

    link.handlers[messages.Moved] = on_moved
    with caplog.at_level(logging.ERROR, logger="games.engine.host"):
        await link.on_payload(raw([messages.VERSION + 1, [["moved", 3]]]))
        await link.on_payload(messages.to_layer(messages.Moved(3)))
    assert seen == [messages.Moved(3)]
    assert f"relay envelope of version {messages.VERSION + 1}" in caplog.text
    assert link.refused_payloads == 1


async def test_a_seat_outside_the_match_from_another_process_is_ignored(quick_games):
    """A schema-valid message can still name a seat the match does not have (a rogue or confused process)."""
    from types import SimpleNamespace

    host = MatchHost(store=MemoryStore(), relay=object(), handover_on_sigterm=False)
    queued = []
    host.runners[3] = SimpleNamespace(
        seats=2, game=quick_games["pong-quick"], queue_input=lambda *a: queued.append(a), leave=queued.append
    )
    for message in (messages.Input(3, 5, 1, {"dy": 1}), messages.Leave(3, 9), messages.Here(3, "p", [7], [8])):
        await host.link.on_payload(messages.to_layer(message))
    assert queued == []
    await host.link.on_payload(messages.to_layer(messages.Input(3, 1, 1, {"dy": 1})))
    assert [q[:2] for q in queued] == [(1, 1)]
