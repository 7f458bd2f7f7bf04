"""The author-facing helpers of games/rules/base.py: input readers, ranking by a chosen key, declared end reasons."""

from __future__ import annotations

import collections
import math
import random
import types

import pytest

from games.rules.base import (
    END_REASONS,
    INPUT_ERROR_CODES,
    GameSettings,
    InputError,
    boolean,
    check_object,
    choice,
    input_reader,
    integer,
    number,
    optional_number,
    rank_result,
    read_bool,
    read_choice,
    read_int,
    read_number,
    read_optional_number,
    read_vector,
    refused,
)


def code_of(call) -> str:
    with pytest.raises(InputError) as caught:
        call()
    assert caught.value.code in INPUT_ERROR_CODES
    return caught.value.code


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ({}, "missing_field"),
        ({"col": "3"}, "wrong_type"),
        ({"col": None}, "wrong_type"),
        ({"col": True}, "wrong_type"),
        ({"col": [3]}, "wrong_type"),
        ({"col": 2.5}, "not_an_integer"),
        ({"col": float("nan")}, "not_finite"),
        ({"col": float("inf")}, "not_finite"),
        ({"col": 7}, "out_of_range"),
        ({"col": -1}, "out_of_range"),
        ({"col": 10**400}, "out_of_range"),
    ],
)
def test_read_int_refuses(raw, code):
    assert code_of(lambda: read_int(raw, "col", 0, 6)) == code


def test_read_int_accepts_whole_numbers_in_range_and_a_default():
    assert [read_int({"col": v}, "col", 0, 6) for v in (0, 6, 3.0)] == [0, 6, 3]
    assert type(read_int({"col": 3.0}, "col", 0, 6)) is int
    assert read_int({}, "col", 0, 6, default=2) == 2


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ({}, "missing_field"),
        ({"move": 1}, "wrong_type"),
        ({"move": None}, "wrong_type"),
        ({"move": ["up"]}, "wrong_type"),
        ({"move": "UP"}, "unknown_choice"),
        ({"move": ""}, "unknown_choice"),
        ({"move": "sideways"}, "unknown_choice"),
    ],
)
def test_read_choice_refuses(raw, code):
    assert code_of(lambda: read_choice(raw, "move", ("up", "down", "left", "right"))) == code


def test_read_choice_accepts_a_member_and_a_default():
    assert read_choice({"move": "left"}, "move", ("up", "left")) == "left"
    assert read_choice({}, "move", ("up", "left"), default="up") == "up"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ({}, "missing_field"),
        ({"v": 1.0}, "wrong_type"),
        ({"v": {"x": 1}}, "wrong_type"),
        ({"v": "12"}, "wrong_type"),
        ({"v": [1.0]}, "wrong_length"),
        ({"v": [1.0, 2.0, 3.0]}, "wrong_length"),
        ({"v": [1.0, "2"]}, "wrong_type"),
        ({"v": [1.0, True]}, "wrong_type"),
        ({"v": [1.0, None]}, "wrong_type"),
        ({"v": [float("nan"), 0.0]}, "not_finite"),
        ({"v": [0.0, 1.5]}, "out_of_range"),
    ],
)
def test_read_vector_refuses(raw, code):
    assert code_of(lambda: read_vector(raw, "v", 2, -1.0, 1.0)) == code


def test_read_vector_gives_a_tuple_of_floats():
    assert read_vector({"v": [1, -0.5]}, "v", 2, -1.0, 1.0) == (1.0, -0.5)
    assert all(type(x) is float for x in read_vector({"v": [1, 0]}, "v", 2, -1.0, 1.0))


def test_ranking_by_a_chosen_key_keeps_the_scores_apart():
    # Survival order decides the places; the scores (say, kills) are reported untouched.
    result = rank_result([5, 0, 2], [False, False, False], "elimination", keys=[10, 40, 40])
    assert result.placings == [3, 1, 1]
    assert result.winner_seats == [1, 2]
    assert result.scores == [5, 0, 2]
    # Tuples work, and removed seats are still last whatever their key.
    tupled = rank_result([0, 0, 0], [True, False, False], "elimination", keys=[(1, 99), (1, 3), (0, 50)])
    assert tupled.placings == [3, 1, 2]


def test_ranking_refuses_a_wrong_number_of_keys():
    with pytest.raises(ValueError):
        rank_result([1, 2], [False, False], "draw", keys=[1])


def test_a_game_declares_its_own_end_reasons():
    settings = GameSettings(slug="c4", name="C4", min_players=2, max_players=2, end_reasons=("four_in_a_row",))
    assert "elimination" in END_REASONS and "draw" in END_REASONS
    assert rank_result([1, 0], [False, False], "four_in_a_row", settings=settings).winner_seats == [0]
    with pytest.raises(ValueError):
        rank_result([1, 0], [False, False], "four_in_a_row")  # not generic: needs the settings that declare it
    assert settings.all_end_reasons[-1] == "four_in_a_row"


@pytest.mark.parametrize("changes", [{"end_reasons": ("Four In A Row",)}, {"turn_seconds": 0.0}])
def test_settings_refuse_bad_declarations(changes):
    with pytest.raises(ValueError):
        GameSettings(slug="x", name="X", min_players=2, max_players=2, **changes)


def test_turn_timer_in_ticks():
    settings = GameSettings(slug="x", name="X", min_players=2, max_players=2, tick_rate=4, turn_seconds=15.0)
    assert settings.turn_ticks == 60
    assert GameSettings(slug="x", name="X", min_players=1, max_players=1).turn_ticks is None


def test_refused_event_names_the_seat_and_a_documented_code():
    event = refused(1, "not_your_turn", "It is seat 0's turn.")
    assert event == {"type": "input_refused", "seat": 1, "code": "not_your_turn", "message": "It is seat 0's turn."}
    assert event["code"] in INPUT_ERROR_CODES


# --- input_reader: the helpers' reading, in one function -------------------------------------------------------------

READER_FIELDS = (
    number("dx", -1.0, 1.0),
    optional_number("aim", -math.pi, math.pi),
    boolean("fire", False),
    boolean("jump"),
    integer("col", 0, 6),
    integer("move", -1, 42, default=-1),
    choice("kind", ("rock", "paper"), default="rock"),
    choice("hand", ("left", "right")),
)


def read_with_helpers(raw):
    """What a parse_input written with the helpers reads, field by field (the documented semantics)."""
    raw = check_object(raw)
    return (
        read_number(raw, "dx", -1.0, 1.0),
        read_optional_number(raw, "aim", -math.pi, math.pi),
        read_bool(raw, "fire", False),
        read_bool(raw, "jump"),
        read_int(raw, "col", 0, 6),
        read_int(raw, "move", -1, 42, default=-1),
        read_choice(raw, "kind", ("rock", "paper"), default="rock"),
        read_choice(raw, "hand", ("left", "right")),
    )


def outcome(read, raw):
    try:
        return "ok", read(raw)
    except InputError as exc:
        return exc.code, str(exc)


# Values around each field's bounds and of every JSON type (and some that are not JSON), each field's own first.
CANDIDATES = {
    "dx": [-1.0, 1.0, 0.25, -1.0000001, 1.0000001, -1, 1, 0, True, None, "0.5", float("nan"), float("inf"), [0.5]],
    "aim": [-math.pi, math.pi, 0.0, math.pi + 1e-9, 3, None, False, float("-inf"), "x"],
    "fire": [True, False, 0, 1, None, "true"],
    "jump": [True, False, 1, None],
    "col": [0, 6, 3, -1, 7, 3.0, 2.5, True, None, "3", 10**400, float("nan")],
    "move": [-1, 42, 43, 0.0, False, None],
    "kind": ["rock", "paper", "Rock", "", None, 1],
    "hand": ["left", "right", "up", None, ["left"]],
}
VALID = {"dx": 0.5, "aim": 1.0, "fire": True, "jump": False, "col": 2, "move": 5, "kind": "paper", "hand": "left"}


def test_an_input_reader_reads_what_the_helpers_read_value_for_value_and_error_for_error():
    read = input_reader(*READER_FIELDS)
    rng = random.Random(5)
    raws = [dict(VALID), {}, [], None, "x", 3, collections.OrderedDict(VALID), types.MappingProxyType(dict(VALID))]
    for key, values in CANDIDATES.items():
        for value in values:
            raws.append({**VALID, key: value})  # one field changed
        raws.append({k: v for k, v in VALID.items() if k != key})  # one field missing
    for _ in range(3000):  # several fields changed or missing at once: which error comes first
        raw = {}
        for key, values in CANDIDATES.items():
            pick = rng.random()
            if pick < 0.15:
                continue
            raw[key] = VALID[key] if pick < 0.6 else rng.choice(values)
        raws.append(raw)
    for raw in raws:
        expected, got = outcome(read_with_helpers, raw), outcome(read, raw)
        assert got == expected, raw
        if expected[0] == "ok":  # the same types too (1 is read as 1.0, 3.0 as 3)
            assert [type(v) for v in got[1]] == [type(v) for v in expected[1]], raw


def test_an_input_reader_takes_only_declared_fields():
    with pytest.raises(TypeError):
        input_reader()
    with pytest.raises(TypeError):
        input_reader(number("dx", -1.0, 1.0), "dy")


def test_keys_and_bounds_are_data_not_code():
    """A key that would be code in the reader's source is only ever looked up."""
    key = "x'] or __import__('os').system('false') or raw['"
    read = input_reader(number(key, 0.0, 1.0), choice("y", ("a')\nraise SystemExit('",)))
    assert read({key: 0.5, "y": "a')\nraise SystemExit('"}) == (0.5, "a')\nraise SystemExit('")
    assert outcome(read, {key: 2.0, "y": "a"})[0] == "out_of_range"
