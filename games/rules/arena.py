"""Arena: a top-down shooter for 2-8 players in a walled 1000x1000 square; a hit scores a point for the shooter.
Coordinates: x to the right, y downwards, aim = atan2(dy, dx) in those axes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from games.rules.base import (
    GameSettings,
    InputExamples,
    MatchResult,
    boolean,
    check_seat,
    check_seat_count,
    input_reader,
    number,
    optional_number,
    rank_result,
)
from games.rules.rng import Rng

SETTINGS = GameSettings(
    slug="arena",
    name="Arena",
    min_players=2,
    max_players=8,
    tick_rate=20,
    match_seconds=120.0,
    abandon_rule="continue",
    input_fields=("dx", "dy", "fire", "aim"),
)
SCORE_LIMIT = 10
# An input's fields, in the order of SETTINGS.input_fields (checked in tests): aim is optional, fire false by default.
read_input = input_reader(
    number("dx", -1.0, 1.0), number("dy", -1.0, 1.0), boolean("fire", False), optional_number("aim", -math.pi, math.pi)
)

SIZE = 1000.0
RADIUS = 15.0
SPEED = 200.0
BULLET_SPEED = 600.0
BULLET_RADIUS = 3.0
FIRE_COOLDOWN = 0.3
BULLET_LIFETIME = 1.5
RESPAWN_DELAY = 1.0
INVULNERABLE_SECONDS = 1.5

_LO = RADIUS
_HI = SIZE - RADIUS
_DIAMETER = 2 * RADIUS
# The push puts centres exactly a diameter apart; the tolerance absorbs the rounding of that push.
_MIN_GAP_SQ = (_DIAMETER - 1e-6) ** 2
_HIT_DISTANCE_SQ = (RADIUS + BULLET_RADIUS) ** 2
# Spawning well clear of everyone avoids a spawn straight into someone's face (or into a push).
_SPAWN_CLEARANCE_SQ = (4 * RADIUS) ** 2
# Pairwise pushes converge quickly with at most eight players; what is left after this is a corner jam.
_SEPARATION_PASSES = 4


class ArenaInput(NamedTuple):
    """A validated input. A tuple: built for every input of every player, and a frozen dataclass's __init__ costs
    several times more."""

    dx: float
    dy: float
    fire: bool
    aim: float | None


@dataclass(slots=True)
class Player:
    seat: int
    x: float
    y: float
    aim: float = 0.0
    score: int = 0
    alive: bool = True
    active: bool = True
    dx: float = 0.0
    dy: float = 0.0
    fire: bool = False
    # A press of fire since the last step: a tick that applies several inputs (the engine's catch-up) still shoots
    # for a press that a later input of the same tick released. The cooldown still applies.
    fire_pressed: bool = False
    next_fire_tick: int = 0
    respawn_tick: int = 0
    invulnerable_until: int = 0
    # Position at the start of the current tick, the fallback when a corner jam cannot be pushed apart.
    px: float = 0.0
    py: float = 0.0


@dataclass(slots=True)
class Bullet:
    x: float
    y: float
    vx: float
    vy: float
    owner: int
    expires_tick: int


# Field names for checkpoints: dataclasses.asdict() deep-copies every value, and was most of a checkpoint's cost.
_PLAYER_FIELDS = tuple(f.name for f in fields(Player))
_BULLET_FIELDS = tuple(f.name for f in fields(Bullet))


@dataclass(slots=True)
class ArenaState:
    tick: int
    rng: Rng
    players: list[Player]
    bullets: list[Bullet]
    finished: bool = False
    reason: str | None = None


def _clamp(value: float, lo: float, hi: float) -> float:
    return lo if value < lo else hi if value > hi else value


def _shove(p: Player, ux: float, uy: float, distance: float) -> float:
    """Move p by distance along the unit vector (ux, uy), stopping at the walls; returns how far it really got."""
    x = _clamp(p.x + ux * distance, _LO, _HI)
    y = _clamp(p.y + uy * distance, _LO, _HI)
    moved = (x - p.x) * ux + (y - p.y) * uy
    p.x = x
    p.y = y
    return moved


def _push_apart(a: Player, b: Player) -> bool:
    dx = b.x - a.x
    dy = b.y - a.y
    d2 = dx * dx + dy * dy
    if d2 >= _MIN_GAP_SQ:
        return False
    if d2 == 0.0:
        # Exactly coincident centres have no direction; any fixed one keeps the outcome deterministic.
        nx, ny, d = 1.0, 0.0, 0.0
    else:
        d = math.sqrt(d2)
        nx = dx / d
        ny = dy / d
    gap = _DIAMETER - d
    # Share the push; whatever one side cannot take because of a wall, the other takes.
    moved = _shove(a, -nx, -ny, gap * 0.5)
    moved += _shove(b, nx, ny, gap - moved)
    if moved < gap:
        _shove(a, -nx, -ny, gap - moved)
    return True


def _distance_sq(p: Player, x: float, y: float) -> float:
    dx = x - p.x
    dy = y - p.y
    return dx * dx + dy * dy


def _overlapping(a: Player, b: Player) -> bool:
    return _distance_sq(a, b.x, b.y) < _MIN_GAP_SQ


def _first_overlap(players: list[Player]) -> tuple[Player, Player] | None:
    for i, a in enumerate(players):
        if not a.alive:
            continue
        for b in players[i + 1 :]:
            if b.alive and _overlapping(a, b):
                return a, b
    return None


class ArenaGame:
    """Input {"dx", "dy", "fire", "aim"} holds until the next one: fire held shoots once per cooldown, and a press
    released by a later input before the next step counts as held for that step. A hit player loses control (and its held input) until it respawns."""

    __slots__ = (
        "settings",
        "score_limit",
        "_limit_ticks",
        "_cooldown_ticks",
        "_bullet_ticks",
        "_respawn_ticks",
        "_invulnerable_ticks",
    )

    # What the contract tests (tests/games/test_rules_registry.py) feed every game.
    examples = InputExamples(
        valid=(
            {"dx": 1.0, "dy": 0.0},
            {"dx": -1.0, "dy": -1.0, "fire": True, "aim": 0.5},
            {"dx": 0.0, "dy": 1.0, "fire": True},
            {"dx": 0.3, "dy": -0.7, "fire": False, "aim": -3.0},
            {"dx": 0, "dy": 0, "fire": True, "aim": 3.14},
        ),
        invalid=(
            ({}, "missing_field"),
            ({"dx": 1.0}, "missing_field"),
            ("left", "wrong_type"),
            ({"dx": "1", "dy": 0.0}, "wrong_type"),
            ({"dx": True, "dy": 0.0}, "wrong_type"),
            ({"dx": 0.0, "dy": 0.0, "fire": 1}, "wrong_type"),
            ({"dx": float("nan"), "dy": 0.0}, "not_finite"),
            ({"dx": 0.0, "dy": float("-inf")}, "not_finite"),
            ({"dx": 2.0, "dy": 0.0}, "out_of_range"),
            ({"dx": 0.0, "dy": 0.0, "aim": 4.0}, "out_of_range"),
        ),
    )

    def __init__(self, settings: GameSettings = SETTINGS, score_limit: int = SCORE_LIMIT):
        self.settings = settings
        self.score_limit = score_limit
        # Timers are whole ticks so they are exact and need no per-tick countdown.
        rate = settings.tick_rate
        self._limit_ticks = settings.match_ticks
        self._cooldown_ticks = max(1, round(FIRE_COOLDOWN * rate))
        self._bullet_ticks = max(1, round(BULLET_LIFETIME * rate))
        self._respawn_ticks = max(1, round(RESPAWN_DELAY * rate))
        self._invulnerable_ticks = max(1, round(INVULNERABLE_SECONDS * rate))

    def initial_state(self, seats: int, *, seed: int) -> ArenaState:
        check_seat_count(self.settings, seats)
        rng = Rng(seed)
        players: list[Player] = []
        for seat in range(seats):
            x, y = self._free_spot(rng, players)
            players.append(Player(seat=seat, x=x, y=y, px=x, py=y))
        return ArenaState(tick=0, rng=rng, players=players, bullets=[])

    def parse_input(self, raw: Mapping[str, Any]) -> ArenaInput:
        dx, dy, fire, aim = read_input(raw)
        length_sq = dx * dx + dy * dy
        if length_sq > 1.0:
            # Diagonals would otherwise be ~41% faster than straight moves.
            length = math.sqrt(length_sq)
            dx /= length
            dy /= length
        return ArenaInput(dx, dy, fire, aim)  # positionally: keywords cost a NamedTuple half as much again

    def apply_input(self, state: ArenaState, seat: int, inp: ArenaInput) -> None:
        check_seat(seat, len(state.players))
        p = state.players[seat]
        # Dead (respawning) and removed players have no control; stale input must not carry over a respawn.
        if not p.alive or state.finished:
            return
        p.dx = inp.dx
        p.dy = inp.dy
        p.fire = inp.fire
        if inp.fire:
            p.fire_pressed = True
        if inp.aim is not None:
            p.aim = inp.aim

    def step(self, state: ArenaState, dt: float) -> list[dict]:
        if state.finished:
            return []
        state.tick += 1
        tick = state.tick
        events: list[dict] = []
        players = state.players
        for p in players:
            if p.active and not p.alive and p.respawn_tick <= tick:
                p.x, p.y = self._free_spot(state.rng, players)
                p.alive = True
                p.invulnerable_until = tick + self._invulnerable_ticks
                events.append({"type": "respawn", "seat": p.seat})
        travel = SPEED * dt
        for p in players:
            if p.alive:
                p.px = p.x
                p.py = p.y
                p.x = _clamp(p.x + p.dx * travel, _LO, _HI)
                p.y = _clamp(p.y + p.dy * travel, _LO, _HI)
        self._separate(players)
        for p in players:
            pressed, p.fire_pressed = p.fire_pressed, False
            if p.alive and (p.fire or pressed) and tick >= p.next_fire_tick:
                p.next_fire_tick = tick + self._cooldown_ticks
                state.bullets.append(
                    Bullet(
                        p.x,
                        p.y,
                        math.cos(p.aim) * BULLET_SPEED,
                        math.sin(p.aim) * BULLET_SPEED,
                        p.seat,
                        tick + self._bullet_ticks,
                    )
                )
        self._move_bullets(state, dt, events)
        if not state.finished and tick >= self._limit_ticks:
            state.finished = True
            state.reason = "time_limit"
        return events

    def remove_player(self, state: ArenaState, seat: int) -> None:
        check_seat(seat, len(state.players))
        p = state.players[seat]
        if state.finished or not p.active:
            return
        p.active = False
        p.alive = False
        p.dx = p.dy = 0.0
        p.fire = p.fire_pressed = False
        # Their bullets in flight would otherwise still score for a player who is gone.
        state.bullets[:] = [b for b in state.bullets if b.owner != seat]
        if self.settings.abandon_rule == "forfeit":
            state.finished = True
            state.reason = "forfeit"
        elif sum(q.active for q in state.players) == 1:
            state.finished = True
            state.reason = "last_player_standing"

    def is_finished(self, state: ArenaState) -> bool:
        return state.finished

    def result(self, state: ArenaState) -> MatchResult:
        """Before the end this ranks the current scores as if time had just run out."""
        return rank_result(
            [p.score for p in state.players], [not p.active for p in state.players], state.reason or "time_limit"
        )

    def snapshot(self, state: ArenaState) -> dict:
        """Removed players are left out; aim keeps two decimals because 0.1 rad visibly jerks a turning gun.
        round(v * 10) / 10 rather than round(v, 1): the same numbers at half the cost, for every player of every match
        20 times a second."""
        return {
            # Whole seconds, so that it changes once a second rather than in every delta. The envelope's `tick` says
            # which tick this is, so the state does not repeat it.
            "time_left": -(-(self._limit_ticks - state.tick) // self.settings.tick_rate),
            "players": [
                {
                    "seat": p.seat,
                    "x": round(p.x * 10) / 10,
                    "y": round(p.y * 10) / 10,
                    "aim": round(p.aim * 100) / 100,
                    "score": p.score,
                    "alive": p.alive,
                }
                for p in state.players
                if p.active
            ],
            "bullets": [[round(b.x * 10) / 10, round(b.y * 10) / 10] for b in state.bullets],
        }

    def to_checkpoint(self, state: ArenaState) -> dict:
        return {
            "tick": state.tick,
            "rng": state.rng.state,
            "players": [{name: getattr(p, name) for name in _PLAYER_FIELDS} for p in state.players],
            "bullets": [{name: getattr(b, name) for name in _BULLET_FIELDS} for b in state.bullets],
            "finished": state.finished,
            "reason": state.reason,
        }

    def from_checkpoint(self, data: Mapping[str, Any]) -> ArenaState:
        return ArenaState(
            tick=data["tick"],
            rng=Rng(data["rng"]),
            players=[Player(**p) for p in data["players"]],
            bullets=[Bullet(**b) for b in data["bullets"]],
            finished=data["finished"],
            reason=data["reason"],
        )

    def _free_spot(self, rng: Rng, players: list[Player]) -> tuple[float, float]:
        # At most eight players cover under a tenth of the floor even with the clearance, so this ends quickly.
        while True:
            x = rng.uniform(_LO, _HI)
            y = rng.uniform(_LO, _HI)
            if all(not p.alive or _distance_sq(p, x, y) >= _SPAWN_CLEARANCE_SQ for p in players):
                return x, y

    def _separate(self, players: list[Player]) -> None:
        n = len(players)
        for _ in range(_SEPARATION_PASSES):
            pushed = False
            for i in range(n):
                a = players[i]
                if not a.alive:
                    continue
                for j in range(i + 1, n):
                    b = players[j]
                    if b.alive and _push_apart(a, b):
                        pushed = True
            if not pushed:
                return
        # A jam the pushes could not clear (players wedged into a corner): put the players involved back where
        # they started this tick. Start positions never overlap, so each round settles at least one more player.
        while (pair := _first_overlap(players)) is not None:
            for p in pair:
                p.x = p.px
                p.y = p.py

    def _move_bullets(self, state: ArenaState, dt: float, events: list[dict]) -> None:
        players = state.players
        bullets = state.bullets
        tick = state.tick
        keep = 0
        for b in bullets:
            x1 = b.x + b.vx * dt
            y1 = b.y + b.vy * dt
            target = self._first_hit(players, b, x1, y1, tick)
            if target is not None:
                shooter = players[b.owner]
                shooter.score += 1
                target.alive = False
                target.respawn_tick = tick + self._respawn_ticks
                target.dx = target.dy = 0.0
                target.fire = target.fire_pressed = False
                events.append({"type": "hit", "by": b.owner, "target": target.seat})
                if shooter.score >= self.score_limit:
                    # Finish the tick's other bullets first: simultaneous winners share first place.
                    state.finished = True
                    state.reason = "score_limit"
                continue
            if tick >= b.expires_tick or not (0.0 <= x1 <= SIZE and 0.0 <= y1 <= SIZE):
                continue
            b.x = x1
            b.y = y1
            bullets[keep] = b
            keep += 1
        del bullets[keep:]

    @staticmethod
    def _first_hit(players: list[Player], b: Bullet, x1: float, y1: float, tick: int) -> Player | None:
        """Swept test of the bullet's path this tick, so a fast bullet cannot skip over a player."""
        sx = x1 - b.x
        sy = y1 - b.y
        a = sx * sx + sy * sy
        best_t = 2.0
        best: Player | None = None
        for p in players:
            if not p.alive or p.seat == b.owner or tick < p.invulnerable_until:
                continue
            fx = b.x - p.x
            fy = b.y - p.y
            c = fx * fx + fy * fy - _HIT_DISTANCE_SQ
            if c <= 0.0:
                t = 0.0
            else:
                half_b = fx * sx + fy * sy
                if half_b >= 0.0:
                    continue
                disc = half_b * half_b - a * c
                if disc < 0.0:
                    continue
                t = (-half_b - math.sqrt(disc)) / a
                if t > 1.0:
                    continue
            if t < best_t:
                best_t = t
                best = p
        return best


GAME = ArenaGame()
