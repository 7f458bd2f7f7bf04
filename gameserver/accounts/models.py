"""The player account: Django's user plus the ban record that admins set."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    # A ban also clears is_active, which is what Django's login and DRF's token check look at;
    # these fields keep when and why for the admin.
    banned_at = models.DateTimeField(null=True, blank=True, db_index=True)
    ban_reason = models.CharField(max_length=500, blank=True)

    @property
    def is_banned(self) -> bool:
        return self.banned_at is not None
