"""Pong for two players on an 800x600 field: seat 0 defends the left edge, seat 1 the right; y points downwards.
Only arithmetic and sqrt are used (no trig), so a replay is bit-exact on any IEEE-754 platform."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from games.rules.base import (
    GameSettings,
    InputExamples,
    MatchResult,
    check_object,
    check_seat,
    check_seat_count,
    rank_result,
    read_number,
)
from games.rules.rng import Rng

SETTINGS = GameSettings(
    slug="pong",
    name="Pong",
    min_players=2,
    max_players=2,
    tick_rate=30,
    match_seconds=180.0,
    abandon_rule="forfeit",
    pause_on_disconnect=True,
    input_fields=("dy",),
)
SCORE_LIMIT = 5

WIDTH = 800.0
HEIGHT = 600.0
PADDLE_HEIGHT = 80.0
PADDLE_WIDTH = 10.0
PADDLE_MARGIN = 20.0
PADDLE_SPEED = 400.0
BALL_RADIUS = 8.0
SERVE_SPEED = 300.0
SPEEDUP = 1.06
MAX_SPEED = 900.0
SERVE_DELAY = 1.0
# Directions are (1, slope) vectors rather than angles: a hit on the paddle's very end leaves at about 56 degrees,
# a serve at up to about 27 degrees.
MAX_BOUNCE_SLOPE = 1.5
MAX_SERVE_SLOPE = 0.5

LEFT_FACE = PADDLE_MARGIN + PADDLE_WIDTH
RIGHT_FACE = WIDTH - PADDLE_MARGIN - PADDLE_WIDTH
_HALF_PADDLE = PADDLE_HEIGHT / 2
_REACH = _HALF_PADDLE + BALL_RADIUS


class PongInput(NamedTuple):
    """A validated input (a tuple, like ArenaInput: cheap to build for every input)."""

    dy: float


@dataclass(slots=True)
class PongState:
    tick: int
    rng: Rng
    ball_x: float
    ball_y: float
    ball_vx: float
    ball_vy: float
    paddles: list[float]
    moves: list[float]
    scores: list[int]
    removed: list[bool]
    # While a serve is pending the ball waits in the centre until this tick, then heads for serve_to.
    serve_at: int | None = None
    serve_to: int = 0
    finished: bool = False
    reason: str | None = None


def _clamp(value: float, lo: float, hi: float) -> float:
    return lo if value < lo else hi if value > hi else value


class PongGame:
    """Input {"dy": -1..1} is the paddle's velocity as a fraction of PADDLE_SPEED and holds until the next input."""

    __slots__ = ("settings", "score_limit", "_limit_ticks", "_serve_delay_ticks")

    # What the contract tests (tests/games/test_rules_registry.py) feed every game.
    examples = InputExamples(
        valid=({"dy": -1.0}, {"dy": 0.0}, {"dy": 1.0}, {"dy": 0.35}, {"dy": -1}, {"dy": 1, "dx": 5}),
        invalid=(
            ({}, "missing_field"),
            ([0.5], "wrong_type"),
            ({"dy": "up"}, "wrong_type"),
            ({"dy": None}, "wrong_type"),
            ({"dy": True}, "wrong_type"),
            ({"dy": float("nan")}, "not_finite"),
            ({"dy": float("inf")}, "not_finite"),
            ({"dy": 1.5}, "out_of_range"),
        ),
    )

    def __init__(self, settings: GameSettings = SETTINGS, score_limit: int = SCORE_LIMIT):
        self.settings = settings
        self.score_limit = score_limit
        self._limit_ticks = settings.match_ticks
        self._serve_delay_ticks = max(1, round(SERVE_DELAY * settings.tick_rate))

    def initial_state(self, seats: int, *, seed: int) -> PongState:
        check_seat_count(self.settings, seats)
        rng = Rng(seed)
        mid = HEIGHT / 2
        state = PongState(
            tick=0,
            rng=rng,
            ball_x=WIDTH / 2,
            ball_y=mid,
            ball_vx=0.0,
            ball_vy=0.0,
            paddles=[mid, mid],
            moves=[0.0, 0.0],
            scores=[0, 0],
            removed=[False, False],
        )
        # The engine runs its countdown before the first step, so the first serve needs no extra pause.
        self._serve(state, rng.randint(0, 1))
        return state

    def parse_input(self, raw: Mapping[str, Any]) -> PongInput:
        return PongInput(dy=read_number(check_object(raw), "dy", -1.0, 1.0))

    def apply_input(self, state: PongState, seat: int, inp: PongInput) -> None:
        check_seat(seat, 2)
        if not state.finished:
            state.moves[seat] = inp.dy

    def step(self, state: PongState, dt: float) -> list[dict]:
        if state.finished:
            return []
        state.tick += 1
        events: list[dict] = []
        travel = PADDLE_SPEED * dt
        paddles = state.paddles
        for seat in (0, 1):
            paddles[seat] = _clamp(paddles[seat] + state.moves[seat] * travel, _HALF_PADDLE, HEIGHT - _HALF_PADDLE)
        if state.serve_at is not None and state.tick >= state.serve_at:
            state.serve_at = None
            self._serve(state, state.serve_to)
        if state.serve_at is None:
            self._move_ball(state, dt, events)
            if not 0.0 <= state.ball_x <= WIDTH:
                self._point(state, 1 if state.ball_x < 0.0 else 0, events)
        if not state.finished and state.tick >= self._limit_ticks:
            state.finished = True
            state.reason = "time_limit"
        return events

    def remove_player(self, state: PongState, seat: int) -> None:
        check_seat(seat, 2)
        if state.finished:
            return
        state.removed[seat] = True
        state.finished = True
        # With two seats, "continue" leaves a single player, which ends the match just the same.
        state.reason = "forfeit" if self.settings.abandon_rule == "forfeit" else "last_player_standing"

    def is_finished(self, state: PongState) -> bool:
        return state.finished

    def result(self, state: PongState) -> MatchResult:
        """Before the end this ranks the current scores as if time had just run out."""
        return rank_result(state.scores, state.removed, state.reason or "time_limit")

    def snapshot(self, state: PongState) -> dict:
        return {
            # Whole seconds, so that it changes once a second rather than in every delta. The envelope's `tick` says
            # which tick this is, so the state does not repeat it.
            "time_left": -(-(self._limit_ticks - state.tick) // self.settings.tick_rate),
            # round(v * 10) / 10: as round(v, 1) at half the cost (see ArenaGame.snapshot).
            "ball": [round(state.ball_x * 10) / 10, round(state.ball_y * 10) / 10, round(state.ball_vx * 10) / 10,
                     round(state.ball_vy * 10) / 10],
            "paddles": [round(state.paddles[0] * 10) / 10, round(state.paddles[1] * 10) / 10],
            "scores": state.scores[:],
        }

    def to_checkpoint(self, state: PongState) -> dict:
        return {
            "tick": state.tick,
            "rng": state.rng.state,
            "ball": [state.ball_x, state.ball_y, state.ball_vx, state.ball_vy],
            "paddles": state.paddles[:],
            "moves": state.moves[:],
            "scores": state.scores[:],
            "removed": state.removed[:],
            "serve_at": state.serve_at,
            "serve_to": state.serve_to,
            "finished": state.finished,
            "reason": state.reason,
        }

    def from_checkpoint(self, data: Mapping[str, Any]) -> PongState:
        x, y, vx, vy = data["ball"]
        return PongState(
            tick=data["tick"],
            rng=Rng(data["rng"]),
            ball_x=x,
            ball_y=y,
            ball_vx=vx,
            ball_vy=vy,
            paddles=list(data["paddles"]),
            moves=list(data["moves"]),
            scores=list(data["scores"]),
            removed=list(data["removed"]),
            serve_at=data["serve_at"],
            serve_to=data["serve_to"],
            finished=data["finished"],
            reason=data["reason"],
        )

    @staticmethod
    def _serve(state: PongState, to_seat: int) -> None:
        slope = state.rng.uniform(-MAX_SERVE_SLOPE, MAX_SERVE_SLOPE)
        scale = SERVE_SPEED / math.sqrt(1.0 + slope * slope)
        state.ball_x = WIDTH / 2
        state.ball_y = HEIGHT / 2
        state.ball_vx = -scale if to_seat == 0 else scale
        state.ball_vy = slope * scale

    def _point(self, state: PongState, scorer: int, events: list[dict]) -> None:
        state.scores[scorer] += 1
        events.append({"type": "point", "seat": scorer})
        state.ball_x = WIDTH / 2
        state.ball_y = HEIGHT / 2
        state.ball_vx = state.ball_vy = 0.0
        if state.scores[scorer] >= self.score_limit:
            state.finished = True
            state.reason = "score_limit"
        else:
            state.serve_at = state.tick + self._serve_delay_ticks
            state.serve_to = 1 - scorer

    @staticmethod
    def _move_ball(state: PongState, dt: float, events: list[dict]) -> None:
        """Advance the ball event by event through the tick, so no speed can carry it through a paddle or wall."""
        x, y, vx, vy = state.ball_x, state.ball_y, state.ball_vx, state.ball_vy
        remaining = dt
        top = BALL_RADIUS
        bottom = HEIGHT - BALL_RADIUS
        left = LEFT_FACE + BALL_RADIUS
        right = RIGHT_FACE - BALL_RADIUS
        # Each event turns the ball away from what it hit, and the next one is a field's width or height away,
        # so this ends after a handful of rounds even at absurd speeds.
        while remaining > 0.0:
            when = remaining
            hit: str | None = None
            if vy < 0.0:
                t = max((top - y) / vy, 0.0)
                if t < when:
                    when, hit = t, "top"
            elif vy > 0.0:
                t = max((bottom - y) / vy, 0.0)
                if t < when:
                    when, hit = t, "bottom"
            paddle_seat = -1
            # Only a ball still in front of a paddle's face can hit it; once past, it is a point for the other side.
            if vx < 0.0 and x >= left:
                paddle_seat, face = 0, left
            elif vx > 0.0 and x <= right:
                paddle_seat, face = 1, right
            if paddle_seat >= 0:
                t = (face - x) / vx
                if t <= when and abs(y + vy * t - state.paddles[paddle_seat]) <= _REACH:
                    when, hit = t, "paddle"
            x += vx * when
            y += vy * when
            remaining -= when
            if hit is None:
                break
            if hit == "paddle":
                x = face
                # Where it meets the paddle sets the angle: the centre returns it flat, the ends steeply.
                slope = (y - state.paddles[paddle_seat]) / _REACH * MAX_BOUNCE_SLOPE
                speed = min(math.sqrt(vx * vx + vy * vy) * SPEEDUP, MAX_SPEED)
                scale = speed / math.sqrt(1.0 + slope * slope)
                vx = scale if paddle_seat == 0 else -scale
                vy = slope * scale
                events.append({"type": "paddle_hit", "seat": paddle_seat})
            else:
                y = top if hit == "top" else bottom
                vy = -vy
                events.append({"type": "wall_bounce"})
        state.ball_x, state.ball_y, state.ball_vx, state.ball_vy = x, y, vx, vy


GAME = PongGame()
