"""Lobbies and their members, matchmaking tickets, per-game skill ratings and the rating change of every match."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q

# No 0/O, 1/I/L: codes are read aloud and typed by hand.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


def new_lobby_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class Lobby(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        IN_MATCH = "in_match", "In a match"
        CLOSED = "closed", "Closed"

    # The code is the lobby's handle in URLs; a private lobby is found only by someone who was given it.
    code = models.CharField(max_length=CODE_LENGTH, unique=True, default=new_lobby_code)
    game = models.CharField(max_length=40)
    size = models.PositiveSmallIntegerField()
    is_public = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    host = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="hosted_lobbies"
    )
    match = models.ForeignKey("games.Match", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "lobbies"
        indexes = [models.Index(fields=["status", "is_public", "game", "-created_at"], name="lobby_open_list")]

    def __str__(self) -> str:
        return f"{self.game} lobby {self.code} ({self.status})"


class LobbyMember(models.Model):
    lobby = models.ForeignKey(Lobby, on_delete=models.CASCADE, related_name="members")
    # One lobby at a time per user: the constraint settles two concurrent joins.
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lobby_membership")
    ready = models.BooleanField(default=False)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["joined_at", "id"]

    def __str__(self) -> str:
        return f"{self.user} in {self.lobby.code}"


class Ticket(models.Model):
    class Status(models.TextChoices):
        SEARCHING = "searching", "Searching"
        MATCHED = "matched", "Matched"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tickets")
    game = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SEARCHING)
    # Party size and mean skill, fixed when queued so that the matchmaker reads one table.
    size = models.PositiveSmallIntegerField(default=1)
    rating = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    match = models.ForeignKey("games.Match", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["game", "status", "rating"], name="ticket_queue")]

    def __str__(self) -> str:
        return f"ticket {self.pk} ({self.game}, {self.status})"


class TicketMember(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # True while the ticket is searching; the partial unique index makes "one active ticket per user" hold
    # even for two concurrent requests.
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user"], condition=Q(active=True), name="one_active_ticket_per_user"),
            models.UniqueConstraint(fields=["ticket", "user"], name="unique_user_per_ticket"),
        ]

    def __str__(self) -> str:
        return f"{self.user} on ticket {self.ticket_id}"


class Rating(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ratings")
    game = models.CharField(max_length=40)
    mu = models.FloatField()
    sigma = models.FloatField()
    # mu - 3 sigma: the conservative estimate the leaderboard sorts by, stored so that it can be indexed.
    ordinal = models.FloatField()
    matches = models.PositiveIntegerField(default=0)
    wins = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["game", "-ordinal", "id"]
        constraints = [models.UniqueConstraint(fields=["user", "game"], name="one_rating_per_user_and_game")]
        indexes = [models.Index(fields=["game", "-ordinal", "id"], name="rating_leaderboard")]

    def __str__(self) -> str:
        return f"{self.user} {self.game} {self.ordinal:.1f}"


class RatingChange(models.Model):
    match = models.ForeignKey("games.Match", on_delete=models.CASCADE, related_name="rating_changes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rating_changes")
    game = models.CharField(max_length=40)
    mu_before = models.FloatField()
    sigma_before = models.FloatField()
    mu_after = models.FloatField()
    sigma_after = models.FloatField()
    ordinal_before = models.FloatField()
    ordinal_after = models.FloatField()
    # The rank the rating update used: the placing, or last place for an abandoned seat.
    rank = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "id"]
        # A second update for the same match and user fails: ratings change once per match.
        constraints = [models.UniqueConstraint(fields=["match", "user"], name="one_rating_change_per_match_and_user")]

    def __str__(self) -> str:
        return f"{self.user} match {self.match_id}: {self.ordinal_before:.1f} -> {self.ordinal_after:.1f}"

    @property
    def delta(self) -> float:
        return self.ordinal_after - self.ordinal_before


class ChatLine(models.Model):
    """A lobby's recent chat, so that a reload or a late joiner sees the conversation; the service keeps the last
    CHAT_HISTORY_LINES per lobby (lobby/services.py) and the lines go with their lobby."""

    lobby = models.ForeignKey(Lobby, on_delete=models.CASCADE, related_name="chat_lines")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["lobby", "-id"], name="chat_recent")]

    def __str__(self) -> str:
        return f"{self.user} in {self.lobby.code}: {self.text[:40]}"
