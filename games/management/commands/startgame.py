"""Scaffold a new game: `manage.py startgame <slug> [--name "Display name"]` writes its rules module, its renderer
module and its test file from the templates in games/scaffold/. The game is playable and passes the contract tests
as generated; docs/games.md walks on from there."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from games.rules import GAMES

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "scaffold"
SLUG = re.compile(r"[a-z][a-z0-9_]{1,39}")
# Module names of games/rules/ that are not games, and so cannot be a new game's slug either.
TAKEN_MODULES = {"base", "rng"}


def targets(slug: str) -> dict[str, str]:
    """Template file -> where the new game's copy goes, relative to the project root."""
    return {
        "rules.py.tmpl": f"games/rules/{slug}.py",
        "renderer.js.tmpl": f"static/js/renderers/{slug}.js",
        "test.py.tmpl": f"tests/games/test_{slug}_rules.py",
    }


def render(template: str, slug: str, name: str) -> str:
    class_name = "".join(part.capitalize() for part in slug.split("_"))
    return template.replace("__SLUG__", slug).replace("__NAME__", name).replace("__CLASS__", class_name)


def check_slug(slug: str) -> None:
    if not SLUG.fullmatch(slug) or keyword.iskeyword(slug) or slug.endswith("_"):
        raise CommandError(
            f"{slug!r} cannot be a game slug: 2-40 characters of lower case letters, digits and _, starting with a "
            "letter (it is also the module's name)"
        )
    if slug in GAMES or slug in TAKEN_MODULES:
        raise CommandError(f"{slug!r} is taken")


class Command(BaseCommand):
    help = "Scaffold a new game: its rules module, renderer module and test file, ready to play and to test."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", help="the game's slug and module name, e.g. coin_grab")
        parser.add_argument("--name", help="display name (default: from the slug)")
        parser.add_argument("--root", help="project root to write into (default: this project)")

    def handle(self, *args, slug: str, name: str | None, root: str | None, **options) -> None:
        check_slug(slug)
        name = name or slug.replace("_", " ").capitalize()
        if any(c in name for c in '"\\\n') or not name.strip() or len(name) > 60:
            raise CommandError("the name must be 1-60 characters, without quotes, backslashes or new lines")
        base = Path(root) if root else Path(settings.BASE_DIR)
        plan = {base / path: (TEMPLATES / template) for template, path in targets(slug).items()}
        existing = [str(path) for path in plan if path.exists()]
        if existing:
            raise CommandError(f"not overwriting {', '.join(existing)}")
        for path, template in plan.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(template.read_text(), slug, name))
            self.stdout.write(f"wrote {path}")
        self.stdout.write(
            f"Next: `pytest tests/games/test_{slug}_rules.py`, then start the server and create a {slug} match "
            "(docs/games.md, 'From scaffold to a match')."
        )
