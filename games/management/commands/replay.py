"""Replay a finished match from its seed and input log: `manage.py replay <match_id> [--verify]`."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from games.replay import NotReplayable, match_replay


class Command(BaseCommand):
    help = (
        "Replay a finished match from its stored seed and input log and print the replayed result beside the recorded "
        "one. With --verify, exit with status 1 (and say how) when they differ."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("match_id", type=int)
        parser.add_argument("--verify", action="store_true", help="Fail unless the replay reaches the recorded result.")

    def handle(self, *args, match_id: int, verify: bool, **options) -> None:
        try:
            replayed = match_replay(match_id=match_id)
        except NotReplayable as exc:
            raise CommandError(str(exc)) from None
        summary = {
            "match": replayed.match_id,
            "game": replayed.game,
            "seats": replayed.seats,
            "seed": replayed.seed,
            "log_entries": replayed.entries,
            "ticks": {"replayed": replayed.ticks, "recorded": replayed.recorded_ticks},
            "reason": {"replayed": replayed.result.reason, "recorded": replayed.recorded.reason},
            "scores": {"replayed": replayed.result.scores, "recorded": replayed.recorded.scores},
            "placings": {"replayed": replayed.result.placings, "recorded": replayed.recorded.placings},
            "verified": replayed.verified,
        }
        self.stdout.write(json.dumps(summary))
        if verify and not replayed.verified:
            raise CommandError(f"match {match_id} does not replay to its recorded result: " + "; ".join(replayed.differences))
