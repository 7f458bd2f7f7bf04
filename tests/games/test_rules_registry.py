"""The game registry, the contract every registered game keeps, and the shared rules helpers (RNG, ranking, settings)."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, replace

import pytest

import games.rules as rules
from games.rules import GAMES, UnknownGame, arena, get_game, pong, register
from games.rules.base import GameSettings, InputError, rank_result
from games.rules.rng import Rng
from tests.games import contract

# --- registry -------------------------------------------------------------------------------------------------------


def test_builtin_games_are_registered_under_their_slugs():
    assert get_game("arena") is arena.GAME
    assert get_game("pong") is pong.GAME
    assert all(slug == game.settings.slug for slug, game in GAMES.items())


def test_unknown_slug_raises_unknown_game_which_is_a_key_error():
    with pytest.raises(UnknownGame) as caught:
        get_game("chess")
    assert isinstance(caught.value, KeyError)
    assert "chess" in str(caught.value)


def test_registering_a_second_game_under_a_taken_slug_is_refused():
    with pytest.raises(ValueError):
        register(arena.ArenaGame())


def test_register_adds_a_new_game_and_returns_it(monkeypatch):
    monkeypatch.setattr(rules, "GAMES", dict(GAMES))
    variant = arena.ArenaGame(replace(arena.SETTINGS, slug="arena-short", match_seconds=30.0))
    assert register(variant) is variant
    assert get_game("arena-short") is variant
    assert "arena-short" not in GAMES


def test_builtin_settings_match_the_design():
    a, p = arena.SETTINGS, pong.SETTINGS
    assert (a.min_players, a.max_players, a.tick_rate, a.match_seconds, a.abandon_rule) == (2, 8, 20, 120.0, "continue")
    assert (p.min_players, p.max_players, p.tick_rate, p.match_seconds, p.abandon_rule) == (2, 2, 30, 180.0, "forfeit")
    assert (arena.GAME.score_limit, pong.GAME.score_limit) == (10, 5)


# --- the contract, for every registered game (tests/games/contract.py, driven by what each game declares) ---------

registered = pytest.mark.parametrize("slug", sorted(GAMES))


@registered
def test_game_declares_what_the_contract_needs(slug):
    contract.check_settings(get_game(slug))


@registered
@pytest.mark.parametrize("size", ["min_players", "max_players"])
def test_game_snapshots_are_json_and_msgpack(slug, size):
    game = get_game(slug)
    contract.check_snapshots(game, getattr(game.settings, size))


@registered
@pytest.mark.parametrize("size", ["min_players", "max_players"])
def test_a_game_restored_from_its_checkpoint_mid_match_plays_on_exactly_like_the_original(slug, size):
    game = get_game(slug)
    contract.check_checkpoint_round_trip(game, getattr(game.settings, size))


@registered
@pytest.mark.parametrize("seed", [1, 2])
def test_a_full_match_of_random_legal_inputs_ends_by_the_games_own_rule_and_replays_to_the_same_result(slug, seed):
    game = get_game(slug)
    seats = game.settings.min_players if seed == 1 else game.settings.max_players
    contract.check_full_match_and_replay(game, seats, seed)


@registered
def test_abandoning_follows_the_declared_abandon_rule(slug):
    contract.check_removals(get_game(slug))


@registered
def test_bad_inputs_are_refused_with_the_declared_codes_and_junk_never_crashes(slug):
    contract.check_bad_inputs(get_game(slug))


@registered
def test_turn_based_games_refuse_inputs_out_of_turn(slug):
    contract.check_turns(get_game(slug))


# --- RNG ------------------------------------------------------------------------------------------------------------


def test_rng_is_deterministic_and_its_state_is_one_int():
    a, b = Rng(2024), Rng(2024)
    assert [a.next_u64() for _ in range(5)] == [b.next_u64() for _ in range(5)]
    resumed = Rng(json.loads(json.dumps(a.state)))
    assert [resumed.next_float() for _ in range(5)] == [a.next_float() for _ in range(5)]


def test_rng_matches_the_splitmix64_reference_sequence():
    rng = Rng(1234567)
    assert [rng.next_u64() for _ in range(3)] == [6457827717110365317, 3203168211198807973, 9817491932198370423]


def test_rng_accepts_any_int_seed():
    assert Rng(-1).state == 2**64 - 1
    assert Rng(2**70 + 5).state == 5


def test_rng_floats_and_ints_stay_in_range_and_cover_it():
    rng = Rng(7)
    floats = [rng.next_float() for _ in range(2000)]
    assert all(0.0 <= f < 1.0 for f in floats)
    assert min(floats) < 0.01 and max(floats) > 0.99
    assert all(-2.5 <= rng.uniform(-2.5, 4.0) < 4.0 for _ in range(500))
    rolls = [rng.randint(1, 6) for _ in range(600)]
    assert set(rolls) == {1, 2, 3, 4, 5, 6}
    assert rng.randint(3, 3) == 3
    with pytest.raises(ValueError):
        rng.randint(2, 1)


def test_different_seeds_give_different_streams():
    assert Rng(1).next_u64() != Rng(2).next_u64()


# --- ranking and settings -------------------------------------------------------------------------------------------


def test_ranking_shares_places_for_ties_and_skips_the_next():
    result = rank_result([3, 3, 1], [False, False, False], "time_limit")
    assert result.placings == [1, 1, 3]
    assert result.winner_seats == [0, 1]


def test_ranking_puts_removed_seats_last_whatever_their_score():
    result = rank_result([9, 2, 5, 8], [True, False, False, True], "last_player_standing")
    assert result.placings == [3, 2, 1, 3]
    assert result.winner_seats == [2]
    assert result.scores == [9, 2, 5, 8]


def test_ranking_refuses_an_unknown_end_reason():
    with pytest.raises(ValueError):
        rank_result([1, 0], [False, False], "rage_quit")


def test_match_result_is_frozen():
    result = rank_result([1, 0], [False, False], "score_limit")
    with pytest.raises(FrozenInstanceError):
        result.reason = "forfeit"  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes",
    [
        {"min_players": 0},
        {"min_players": 3, "max_players": 2},
        {"tick_rate": 0},
        {"match_seconds": -1.0},
        {"abandon_rule": "pause"},
    ],
)
def test_settings_refuse_impossible_values(changes):
    with pytest.raises(ValueError):
        replace(arena.SETTINGS, **changes)


def test_settings_give_the_timestep_and_the_time_limit_in_ticks():
    settings = GameSettings(slug="x", name="X", min_players=1, max_players=1, tick_rate=30, match_seconds=2.5)
    assert settings.dt == 1 / 30
    assert settings.match_ticks == 75


def test_input_error_carries_a_code_and_a_message():
    error = InputError("out_of_range", "dy must be between -1 and 1")
    assert isinstance(error, ValueError)
    assert (error.code, str(error)) == ("out_of_range", "dy must be between -1 and 1")
