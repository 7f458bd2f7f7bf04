"""What every page's template gets from the games app."""

from __future__ import annotations

from typing import Any

from games.rules import GAMES


def game_names(request) -> dict[str, Any]:
    """The games' display names by slug ("connect_four" -> "Connect Four"), for the pages' scripts (base.html puts them
    in a JSON script element; static/js/pages/queue.js gameName reads it)."""
    return {"game_names": {slug: game.settings.name for slug, game in GAMES.items()}}
