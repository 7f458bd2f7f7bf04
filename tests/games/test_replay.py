"""`manage.py replay <id> --verify`: every built-in game, played through the engine (sockets, inputs, a player who leaves),
replays from its stored seed and log to its recorded result; a tampered record does not verify. The replay helpers
apply a tick's inputs and removals in the engine's order."""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import replace

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError

from games.models import Match, MatchPlayer
from games.rules import GAMES
from games.rules.base import play, replay_log
from tests.games.conftest import connect, create_match

BUILT_IN = sorted(GAMES)  # before any test registers a variant


def random_input(game: str, rng: random.Random) -> dict:
    """A valid raw input of each built-in game; any other game's come from the examples it declares."""
    if game == "arena":
        angle = rng.uniform(-math.pi, math.pi)
        return {"dx": math.cos(angle), "dy": math.sin(angle), "fire": rng.random() < 0.4, "aim": round(angle, 3)}
    if game == "pong":
        return {"dy": rng.uniform(-1, 1)}
    return rng.choice(GAMES[game].examples.valid)


@pytest.fixture
def quick_variant():
    """The game's own rules with a 1.2 s match and a 0.1 s countdown, registered under <slug>-replay (at 20 ticks a
    second or more, so that the match applies the inputs this test sends)."""
    added = []

    def make(slug: str) -> str:
        game = GAMES[slug]
        quick = type(game)(replace(game.settings, slug=f"{slug}-replay", countdown_seconds=0.1, match_seconds=1.2,
                                   reconnect_grace_seconds=0.5, tick_rate=max(20, game.settings.tick_rate)))
        GAMES[quick.settings.slug] = quick
        added.append(quick.settings.slug)
        return quick.settings.slug

    yield make
    for slug in added:
        GAMES.pop(slug, None)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("slug", BUILT_IN)
async def test_every_built_in_game_replays_to_its_recorded_result(slug, engine_host, quick_variant, make_user):
    game = quick_variant(slug)
    seats = max(2, min(3, GAMES[game].settings.max_players))
    users = [await database_sync_to_async(make_user)(f"{slug}{seat}") for seat in range(seats)]
    match = await database_sync_to_async(create_match)(game, users)
    clients = [await connect(user, match.pk) for user in users]
    await clients[0].until(lambda m: m["type"] == "snapshot" and m["phase"] == "running")
    rng = random.Random(slug)
    leaver = seats - 1 if seats > 2 else None  # with 3 seats one leaves mid-match: a removal in the log, play goes on
    for seq in range(1, 21):
        for seat, client in enumerate(clients):
            if seat == leaver and seq == 10:
                await client.send({"type": "input", "seq": seq, "input": random_input(slug, rng)})
                await client.send({"type": "leave"})  # an input and a removal of one seat, as close as they come
            elif not (seat == leaver and seq > 10):
                await client.send({"type": "input", "seq": seq, "input": random_input(slug, rng)})
        await asyncio.sleep(0.03)
    end = await clients[0].until(lambda m: m["type"] == "match_end", timeout=10)
    assert end["status"] == "finished"
    stored = await database_sync_to_async(Match.objects.get)(pk=match.pk)
    if leaver is not None:
        assert [step for step, seat, raw in stored.input_log if raw is None and seat == leaver], "no removal logged"
    assert sum(raw is not None for _, _, raw in stored.input_log) > 20

    output = await database_sync_to_async(_replay)(match.pk, "--verify")
    assert '"verified": true' in output
    for client in clients:
        await client.close()

    # The same record, tampered with, does not verify: a score, or the tick it ended at.
    await database_sync_to_async(MatchPlayer.objects.filter(match=match, seat=0).update)(score=999)
    with pytest.raises(CommandError, match="scores: replayed"):
        await database_sync_to_async(_replay)(match.pk, "--verify")
    await database_sync_to_async(MatchPlayer.objects.filter(match=match, seat=0).update)(
        score=next(r["score"] for r in end["results"] if r["seat"] == 0)
    )
    await database_sync_to_async(Match.objects.filter(pk=match.pk).update)(ticks=stored.ticks - 5)
    with pytest.raises(CommandError, match="not over after the recorded"):
        await database_sync_to_async(_replay)(match.pk, "--verify")


def _replay(match_id: int, *args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("replay", str(match_id), *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_only_finished_matches_replay(make_user):
    match = create_match("pong", [make_user("cat"), make_user("dan")])
    with pytest.raises(CommandError, match="only finished matches"):
        _replay(match.pk, "--verify")
    with pytest.raises(CommandError, match="there is no match"):
        _replay(match.pk + 1000)


def test_the_helpers_apply_a_ticks_inputs_then_its_removals_as_the_engine_does():
    """An input and a removal of the same seat in one tick: the engine applies the input, then the removal
    (games/engine/runner.py), and logs them in that order. Pong keeps the last input in its state: with the removal
    first, the forfeit would have made the input a no-op."""
    pong = GAMES["pong"]
    state = play(pong, 2, 5, {10: [(1, {"dy": 1.0})]}, 50, removals_by_tick={10: [1]})
    assert pong.is_finished(state) and pong.result(state).reason == "forfeit"
    assert pong.to_checkpoint(state)["moves"][1] == 1.0
    log = [[10, 1, {"dy": 1.0}], [10, 1, None]]
    replayed, ticks = replay_log(pong, 2, 5, log, 10)
    assert ticks == 10 and pong.to_checkpoint(replayed) == pong.to_checkpoint(state)
    # What the engine applies after its last step (a forfeit ends the match without one) is replayed too.
    not_yet, _ = replay_log(pong, 2, 5, log, 9)
    assert not pong.is_finished(not_yet)
