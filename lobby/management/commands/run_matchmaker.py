"""Run the matchmaker loop as a worker process until SIGTERM or SIGINT (Procfile: `matchmaker`). With --metrics-bind it
serves its Prometheus metrics (the queue per game, matchmaking waits, database retries) on that address: a private one,
since this endpoint has no token (docs/operations.md, "Metrics")."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from lobby import matchmaker


class Command(BaseCommand):
    help = "Match queued tickets every --interval seconds; server processes stop their own loops while this runs."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--interval", type=float, default=matchmaker.INTERVAL_SECONDS)
        parser.add_argument("--once", action="store_true", help="Run a single step and exit.")
        parser.add_argument("--metrics-bind", metavar="HOST:PORT",
                            help="Serve Prometheus metrics at http://HOST:PORT/ (a private address: no token).")

    def handle(self, *args, interval: float, once: bool, metrics_bind: str | None = None, **options) -> None:
        if once:
            result = matchmaker.run_one_step()
            self.stdout.write(
                f"{result.matches} matches from {result.matched_tickets} tickets, {result.expired} expired"
            )
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if metrics_bind:
            self._serve_metrics(metrics_bind)
        self.stdout.write(f"matchmaker running every {interval} s")
        matchmaker.run_forever(stop=stop, interval=interval)
        self.stdout.write("matchmaker stopped")

    def _serve_metrics(self, bind: str) -> None:
        from prometheus_client import start_http_server

        from gameserver.metrics import REGISTRY

        host, _, port = bind.rpartition(":")
        if not host or not port.isdigit():
            raise CommandError(f"--metrics-bind {bind!r}: expected HOST:PORT, e.g. 10.0.0.5:9101")
        start_http_server(int(port), addr=host.strip("[]"), registry=REGISTRY)
        self.stdout.write(f"metrics at http://{bind}/")
