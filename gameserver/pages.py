"""Server-rendered pages of the browser client (besides sign-up and log-in in gameserver/accounts/pages.py)."""

from __future__ import annotations
