"""Registry of the games' pure rules, by slug; the engine looks games up here and nowhere else."""

from __future__ import annotations

from games.rules import arena, pong
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


register(arena.GAME)
register(pong.GAME)
