"""Connect Four, turn-based, for two players: drop a disc into one of 7 columns of 6; four in a row (across, up or
diagonally) wins. A turn lasts TURN_SECONDS; whoever lets it run out loses. Written against the author interface
only (docs/games.md): this file, static/js/renderers/connect_four.js and tests/games/test_connect_four_rules.py.

Input `{"col": 0..6, "move": n}`: drop a disc in `col` as move number `n` (the snapshot's `moves`, discs played so
far). An input naming any other move is ignored, so a client may resend its input every tick and a move is made once;
`"move": -1` is the client's "nothing to play". An input for the current move from the player who is not on turn is
refused with `not_your_turn`, one for a full column with `column_full` (events `input_refused`, once per move)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from games.rules.base import (
    GameSettings,
    InputExamples,
    MatchResult,
    check_object,
    check_seat,
    check_seat_count,
    rank_result,
    read_int,
    refused,
)
from games.rules.rng import Rng

COLUMNS = 7
ROWS = 6
TURN_SECONDS = 20.0
SETTINGS = GameSettings(
    slug="connect_four",
    name="Connect Four",
    min_players=2,
    max_players=2,
    tick_rate=4,
    match_seconds=COLUMNS * ROWS * TURN_SECONDS + 60.0,  # never shorter than a game played to the last disc
    countdown_seconds=2.0,
    abandon_rule="forfeit",
    input_fields=("col", "move"),
    turn_seconds=TURN_SECONDS,
    end_reasons=("four_in_a_row", "turn_timeout"),
)
DIRECTIONS = ((1, 0), (0, 1), (1, 1), (1, -1))


@dataclass(frozen=True, slots=True)
class Drop:
    col: int
    move: int


@dataclass(slots=True)
class FourState:
    tick: int
    rng: Rng
    board: list[list[int]]  # per column, the seats of its discs from the bottom up
    turn: int  # the seat on turn
    turn_started: int  # the tick the current turn began
    moves: int = 0  # discs played
    pending: int | None = None  # the column the player on turn dropped in, applied by the next step
    refusals: list[list[Any]] | None = None  # [seat, code] to report in the next step's events
    refused_move: list[int] | None = None  # per seat, the last move number a refusal was reported for
    scores: list[int] | None = None
    removed: list[bool] | None = None
    line: list[list[int]] | None = None  # the winning four, [[col, row], ...]
    finished: bool = False
    reason: str | None = None


class ConnectFourGame:
    examples = InputExamples(
        valid=({"col": 3, "move": 0}, {"col": 0, "move": 0}, {"col": 6, "move": 0}, {"col": 2, "move": -1}),
        invalid=(
            ({}, "missing_field"),
            ({"col": 3}, "missing_field"),
            ({"col": "3", "move": 0}, "wrong_type"),
            ({"col": None, "move": 0}, "wrong_type"),
            ({"col": True, "move": 0}, "wrong_type"),
            ({"col": 2.5, "move": 0}, "not_an_integer"),
            ({"col": 7, "move": 0}, "out_of_range"),
            ({"col": -1, "move": 0}, "out_of_range"),
            ({"col": 3, "move": -2}, "out_of_range"),
            ({"col": 3, "move": float("nan")}, "not_finite"),
        ),
    )

    def __init__(self, settings: GameSettings = SETTINGS):
        self.settings = settings
        self._turn_ticks = settings.turn_ticks or settings.match_ticks

    def initial_state(self, seats: int, *, seed: int) -> FourState:
        check_seat_count(self.settings, seats)
        rng = Rng(seed)
        return FourState(
            tick=0,
            rng=rng,
            board=[[] for _ in range(COLUMNS)],
            turn=rng.randint(0, seats - 1),  # who starts is drawn from the seed
            turn_started=0,
            refusals=[],
            refused_move=[-1] * seats,
            scores=[0] * seats,
            removed=[False] * seats,
        )

    def parse_input(self, raw: Mapping[str, Any]) -> Drop:
        raw = check_object(raw)
        return Drop(col=read_int(raw, "col", 0, COLUMNS - 1), move=read_int(raw, "move", -1, COLUMNS * ROWS))

    def legal_inputs(self, state: FourState, seat: int) -> list[dict]:
        if state.finished or state.removed[seat] or seat != state.turn:
            return []
        return [{"col": col, "move": state.moves} for col in range(COLUMNS) if len(state.board[col]) < ROWS]

    def apply_input(self, state: FourState, seat: int, inp: Drop) -> None:
        check_seat(seat, len(state.scores))
        if state.removed[seat] or state.finished or inp.move != state.moves:
            return  # an old move resent, or "nothing to play"
        if seat != state.turn:
            self._refuse(state, seat, "not_your_turn", f"It is seat {state.turn}'s turn.")
        elif len(state.board[inp.col]) >= ROWS:
            self._refuse(state, seat, "column_full", f"Column {inp.col} is full.")
        else:
            state.pending = inp.col

    @staticmethod
    def _refuse(state: FourState, seat: int, code: str, message: str) -> None:
        if state.refused_move[seat] != state.moves:  # once per move, however often the client resends
            state.refused_move[seat] = state.moves
            state.refusals.append([seat, code, message])

    def step(self, state: FourState, dt: float) -> list[dict]:
        if state.finished:
            return []
        state.tick += 1
        events = [refused(seat, code, message) for seat, code, message in state.refusals]
        state.refusals.clear()
        if state.pending is not None:
            col, seat = state.pending, state.turn
            state.pending = None
            column = state.board[col]
            column.append(seat)
            state.moves += 1
            events.append({"type": "drop", "seat": seat, "col": col, "row": len(column) - 1})
            line = self._four(state.board, col, len(column) - 1)
            if line:
                state.line = line
                state.scores[seat] = 1
                state.finished, state.reason = True, "four_in_a_row"
            elif state.moves == COLUMNS * ROWS:
                state.finished, state.reason = True, "draw"
            else:
                state.turn = 1 - seat
                state.turn_started = state.tick
        elif state.tick - state.turn_started >= self._turn_ticks:
            state.scores[1 - state.turn] = 1
            state.finished, state.reason = True, "turn_timeout"
        if not state.finished and state.tick >= self.settings.match_ticks:
            state.finished, state.reason = True, "time_limit"
        return events

    @staticmethod
    def _four(board: list[list[int]], col: int, row: int) -> list[list[int]] | None:
        seat = board[col][row]

        def owner(c: int, r: int) -> int | None:
            return board[c][r] if 0 <= c < COLUMNS and 0 <= r < len(board[c]) else None

        for dc, dr in DIRECTIONS:
            cells = [[col, row]]
            for sign in (1, -1):
                c, r = col + sign * dc, row + sign * dr
                while owner(c, r) == seat:
                    cells.append([c, r])
                    c, r = c + sign * dc, r + sign * dr
            if len(cells) >= 4:
                return sorted(cells)
        return None

    def remove_player(self, state: FourState, seat: int) -> None:
        check_seat(seat, len(state.scores))
        if state.finished or state.removed[seat]:
            return
        state.removed[seat] = True
        state.pending = None
        state.scores[1 - seat] = 1
        # Two players: leaving is a forfeit whatever the abandon rule says, one player cannot go on alone.
        state.finished = True
        state.reason = "forfeit" if self.settings.abandon_rule == "forfeit" else "last_player_standing"

    def is_finished(self, state: FourState) -> bool:
        return state.finished

    def result(self, state: FourState) -> MatchResult:
        return rank_result(state.scores, state.removed, state.reason or "time_limit", settings=self.settings)

    def snapshot(self, state: FourState) -> dict:
        rate = self.settings.tick_rate
        on_turn = None if state.finished else state.turn
        turn_left = 0 if on_turn is None else -(-(state.turn_started + self._turn_ticks - state.tick) // rate)
        return {
            "time_left": -(-(self.settings.match_ticks - state.tick) // rate),  # whole seconds, rounded up
            "turn": on_turn,
            "turn_left": turn_left,
            "moves": state.moves,
            "board": [column[:] for column in state.board],
            "scores": state.scores[:],
            "line": None if state.line is None else [cell[:] for cell in state.line],
        }

    def to_checkpoint(self, state: FourState) -> dict:
        return {
            "tick": state.tick,
            "rng": state.rng.state,
            "board": [column[:] for column in state.board],
            "turn": state.turn,
            "turn_started": state.turn_started,
            "moves": state.moves,
            "pending": state.pending,
            "refusals": [entry[:] for entry in state.refusals],
            "refused_move": state.refused_move[:],
            "scores": state.scores[:],
            "removed": state.removed[:],
            "line": None if state.line is None else [cell[:] for cell in state.line],
            "finished": state.finished,
            "reason": state.reason,
        }

    def from_checkpoint(self, data: Mapping[str, Any]) -> FourState:
        return FourState(
            tick=data["tick"],
            rng=Rng(data["rng"]),
            board=[list(column) for column in data["board"]],
            turn=data["turn"],
            turn_started=data["turn_started"],
            moves=data["moves"],
            pending=data["pending"],
            refusals=[list(entry) for entry in data["refusals"]],
            refused_move=list(data["refused_move"]),
            scores=list(data["scores"]),
            removed=list(data["removed"]),
            line=None if data["line"] is None else [list(cell) for cell in data["line"]],
            finished=data["finished"],
            reason=data["reason"],
        )


GAME = ConnectFourGame()
