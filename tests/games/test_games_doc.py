"""docs/games.md stays true: its minimal game, copied from the page, passes the contract checks."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from tests.games import contract

DOC = Path(__file__).resolve().parents[2] / "docs" / "games.md"


def test_the_minimal_game_of_the_guide_passes_the_contract(tmp_path, monkeypatch):
    text = DOC.read_text()
    section = text[text.index("## A minimal game, end to end") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "dice_from_the_doc.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("dice_from_the_doc", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "dice_from_the_doc", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    contract.check_all(module.GAME)
