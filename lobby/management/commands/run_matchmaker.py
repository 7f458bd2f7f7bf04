"""Run the matchmaker loop as a worker process until SIGTERM or SIGINT (Procfile: `matchmaker`)."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from lobby import matchmaker


class Command(BaseCommand):
    help = "Match queued tickets every --interval seconds; server processes stop their own loops while this runs."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--interval", type=float, default=matchmaker.INTERVAL_SECONDS)
        parser.add_argument("--once", action="store_true", help="Run a single step and exit.")

    def handle(self, *args, interval: float, once: bool, **options) -> None:
        if once:
            result = matchmaker.run_one_step()
            self.stdout.write(
                f"{result.matches} matches from {result.matched_tickets} tickets, {result.expired} expired"
            )
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"matchmaker running every {interval} s")
        matchmaker.run_forever(stop=stop, interval=interval)
        self.stdout.write("matchmaker stopped")
