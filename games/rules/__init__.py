"""Registry of the games' pure rules, by slug; the engine looks games up here and nowhere else.

Games are discovered, not listed: every module of this package whose name does not start with an underscore and that
defines a module-level `GAME` (an object with `.settings: GameSettings`) is imported and registered under
`GAME.settings.slug`, in module-name order. Helper modules (base, rng) define no GAME and are skipped. docs/games.md
has the author's side of this."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from games.rules.base import Game


class UnknownGame(KeyError):  # noqa: N818 - the engine is written against this name
    """No game is registered under that slug."""


GAMES: dict[str, Game] = {}


def register(game: Game) -> Game:
    slug = game.settings.slug
    if slug in GAMES:
        raise ValueError(f"a game is already registered as {slug!r}")
    GAMES[slug] = game
    return game


def get_game(slug: str) -> Game:
    try:
        return GAMES[slug]
    except KeyError:
        raise UnknownGame(slug) from None


def discover(package: ModuleType) -> list[Game]:
    """The GAME of every public module directly in `package`, in module-name order (import errors propagate: a
    broken rules module must stop the server, not silently take its game away)."""
    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda info: info.name):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        game = getattr(module, "GAME", None)
        if game is not None:
            found.append(game)
    return found


def _register_discovered() -> None:
    import games.rules as package

    for game in discover(package):
        register(game)


_register_discovered()
