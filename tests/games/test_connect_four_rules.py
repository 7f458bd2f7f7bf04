"""Connect Four's rules: drops, the four directions of a win, a full board, the turn timer, inputs out of turn."""

from __future__ import annotations

import json

import pytest

from games.rules import get_game
from games.rules.base import InputError, replay_log
from games.rules.connect_four import COLUMNS, ROWS, SETTINGS, TURN_SECONDS
from tests.games import contract

GAME = get_game("connect_four")
DT = SETTINGS.dt


def new(seed: int = 1, first: int = 0):
    state = GAME.initial_state(2, seed=seed)
    state.turn = first
    return state


def drop(state, col: int, seat: int | None = None) -> list[dict]:
    """The seat on turn (or `seat`) plays `col` as the current move; one step."""
    seat = state.turn if seat is None else seat
    GAME.apply_input(state, seat, GAME.parse_input({"col": col, "move": state.moves}))
    return GAME.step(state, DT)


def play(state, cols: list[int]) -> None:
    for col in cols:
        drop(state, col)


def test_passes_the_platform_contract():
    contract.check_all(GAME)


def test_a_drop_lands_on_top_of_its_column_and_passes_the_turn():
    state = new()
    assert drop(state, 3) == [{"type": "drop", "seat": 0, "col": 3, "row": 0}]
    assert drop(state, 3) == [{"type": "drop", "seat": 1, "col": 3, "row": 1}]
    snap = GAME.snapshot(state)
    assert snap["board"][3] == [0, 1] and snap["turn"] == 0 and snap["moves"] == 2


@pytest.mark.parametrize(
    ("cols", "line"),
    [
        ([0, 0, 1, 1, 2, 2, 3], [[0, 0], [1, 0], [2, 0], [3, 0]]),  # across
        ([4, 5, 4, 5, 4, 5, 4], [[4, 0], [4, 1], [4, 2], [4, 3]]),  # up
        ([0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3], [[0, 0], [1, 1], [2, 2], [3, 3]]),  # rising diagonal
        ([6, 5, 5, 4, 4, 3, 4, 3, 3, 0, 3], [[3, 3], [4, 2], [5, 1], [6, 0]]),  # falling diagonal
    ],
)
def test_four_in_a_row_wins_in_every_direction(cols, line):
    state = new()
    play(state, cols[:-1])
    assert not GAME.is_finished(state)
    play(state, cols[-1:])
    assert GAME.is_finished(state)
    result = GAME.result(state)
    assert (result.reason, result.winner_seats, result.placings, result.scores) == ("four_in_a_row", [0], [1, 2], [1, 0])
    assert GAME.snapshot(state)["line"] == line and GAME.snapshot(state)["turn"] is None


def test_three_in_a_row_is_not_a_win():
    state = new()
    play(state, [0, 0, 1, 1, 2, 6])
    assert not GAME.is_finished(state)


def test_a_full_board_without_four_is_a_draw():
    # Columns filled in pairs 0-1, 2-3, 4-5 then 6, in an order that never lines up four.
    order = [0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 2, 3, 2, 3, 2, 3, 3, 2, 3, 2, 3, 2, 4, 5, 4, 5, 4, 5, 5, 4, 5, 4, 5, 4]
    order += [6] * 6
    state = new()
    play(state, order)
    assert state.moves == COLUMNS * ROWS
    result = GAME.result(state)
    assert result.reason == "draw" and result.placings == [1, 1] and result.winner_seats == [0, 1]


def test_letting_the_turn_timer_run_out_loses():
    state = new()
    drop(state, 3)  # seat 1 is on turn from here
    ticks = SETTINGS.turn_ticks
    assert ticks == round(TURN_SECONDS * SETTINGS.tick_rate)
    for _ in range(ticks - 1):
        GAME.step(state, DT)
    assert not GAME.is_finished(state) and GAME.snapshot(state)["turn_left"] == 1
    GAME.step(state, DT)
    result = GAME.result(state)
    assert (result.reason, result.winner_seats) == ("turn_timeout", [0])


def test_the_turn_timer_starts_again_with_each_move():
    state = new()
    for _ in range(SETTINGS.turn_ticks - 1):
        GAME.step(state, DT)
    drop(state, 0)
    assert GAME.snapshot(state)["turn_left"] == TURN_SECONDS
    assert not GAME.is_finished(state)


def test_input_out_of_turn_is_refused_once_and_changes_nothing():
    state = new()
    before = GAME.snapshot(state)
    inp = GAME.parse_input({"col": 2, "move": 0})
    GAME.apply_input(state, 1, inp)
    GAME.apply_input(state, 1, inp)  # resent: reported once
    events = GAME.step(state, DT)
    assert [(e["type"], e["seat"], e["code"]) for e in events] == [("input_refused", 1, "not_your_turn")]
    GAME.apply_input(state, 1, inp)
    assert GAME.step(state, DT) == []
    assert GAME.snapshot(state)["board"] == before["board"] and GAME.snapshot(state)["turn"] == 0


def test_a_full_column_is_refused_and_the_player_may_play_elsewhere():
    state = new()
    play(state, [3] * ROWS)
    events = drop(state, 3)
    assert [(e["type"], e["code"]) for e in events] == [("input_refused", "column_full")]
    assert state.moves == ROWS and state.turn == 0
    assert drop(state, 4)[0]["type"] == "drop"


def test_resending_a_played_move_and_the_idle_input_do_nothing():
    state = new()
    sent = GAME.parse_input({"col": 3, "move": 0})
    GAME.apply_input(state, 0, sent)
    GAME.step(state, DT)
    GAME.apply_input(state, 0, sent)  # the client keeps sending it until it sees the move played
    GAME.apply_input(state, 1, GAME.parse_input({"col": 5, "move": -1}))
    assert GAME.step(state, DT) == []
    assert state.moves == 1 and state.turn == 1


def test_the_first_player_is_drawn_from_the_seed():
    assert {GAME.initial_state(2, seed=seed).turn for seed in range(20)} == {0, 1}
    assert GAME.initial_state(2, seed=7).turn == GAME.initial_state(2, seed=7).turn


def test_leaving_forfeits():
    state = new()
    drop(state, 3)
    GAME.remove_player(state, 0)
    result = GAME.result(state)
    assert (result.reason, result.placings) == ("forfeit", [2, 1])


@pytest.mark.parametrize(
    ("raw", "code"),
    [(raw, code) for raw, code in GAME.examples.invalid] + [({"col": 10**40, "move": 0}, "out_of_range")],
)
def test_bad_inputs_are_refused_with_their_codes(raw, code):
    with pytest.raises(InputError) as caught:
        GAME.parse_input(raw)
    assert caught.value.code == code


def test_a_played_match_replays_from_its_log():
    state = GAME.initial_state(2, seed=4)  # who starts is the seed's
    log = []
    for col in [0, 0, 1, 1, 2, 2, 3]:
        log.append([state.tick, state.turn, {"col": col, "move": state.moves}])
        drop(state, col)
    replayed, ticks = replay_log(GAME, 2, 4, json.loads(json.dumps(log)), state.tick)
    assert ticks == state.tick
    assert GAME.result(replayed) == GAME.result(state) and GAME.result(state).reason == "four_in_a_row"
    assert GAME.to_checkpoint(replayed) == GAME.to_checkpoint(state)
