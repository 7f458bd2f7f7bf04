"""Pong rules: paddles, ball physics without tunnelling, serving, scoring, end conditions, input validation, determinism."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from games.rules import pong
from games.rules.base import InputError, play
from games.rules.pong import BALL_RADIUS, HEIGHT, LEFT_FACE, PADDLE_HEIGHT, RIGHT_FACE, WIDTH, PongGame, PongState

GAME = pong.GAME
DT = GAME.settings.dt


def new_state(seed: int = 1) -> PongState:
    return GAME.initial_state(2, seed=seed)


def set_ball(state: PongState, x: float, y: float, vx: float, vy: float) -> None:
    state.ball_x, state.ball_y, state.ball_vx, state.ball_vy = x, y, vx, vy


def send(state: PongState, seat: int, dy: object, game: PongGame = GAME) -> None:
    game.apply_input(state, seat, game.parse_input({"dy": dy}))


def run(state: PongState, ticks: int, game: PongGame = GAME) -> list[dict]:
    events: list[dict] = []
    for _ in range(ticks):
        events += game.step(state, DT)
    return events


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def speed(state: PongState) -> float:
    return math.hypot(state.ball_vx, state.ball_vy)


# --- paddles --------------------------------------------------------------------------------------------------------


def test_paddle_moves_at_the_input_fraction_of_paddle_speed():
    state = new_state()
    send(state, 0, 0.5)
    send(state, 1, -1.0)
    run(state, 3)
    assert state.paddles[0] == pytest.approx(HEIGHT / 2 + 3 * 0.5 * pong.PADDLE_SPEED * DT)
    assert state.paddles[1] == pytest.approx(HEIGHT / 2 - 3 * pong.PADDLE_SPEED * DT)


def test_paddle_is_clamped_to_the_field():
    state = new_state()
    send(state, 0, 1.0)
    send(state, 1, -1.0)
    run(state, 60)
    assert state.paddles == [HEIGHT - PADDLE_HEIGHT / 2, PADDLE_HEIGHT / 2]


# --- ball physics ---------------------------------------------------------------------------------------------------


def test_ball_bounces_off_the_top_wall():
    state = new_state()
    set_ball(state, 400.0, 20.0, 100.0, -600.0)
    events = run(state, 1)
    assert types(events) == ["wall_bounce"]
    assert state.ball_vy == 600.0 and state.ball_vx == 100.0
    # 12 units up to the wall, the remaining 8 back down.
    assert state.ball_y == pytest.approx(BALL_RADIUS + 8.0)


def test_ball_bounces_off_the_bottom_wall():
    state = new_state()
    set_ball(state, 400.0, HEIGHT - 12.0, -100.0, 300.0)
    assert types(run(state, 1)) == ["wall_bounce"]
    assert state.ball_vy == -300.0
    assert state.ball_y <= HEIGHT - BALL_RADIUS


def test_paddle_hit_returns_the_ball_and_speeds_it_up():
    state = new_state()
    set_ball(state, LEFT_FACE + BALL_RADIUS + 5.0, state.paddles[0], -300.0, 0.0)
    events = run(state, 1)
    assert events == [{"type": "paddle_hit", "seat": 0}]
    assert state.ball_vx > 0.0
    assert speed(state) == pytest.approx(300.0 * pong.SPEEDUP)


def test_right_paddle_returns_the_ball_too():
    state = new_state()
    set_ball(state, RIGHT_FACE - BALL_RADIUS - 5.0, state.paddles[1], 300.0, 0.0)
    assert run(state, 1) == [{"type": "paddle_hit", "seat": 1}]
    assert state.ball_vx < 0.0


def test_ball_speed_is_capped():
    state = new_state()
    set_ball(state, LEFT_FACE + BALL_RADIUS + 5.0, state.paddles[0], -pong.MAX_SPEED, 0.0)
    run(state, 1)
    assert speed(state) == pytest.approx(pong.MAX_SPEED)


# The slope grows with the distance from the paddle's centre, up to 1.5 (about 56 degrees) where the ball, 8 units
# in radius, just reaches the end of the 80-unit paddle: 48 units off centre.
@pytest.mark.parametrize("offset, slope", [(0.0, 0.0), (-24.0, -0.75), (30.0, 0.9375), (47.9, 1.496875)])
def test_bounce_angle_depends_on_where_the_ball_meets_the_paddle(offset, slope):
    state = new_state()
    set_ball(state, LEFT_FACE + BALL_RADIUS + 3.0, state.paddles[0] + offset, -300.0, 0.0)
    assert run(state, 1) == [{"type": "paddle_hit", "seat": 0}]
    assert state.ball_vy / state.ball_vx == pytest.approx(slope)


def test_fast_ball_does_not_tunnel_through_the_paddle():
    state = new_state()
    # 1000 units in one tick: the ball starts far in front of the paddle and would end far behind it.
    set_ball(state, 400.0, state.paddles[0] + 10.0, -30000.0, 0.0)
    events = run(state, 1)
    assert {"type": "paddle_hit", "seat": 0} in events
    assert state.ball_vx > 0.0
    assert 0.0 <= state.ball_x <= WIDTH
    assert state.scores == [0, 0]


def test_fast_ball_bounces_off_both_walls_within_one_tick_and_stays_in_the_field():
    state = new_state()
    set_ball(state, 400.0, 300.0, 30.0, 60000.0)
    events = run(state, 1)
    assert types(events).count("wall_bounce") >= 3
    assert BALL_RADIUS <= state.ball_y <= HEIGHT - BALL_RADIUS


def test_ball_that_misses_the_paddle_is_a_point_for_the_other_player():
    state = new_state()
    send(state, 0, -1.0)
    run(state, 30)
    set_ball(state, 100.0, HEIGHT - 50.0, -600.0, 0.0)
    events = run(state, 10)
    assert {"type": "point", "seat": 1} in events
    assert "paddle_hit" not in types(events)
    assert state.scores == [0, 1]


def test_ball_past_the_paddle_face_cannot_be_returned():
    state = new_state()
    set_ball(state, LEFT_FACE - 1.0, state.paddles[0], -100.0, 0.0)
    events = run(state, 20)
    assert types(events) == ["point"]


# --- serving --------------------------------------------------------------------------------------------------------


def test_serve_after_a_point_waits_then_heads_for_the_player_who_conceded():
    for conceder, x, vx in [(0, 5.0, -300.0), (1, WIDTH - 5.0, 300.0)]:
        state = new_state()
        set_ball(state, x, 50.0, vx, 0.0)
        assert types(run(state, 1)) == ["point"]
        delay = round(pong.SERVE_DELAY / DT)
        run(state, delay - 1)
        assert (state.ball_x, state.ball_y, state.ball_vx, state.ball_vy) == (WIDTH / 2, HEIGHT / 2, 0.0, 0.0)
        run(state, 1)
        assert speed(state) == pytest.approx(pong.SERVE_SPEED)
        assert (state.ball_vx < 0) == (conceder == 0)
        assert abs(state.ball_vy / state.ball_vx) <= pong.MAX_SERVE_SLOPE


def test_first_serve_is_random_but_set_by_the_seed():
    serves = {seed: (new_state(seed).ball_vx, new_state(seed).ball_vy) for seed in range(20)}
    assert len(set(serves.values())) == 20
    assert {vx > 0 for vx, _ in serves.values()} == {True, False}
    assert all(speed(new_state(seed)) == pytest.approx(pong.SERVE_SPEED) for seed in range(5))
    assert new_state(3).ball_vx == serves[3][0]


# --- end conditions -------------------------------------------------------------------------------------------------


def test_reaching_the_score_limit_ends_the_match():
    state = new_state()
    state.scores = [pong.SCORE_LIMIT - 1, 2]
    set_ball(state, WIDTH - 5.0, 50.0, 300.0, 0.0)
    run(state, 1)
    assert GAME.is_finished(state)
    result = GAME.result(state)
    assert result.reason == "score_limit"
    assert result.scores == [pong.SCORE_LIMIT, 2]
    assert result.placings == [1, 2] and result.winner_seats == [0]
    assert GAME.step(state, DT) == []


def test_time_limit_ends_the_match_after_exactly_the_limit_in_ticks():
    game = PongGame(replace(pong.SETTINGS, match_seconds=1.0))
    state = game.initial_state(2, seed=4)
    run(state, game.settings.match_ticks - 1, game)
    assert not game.is_finished(state)
    run(state, 1, game)
    assert game.is_finished(state)
    assert state.tick == 30


def test_time_limit_with_level_scores_is_a_draw():
    game = PongGame(replace(pong.SETTINGS, match_seconds=1.0))
    state = game.initial_state(2, seed=4)
    state.scores = [2, 2]
    run(state, game.settings.match_ticks, game)
    result = game.result(state)
    assert result.reason == "time_limit"
    assert result.placings == [1, 1]
    assert result.winner_seats == [0, 1]


def test_time_limit_with_a_leader_ranks_by_score():
    game = PongGame(replace(pong.SETTINGS, match_seconds=1.0))
    state = game.initial_state(2, seed=4)
    state.scores = [1, 3]
    run(state, game.settings.match_ticks, game)
    assert game.result(state).placings == [2, 1]


def test_full_length_match_runs_out_at_180_seconds():
    state = new_state()
    state.scores = [0, 0]
    # Both paddles track the ball perfectly, so nobody ever scores.
    for _ in range(GAME.settings.match_ticks):
        for seat in (0, 1):
            state.paddles[seat] = min(max(state.ball_y, PADDLE_HEIGHT / 2), HEIGHT - PADDLE_HEIGHT / 2)
        GAME.step(state, DT)
    assert GAME.is_finished(state)
    assert state.tick == 180 * 30
    assert GAME.result(state).reason == "time_limit"
    assert GAME.snapshot(state)["time_left"] == 0


# --- abandonment ----------------------------------------------------------------------------------------------------


def test_leaving_forfeits_the_match_even_when_ahead():
    state = new_state()
    state.scores = [4, 1]
    GAME.remove_player(state, 0)
    assert GAME.is_finished(state)
    result = GAME.result(state)
    assert result.reason == "forfeit"
    assert result.placings == [2, 1]
    assert result.winner_seats == [1]
    assert result.scores == [4, 1]


def test_removal_after_the_end_changes_nothing():
    state = new_state()
    GAME.remove_player(state, 1)
    GAME.remove_player(state, 0)
    assert GAME.result(state).winner_seats == [0]


def test_continue_rule_leaves_the_last_player_standing():
    game = PongGame(replace(pong.SETTINGS, abandon_rule="continue"))
    state = game.initial_state(2, seed=1)
    game.remove_player(state, 1)
    assert game.is_finished(state)
    result = game.result(state)
    assert result.reason == "last_player_standing"
    assert result.placings == [1, 2]


@pytest.mark.parametrize("seats", [1, 3])
def test_initial_state_needs_exactly_two_players(seats):
    with pytest.raises(ValueError):
        GAME.initial_state(seats, seed=1)


def test_input_for_a_seat_that_does_not_exist_is_refused():
    with pytest.raises(ValueError):
        send(new_state(), 2, 0.0)


# --- input validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, code",
    [
        ({}, "missing_field"),
        ({"dx": 1.0}, "missing_field"),
        ({"dy": "0.5"}, "wrong_type"),
        ({"dy": True}, "wrong_type"),
        ({"dy": False}, "wrong_type"),
        ({"dy": None}, "wrong_type"),
        ({"dy": {"v": 1}}, "wrong_type"),
        ({"dy": float("nan")}, "not_finite"),
        ({"dy": float("inf")}, "not_finite"),
        ({"dy": float("-inf")}, "not_finite"),
        ({"dy": 1.5}, "out_of_range"),
        ({"dy": -1.0000001}, "out_of_range"),
        ({"dy": -(10**400)}, "out_of_range"),
    ],
)
def test_parse_input_rejects_bad_fields(raw, code):
    with pytest.raises(InputError) as caught:
        GAME.parse_input(raw)
    assert caught.value.code == code
    assert str(caught.value)


def test_parse_input_rejects_a_non_object():
    with pytest.raises(InputError) as caught:
        GAME.parse_input([0.5])
    assert caught.value.code == "wrong_type"


def test_parse_input_accepts_integers_and_the_range_ends_and_ignores_unknown_keys():
    assert GAME.parse_input({"dy": 1}).dy == 1.0
    assert GAME.parse_input({"dy": -1.0, "fire": "nonsense"}) == pong.PongInput(dy=-1.0)


# --- snapshot, determinism, checkpoints, replay ---------------------------------------------------------------------


def test_snapshot_is_compact_json_with_quantised_floats():
    state = new_state()
    send(state, 0, 0.123)
    run(state, 1)  # the paddle moves 0.123 * 400 / 30 = 1.64 units
    set_ball(state, 123.456, 234.549, -100.04, 50.06)
    snap = GAME.snapshot(state)
    assert json.loads(json.dumps(snap)) == snap
    assert set(snap) == {"time_left", "ball", "paddles", "scores"}
    assert snap["ball"] == [123.5, 234.5, -100.0, 50.1]
    assert snap["paddles"] == [301.6, 300.0]
    assert snap["scores"] == [0, 0] and snap["scores"] is not state.scores
    assert snap["time_left"] == 180  # 5399 ticks of 1/30 s left: 179.97 s, rounded up


def wobbly_inputs(ticks: int) -> dict[int, list[tuple[int, dict]]]:
    """Paddles that sweep up and down out of phase: some returns, some misses, so points and serves happen."""
    return {
        tick: [(0, {"dy": math.sin(tick * 0.05)}), (1, {"dy": math.cos(tick * 0.031)})] for tick in range(0, ticks, 5)
    }


def test_same_seed_and_inputs_give_identical_states():
    log = wobbly_inputs(3000)
    first = play(GAME, 2, 11, log, 3000)
    second = play(GAME, 2, 11, log, 3000)
    assert GAME.to_checkpoint(first) == GAME.to_checkpoint(second)
    assert sum(first.scores) > 0


def test_different_seeds_give_different_matches():
    log = wobbly_inputs(600)
    assert GAME.to_checkpoint(play(GAME, 2, 1, log, 600)) != GAME.to_checkpoint(play(GAME, 2, 2, log, 600))


def test_checkpoint_round_trip_mid_match_continues_identically():
    log = wobbly_inputs(3000)
    state = new_state(seed=5)
    for tick in range(1500):
        for seat, raw in log.get(tick, []):
            GAME.apply_input(state, seat, GAME.parse_input(raw))
        GAME.step(state, DT)
    restored = GAME.from_checkpoint(json.loads(json.dumps(GAME.to_checkpoint(state))))
    for tick in range(1500, 3000):
        for target in (state, restored):
            for seat, raw in log.get(tick, []):
                GAME.apply_input(target, seat, GAME.parse_input(raw))
        assert GAME.step(restored, DT) == GAME.step(state, DT)
    assert GAME.to_checkpoint(restored) == GAME.to_checkpoint(state)
    assert restored.rng.state == state.rng.state


def test_play_applies_each_ticks_inputs_before_that_step():
    travel = pong.PADDLE_SPEED * DT  # one step at full speed: 400 / 30 units
    # An input keyed by tick 0 already moves the paddle in the first step.
    assert play(GAME, 2, 8, {0: [(0, {"dy": -1.0})]}, 1).paddles[0] == pytest.approx(HEIGHT / 2 - travel)
    # Keyed by ticks 2 and 5 it moves the paddle in the third, fourth and fifth steps only.
    state = play(GAME, 2, 8, {2: [(1, {"dy": 1.0})], 5: [(1, {"dy": 0.0})]}, 9)
    assert state.tick == 9
    assert state.paddles == [HEIGHT / 2, pytest.approx(HEIGHT / 2 + 3 * travel)]


def test_play_applies_a_forfeit_from_the_log():
    state = play(GAME, 2, 8, {}, 100, removals_by_tick={10: [1]})
    assert state.tick == 10
    assert GAME.result(state).reason == "forfeit"


# --- properties -----------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=2**64 - 1),
    segments=st.lists(
        st.tuples(st.integers(min_value=1, max_value=60), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0)), max_size=10
    ),
)
def test_ball_and_paddles_never_leave_the_field(seed, segments):
    state = new_state(seed)
    for hold, dy0, dy1 in segments:
        send(state, 0, dy0)
        send(state, 1, dy1)
        for _ in range(hold):
            GAME.step(state, DT)
            assert BALL_RADIUS <= state.ball_y <= HEIGHT - BALL_RADIUS
            assert all(PADDLE_HEIGHT / 2 <= y <= HEIGHT - PADDLE_HEIGHT / 2 for y in state.paddles)
            assert -pong.MAX_SPEED * DT <= state.ball_x <= WIDTH + pong.MAX_SPEED * DT
