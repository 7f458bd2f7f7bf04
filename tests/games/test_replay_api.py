"""Replays over the API: what a client needs (game, settings, players, seed, input log, timeline), the state at every
tick in cached chunks, who may see them (REPLAY_VISIBILITY), and the documented errors."""

from __future__ import annotations

import random

import pytest

from games import replay, services
from games.models import Match
from games.rules import GAMES
from games.rules.base import replay_log
from tests.games.conftest import create_match

pytestmark = pytest.mark.django_db


def finished_match(game_slug: str, users, *, seed: int = 7, moves: int = 400) -> Match:
    """A match recorded as the engine records one: random inputs until the rules end it, then its result."""
    match = create_match(game_slug, users, source="admin")
    Match.objects.filter(pk=match.pk).update(seed=seed)
    game = GAMES[game_slug]
    rng = random.Random(seed)
    log = [[tick, rng.randrange(len(users)), {"dy": rng.uniform(-1, 1)}] for tick in sorted(rng.sample(range(4000), moves))]
    state, ticks = replay_log(game, len(users), seed, log, 10**6)
    log = [entry for entry in log if entry[0] <= ticks]
    services.match_start(match_id=match.pk)
    services.match_finish(match_id=match.pk, result=game.result(state), ticks=ticks, duration_seconds=ticks / 20,
                          abandoned_seats=[], connected_seats=[0, 1], input_log=log)
    return Match.objects.get(pk=match.pk)


@pytest.fixture
def pong_played(alice, bob):
    return finished_match("pong", [alice, bob])


def test_a_player_gets_everything_a_client_needs_to_replay_the_match(api_as, alice, pong_played):
    response = api_as(alice).get(f"/api/matches/{pong_played.pk}/replay/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["match"], body["game"], body["seed"], body["ticks"]) == (pong_played.pk, "pong", 7, pong_played.ticks)
    assert body["settings"]["tick_rate"] == GAMES["pong"].settings.tick_rate
    assert [(p["seat"], p["username"]) for p in body["players"]] == [(0, "alice"), (1, "bob")]
    assert body["input_log"] == pong_played.input_log
    assert body["end_reason"] == pong_played.end_reason
    points = [e for e in body["events"] if e["type"] == "point"]
    assert points and all(0 < e["tick"] <= body["ticks"] for e in points)
    # The timeline's points add up to the final score.
    final = pong_played.players.order_by("seat").values_list("score", flat=True)
    assert [sum(e["seat"] == seat for e in points) for seat in (0, 1)] == list(final)


def test_frames_come_in_chunks_and_each_is_the_rules_state_at_its_tick(api_as, alice, pong_played):
    client = api_as(alice)
    ticks = pong_played.ticks
    assert ticks > 2 * replay.CHUNK_TICKS
    game = GAMES["pong"]
    seen = {}
    start = 0
    while start is not None:
        body = client.get(f"/api/matches/{pong_played.pk}/replay/frames/", {"start": start}).json()
        assert body["start"] == start
        assert [f["tick"] for f in body["frames"]] == list(range(start, min(start + replay.CHUNK_TICKS, ticks + 1)))
        seen.update({f["tick"]: f for f in body["frames"]})
        start = body["next"]
    assert sorted(seen) == list(range(ticks + 1))
    for tick in (0, 1, replay.CHUNK_TICKS + 50, ticks - 1, ticks):
        state, _ = replay_log(game, 2, pong_played.seed, pong_played.input_log, tick)
        assert seen[tick]["state"] == game.snapshot(state), tick
    assert seen[0]["state"] != seen[ticks]["state"]


def test_frames_are_computed_once_then_served_from_the_cache(api_as, alice, pong_played, monkeypatch):
    computed = []
    original = replay.replay_frames
    monkeypatch.setattr(replay, "replay_frames", lambda **kw: computed.append(1) or original(**kw))
    client = api_as(alice)
    client.get(f"/api/matches/{pong_played.pk}/replay/")
    for start in (0, replay.CHUNK_TICKS, 0):
        assert client.get(f"/api/matches/{pong_played.pk}/replay/frames/", {"start": start}).status_code == 200
    assert len(computed) == 1


@pytest.mark.parametrize("start", ["abc", "-1", "7", "", "99999999999", "1e3"])
def test_a_start_that_is_not_a_chunk_of_the_match_is_refused(api_as, alice, pong_played, start):
    response = api_as(alice).get(f"/api/matches/{pong_played.pk}/replay/frames/", {"start": start})
    assert (response.status_code, response.json()["error"]) == (400, "validation_error")


def test_a_start_past_the_end_is_refused(api_as, alice, pong_played):
    past = (pong_played.ticks // replay.CHUNK_TICKS + 1) * replay.CHUNK_TICKS
    response = api_as(alice).get(f"/api/matches/{pong_played.pk}/replay/frames/", {"start": past})
    assert response.status_code == 400


def test_who_may_see_a_replay_follows_the_setting(api_as, alice, carol, make_user, pong_played, settings):
    path = f"/api/matches/{pong_played.pk}/replay/"
    assert settings.REPLAY_VISIBILITY == "everyone"
    assert api_as(carol).get(path).status_code == 200
    settings.REPLAY_VISIBILITY = "players"
    response = api_as(carol).get(path)
    assert (response.status_code, response.json()["error"]) == (403, "not_allowed")
    assert api_as(carol).get(path + "frames/").status_code == 403
    assert api_as(alice).get(path).status_code == 200
    assert api_as(make_user("staffer", is_staff=True)).get(path).status_code == 200


def test_a_game_without_spectators_replays_to_its_players_only(api_as, alice, bob, carol, quick_games):
    match = finished_match("pong-private", [alice, bob])
    assert api_as(carol).get(f"/api/matches/{match.pk}/replay/").status_code == 403
    assert api_as(bob).get(f"/api/matches/{match.pk}/replay/").status_code == 200


def test_unfinished_unknown_and_anonymous_requests_get_documented_errors(api, api_as, alice, bob):
    running = create_match("pong", [alice, bob])
    response = api_as(alice).get(f"/api/matches/{running.pk}/replay/")
    assert (response.status_code, response.json()["error"]) == (409, "not_replayable")
    services.match_cancel(match_id=running.pk, reason="cancelled_by_admin")
    assert api_as(alice).get(f"/api/matches/{running.pk}/replay/frames/").status_code == 409
    response = api_as(alice).get("/api/matches/999999/replay/")
    assert (response.status_code, response.json()["error"]) == (404, "not_found")
    assert api.get(f"/api/matches/{running.pk}/replay/").status_code in (401, 403)


def test_the_replay_page_loads_its_script(client, alice, pong_played):
    client.force_login(alice)
    page = client.get(f"/matches/{pong_played.pk}/replay/")
    assert page.status_code == 200 and b"js/pages/replay.js" in page.content


def test_replay_requests_are_throttled_per_user(api_as, alice, pong_played, monkeypatch):
    """A match not in the cache is replayed through its rules: one client may not make the server replay match after
    match. The replay and its frames share one budget (THROTTLE_REPLAY)."""
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "replay", "3/minute")
    cache.delete(ScopedRateThrottle.cache_format % {"scope": "replay", "ident": alice.pk})  # earlier tests' requests
    client = api_as(alice)
    assert client.get(f"/api/matches/{pong_played.pk}/replay/").status_code == 200
    assert client.get(f"/api/matches/{pong_played.pk}/replay/frames/?start=0").status_code == 200
    assert client.get(f"/api/matches/{pong_played.pk}/replay/").status_code == 200
    response = client.get(f"/api/matches/{pong_played.pk}/replay/frames/?start=0")
    assert response.status_code == 429 and response.json()["error"] == "throttled"
