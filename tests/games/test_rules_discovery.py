"""Rules discovery: a module that defines GAME is a game, with no registry to edit."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from games.rules import GAMES, arena, discover, pong

GAME_MODULE = """
from games.rules.arena import ArenaGame, SETTINGS
from dataclasses import replace
GAME = ArenaGame(replace(SETTINGS, slug={slug!r}, name={slug!r}))
"""


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A fresh package on sys.path whose modules the test writes."""
    root = tmp_path / "discovered_pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [name for name in sys.modules if name.split(".")[0] == "discovered_pkg"]:
        del sys.modules[name]


def load(root):
    importlib.invalidate_caches()
    return importlib.import_module(root.name)


def test_every_module_defining_game_is_found_in_name_order_and_others_are_skipped(package):
    (package / "zeta.py").write_text(textwrap.dedent(GAME_MODULE.format(slug="zeta")))
    (package / "alpha.py").write_text(textwrap.dedent(GAME_MODULE.format(slug="alpha")))
    (package / "helpers.py").write_text("VALUE = 1\n")  # no GAME: a helper module
    (package / "_draft.py").write_text(textwrap.dedent(GAME_MODULE.format(slug="draft")))  # private: skipped
    assert [game.settings.slug for game in discover(load(package))] == ["alpha", "zeta"]


def test_a_broken_rules_module_fails_loudly(package):
    (package / "broken.py").write_text("raise RuntimeError('typo in the rules')\n")
    with pytest.raises(RuntimeError, match="typo in the rules"):
        discover(load(package))


def test_the_builtin_games_are_registered_by_discovery():
    import games.rules as package

    found = discover(package)
    assert arena.GAME in found and pong.GAME in found
    assert {game.settings.slug for game in found} == set(GAMES)
