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
