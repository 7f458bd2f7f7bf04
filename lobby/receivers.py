"""What the lobby app does when a match is created, finishes or is cancelled (games/signals.py): each receiver runs
inside the match's own transaction and calls one service."""

from __future__ import annotations

from django.dispatch import receiver

from games.models import Match
from games.signals import match_cancelled, match_created, match_finished
from lobby import services


@receiver(match_created, dispatch_uid="lobby.receivers.announce")
def on_match_created(sender, match, users, invited_by=None, **kwargs) -> None:
    services.match_announce(match=match, users=users, invited_by=invited_by)


@receiver(match_finished, dispatch_uid="lobby.receivers.lobby_after_finish")
def on_match_finished(sender, match, **kwargs) -> None:
    services.lobby_match_over(match_id=match.pk, match_status=match.status)


@receiver(match_cancelled, dispatch_uid="lobby.receivers.lobby_after_cancel")
def on_match_cancelled(sender, match_id, **kwargs) -> None:
    services.lobby_match_over(match_id=match_id, match_status=Match.Status.CANCELLED)
