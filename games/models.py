"""Matches and their seats: who plays, how it ended, and what is needed to replay it (seed and input log)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models


def new_seed() -> int:
    # 53 bits so that the seed survives a round trip through JSON in a browser.
    return secrets.randbits(53)


class Match(models.Model):
    class Status(models.TextChoices):
        INVITED = "invited", "Waiting for invited players to accept"
        WAITING = "waiting", "Waiting for players"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.WAITING, Status.RUNNING)
    # Not over yet: what an admin or a deadline can still cancel.
    OPEN = (Status.INVITED, Status.WAITING, Status.RUNNING)

    game = models.CharField(max_length=40, db_index=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.WAITING, db_index=True)
    seed = models.BigIntegerField(default=new_seed)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # An invited match is cancelled ("invitation_expired") if not every player accepted by then.
    invite_expires_at = models.DateTimeField(null=True, blank=True)
    # Set when the match becomes playable: players must arrive by then (games/engine/runner.py starts it with those
    # present or cancels it); a match nobody runs by then is cancelled as "no_show" (services.match_cancel_overdue).
    join_deadline = models.DateTimeField(null=True, blank=True, db_index=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    ticks = models.PositiveIntegerField(null=True, blank=True)
    end_reason = models.CharField(max_length=40, blank=True)
    # [[tick, seat, input], ...] for applied inputs and [tick, seat, null] for a seat removed after its grace period.
    input_log = models.JSONField(null=True, blank=True)
    # Where the match came from ("api", "admin", "lobby", "matchmaking"), for operators.
    source = models.CharField(max_length=20, default="api")

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "matches"

    def __str__(self) -> str:
        return f"{self.game} #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class MatchPlayer(models.Model):
    match = models.ForeignKey(Match, on_delete=models.CASCADE, related_name="players")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="match_seats")
    seat = models.PositiveSmallIntegerField()
    placing = models.PositiveSmallIntegerField(null=True, blank=True)
    score = models.IntegerField(null=True, blank=True)
    # Seat given up: disconnected beyond the grace period (counts as a loss for ratings).
    abandoned = models.BooleanField(default=False)
    # Consent: a player seated by someone else's POST /api/matches/ accepts the invitation first.
    accepted = models.BooleanField(default=True)
    # Recorded with the result: the player connected to the match at least once. Only they are rated.
    connected = models.BooleanField(default=False)

    class Meta:
        ordering = ["match", "seat"]
        constraints = [
            models.UniqueConstraint(fields=["match", "seat"], name="unique_seat_per_match"),
            models.UniqueConstraint(fields=["match", "user"], name="unique_user_per_match"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in seat {self.seat} of match {self.match_id}"
