"""Replaying a finished match from what was stored (game, seats, seed, input log, ticks) and checking it against the
recorded result: `manage.py replay <match_id> --verify`. The rules are pure and the log holds every input and removal
in the order the engine applied them, so the replay must reach the recorded result at the recorded tick."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from games.models import Match
from games.rules import get_game
from games.rules.base import MatchResult, replay_log
from games.services import ENDED_BY_ADMIN


class NotReplayable(Exception):
    """The match has no result to replay (not finished: waiting, running or cancelled)."""


@dataclass(frozen=True, slots=True)
class Replayed:
    match_id: int
    game: str
    seats: int
    seed: int
    recorded_ticks: int
    entries: int
    ticks: int  # steps the replay took
    finished: bool  # whether the rules say the replayed match is over
    result: MatchResult
    recorded: MatchResult
    differences: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return not self.differences


def match_replay(*, match_id: int) -> Replayed:
    """Replays a finished match and lists every way it differs from what was recorded (none: it verifies)."""
    match = Match.objects.filter(pk=match_id).first()
    if match is None:
        raise NotReplayable(f"there is no match {match_id}")
    if match.status != Match.Status.FINISHED:
        raise NotReplayable(f"match {match_id} is {match.status}: only finished matches have a result to replay")
    seats = list(match.players.order_by("seat").values_list("seat", "placing", "score"))
    game = get_game(match.game)
    log = match.input_log or []
    state, ticks = replay_log(game, len(seats), match.seed, log, match.ticks or 0)
    result = game.result(state)
    recorded = MatchResult(
        placings=[placing for _, placing, _ in seats],
        scores=[score for _, _, score in seats],
        winner_seats=[seat for seat, placing, _ in seats if placing == 1],
        reason=match.end_reason,
    )
    differences = []
    finished = game.is_finished(state)
    if match.end_reason == ENDED_BY_ADMIN:
        # Ended from the live-match console: play stopped at the recorded tick, ranked as the rules ranked it then.
        finished = ticks == match.ticks
        result = replace(result, reason=ENDED_BY_ADMIN)
        if not finished:
            differences.append(f"the replay took {ticks} ticks, the match was ended at tick {match.ticks}")
    elif not finished:
        differences.append(f"the replay is not over after the recorded {match.ticks} ticks")
    elif ticks != match.ticks:
        differences.append(f"the replay ended at tick {ticks}, the match at tick {match.ticks}")
    for name in ("reason", "scores", "placings"):
        mine, theirs = getattr(result, name), getattr(recorded, name)
        if mine != theirs:
            differences.append(f"{name}: replayed {mine}, recorded {theirs}")
    return Replayed(
        match_id=match.pk, game=match.game, seats=len(seats), seed=match.seed, recorded_ticks=match.ticks or 0,
        entries=len(log), ticks=ticks, finished=finished, result=result, recorded=recorded, differences=differences,
    )


# --- replays for the browser: what a client needs, and the state at every tick --------------------------------------

# Frames are served in chunks of this many ticks (10 s at 20 Hz): a seek loads one chunk, playback the next.
CHUNK_TICKS = 200
# A stored match longer than this is not replayed for the browser (the built-in games end within 180 s: 3,600 ticks).
MAX_REPLAY_TICKS = 200_000
# Computed frames stay in the cache (Redis when configured) this long after the last computation.
CACHE_SECONDS = 3600
# Game events worth a place on a replay's timeline (others, such as wall bounces, are only drawn).
TIMELINE_EVENTS = frozenset({"point", "hit", "respawn", "player_removed"})


@dataclass(frozen=True, slots=True)
class ReplayFrames:
    """A finished match replayed tick by tick: frames[t] is the snapshot at tick t (the state once tick t's inputs and
    removals are applied), events the timeline's [{"tick", "type", ...}]."""

    ticks: int
    frames: list[dict]
    events: list[dict]


def replay_frames(*, match: Match) -> ReplayFrames:
    """Replays a finished match through its rules, in the engine's order (replay_log's), keeping each tick's snapshot.
    Pure and deterministic: the same match always gives the same frames."""
    if match.status != Match.Status.FINISHED:
        raise NotReplayable(f"match {match.pk} is {match.status}: only finished matches can be replayed")
    ticks = match.ticks or 0
    if ticks > MAX_REPLAY_TICKS:
        raise NotReplayable(f"match {match.pk} has {ticks} ticks, over the {MAX_REPLAY_TICKS} a replay serves")
    game = get_game(match.game)
    seats = match.players.count()
    by_step: dict[int, list[tuple[int, object]]] = {}
    for step, seat, raw in match.input_log or []:
        by_step.setdefault(step, []).append((seat, raw))
    state = game.initial_state(seats, seed=match.seed)
    removed = [False] * seats
    frames: list[dict] = []
    events: list[dict] = []
    for tick in range(ticks + 1):
        for seat, raw in by_step.get(tick, ()):
            if raw is None:
                game.remove_player(state, seat)
                removed[seat] = True
                events.append({"tick": tick, "type": "player_removed", "seat": seat})
            else:
                game.apply_input(state, seat, game.parse_input(raw))
        frames.append({"tick": tick, "removed": removed[:], "state": game.snapshot(state)})
        if tick == ticks or game.is_finished(state):
            break
        for event in game.step(state, game.settings.dt):
            if event.get("type") in TIMELINE_EVENTS:
                events.append({"tick": tick + 1, **event})
    return ReplayFrames(ticks=len(frames) - 1, frames=frames, events=events)


def _cache_key(match_id: int, part: str) -> str:
    return f"replay:{match_id}:{part}"


def cached_replay(*, match: Match) -> tuple[int, list[dict]]:
    """(last tick, timeline events) of a finished match, computing and caching its frame chunks on first use."""
    from django.core.cache import cache

    meta = cache.get(_cache_key(match.pk, "meta"))
    if meta is None:
        replayed = replay_frames(match=match)
        chunks = {
            _cache_key(match.pk, str(start)): replayed.frames[start : start + CHUNK_TICKS]
            for start in range(0, replayed.ticks + 1, CHUNK_TICKS)
        }
        meta = {"ticks": replayed.ticks, "events": replayed.events}
        cache.set_many(chunks, CACHE_SECONDS)
        cache.set(_cache_key(match.pk, "meta"), meta, CACHE_SECONDS)  # last: its presence means the chunks are there
    return meta["ticks"], meta["events"]


def cached_frames(*, match: Match, start: int) -> list[dict]:
    """The chunk of frames that begins at `start` (a multiple of CHUNK_TICKS, within the match)."""
    from django.core.cache import cache

    frames = cache.get(_cache_key(match.pk, str(start)))
    if frames is None:  # evicted, or never computed: compute again
        cache.delete(_cache_key(match.pk, "meta"))
        cached_replay(match=match)
        frames = cache.get(_cache_key(match.pk, str(start)))
        if frames is None:  # a cache that keeps nothing (or too little): serve from the computation itself
            frames = replay_frames(match=match).frames[start : start + CHUNK_TICKS]
    return frames
