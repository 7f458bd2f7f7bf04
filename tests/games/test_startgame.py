"""`manage.py startgame`: the scaffolded game passes the contract checks and its own generated tests as generated."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

import games.rules as rules
from games.rules import get_game, register
from tests.games import contract


def load(name: str, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@pytest.fixture
def scaffolded(tmp_path, monkeypatch):
    """A game scaffolded into a temporary project root and registered (in a copy of the registry)."""
    call_command("startgame", "coin_grab", "--name", "Coin grab", "--root", str(tmp_path), stdout=open("/dev/null", "w"))
    monkeypatch.setattr(rules, "GAMES", dict(rules.GAMES))
    module = load("games.rules.coin_grab", tmp_path / "games/rules/coin_grab.py")
    register(module.GAME)
    return tmp_path, module


def test_scaffold_writes_the_three_files(scaffolded):
    root, module = scaffolded
    assert (root / "static/js/renderers/coin_grab.js").is_file()
    assert (root / "tests/games/test_coin_grab_rules.py").is_file()
    assert module.GAME.settings.slug == "coin_grab" and module.GAME.settings.name == "Coin grab"
    assert get_game("coin_grab") is module.GAME


def test_the_scaffolded_game_passes_the_contract_as_generated(scaffolded):
    contract.check_all(scaffolded[1].GAME)


def test_the_scaffolded_games_own_tests_pass_as_generated(scaffolded):
    root, _ = scaffolded
    tests = load("test_coin_grab_rules", root / "tests/games/test_coin_grab_rules.py")
    names = [name for name in dir(tests) if name.startswith("test_")]
    assert len(names) >= 3
    for name in names:
        getattr(tests, name)()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_scaffolded_renderer_is_valid_javascript(scaffolded):
    root, _ = scaffolded
    target = root / "renderer.mjs"  # node checks an .mjs file as an ES module
    target.write_text((root / "static/js/renderers/coin_grab.js").read_text())
    subprocess.run(["node", "--check", str(target)], check=True, capture_output=True)


@pytest.mark.parametrize("slug", ["pong", "base", "Coin", "1st", "a", "class", "coin-grab", "coin_", "x" * 41])
def test_bad_or_taken_slugs_are_refused(slug, tmp_path):
    with pytest.raises(CommandError):
        call_command("startgame", slug, "--root", str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_existing_files_are_not_overwritten(tmp_path):
    (tmp_path / "tests/games").mkdir(parents=True)
    (tmp_path / "tests/games/test_coin_grab_rules.py").write_text("# mine\n")
    with pytest.raises(CommandError, match="not overwriting"):
        call_command("startgame", "coin_grab", "--root", str(tmp_path))
    assert (tmp_path / "tests/games/test_coin_grab_rules.py").read_text() == "# mine\n"
    assert not (tmp_path / "games").exists()


def test_a_name_that_would_break_the_module_is_refused(tmp_path):
    with pytest.raises(CommandError):
        call_command("startgame", "coin_grab", "--name", 'say "hi"', "--root", str(tmp_path))
