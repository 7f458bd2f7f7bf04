"""Cancel matches past their invitation or join deadline, once (cron); the servers and the matchmaker also do it."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from games.services import match_cancel_overdue


class Command(BaseCommand):
    help = "Cancel invited matches whose invitations expired and playable matches nobody joined by their deadline."

    def handle(self, *args, **options) -> None:
        cancelled = match_cancel_overdue()
        self.stdout.write(f"cancelled {cancelled} match(es)")
