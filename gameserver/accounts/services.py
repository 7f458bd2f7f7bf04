"""Account state changes: registration, login and its throttle, logout, password change, bans and WS tickets."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from rest_framework.authtoken.models import Token

from gameserver import throttle
from gameserver.accounts.models import User
from gameserver.broadcast import credential_group, send_on_commit, user_group

SESSION_REVOKE = "session.revoke"


class Throttled(Exception):
    """Too many attempts from this address (or at this account): refused until the window ends."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class LoginThrottled(Throttled):
    def __init__(self, retry_after: int):
        super().__init__(f"Too many failed logins. Try again in {retry_after} s.", retry_after)


class SignupThrottled(Throttled):
    def __init__(self, retry_after: int):
        super().__init__(f"Too many sign-ups from this address. Try again in {retry_after} s.", retry_after)


class InvalidCredentials(Exception):
    pass


class AccountBanned(Exception):
    pass


# --- registration and login ------------------------------------------------------------------------------------


def signup_check_throttle(*, client_ip: str) -> None:
    """Count one sign-up attempt from this address (API or page); SignupThrottled over THROTTLE_REGISTER."""
    counted = throttle.hit("signup", client_ip, settings.SIGNUP_RATE)
    if counted.over_limit:
        raise SignupThrottled(counted.retry_after)


@transaction.atomic
def user_register(*, username: str, password: str, email: str = "") -> User:
    """Create an account. The caller has validated the password and counted the attempt (signup_check_throttle)."""
    return User.objects.create_user(username=username, password=password, email=email)


def user_authenticate(*, username: str, password: str, client_ip: str) -> User:
    """Check a username and password: the one place every login path (API, login page, admin) checks one.
    Raises LoginThrottled, AccountBanned or InvalidCredentials.

    Each attempt is counted per account (guessing one password) and per address (trying many accounts) BEFORE the
    password is checked, atomically, and given back when the password was right: so of any number of parallel
    guesses at most LOGIN_FAILURE_LIMIT wrong ones are ever checked in a window, and the rest get 429."""
    rate = throttle.Rate(limit=settings.LOGIN_FAILURE_LIMIT, window_seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    counts = [throttle.hit("login-user", username.lower(), rate), throttle.hit("login-ip", client_ip, rate)]
    refused = [counted for counted in counts if counted.over_limit]
    if refused:
        raise LoginThrottled(max(counted.retry_after for counted in refused))
    user = authenticate(username=username, password=password)
    if user is None:
        banned = User.objects.filter(username=username, banned_at__isnull=False).first()
        if banned is not None and banned.check_password(password):
            raise AccountBanned()
        raise InvalidCredentials()
    for counted in counts:
        throttle.refund(counted)
    return user


def token_for(*, user: User) -> Token:
    token, _ = Token.objects.get_or_create(user=user)
    return token


# --- revocation --------------------------------------------------------------------------------------------------
# What a credential opened lives on in two places besides the database: WebSocket tickets not yet redeemed (in the
# cache, for WS_TICKET_TTL_SECONDS at most) and live sockets (in the credential's and the user's channel groups).
# Revoking a credential marks it in the cache for as long as a ticket can live, and closes the sockets with 4012.


def _revoke_credential(*, credential: str, reason: str) -> None:
    group = credential_group(credential)
    cache.set(f"revoked:{group}", True, timeout=settings.WS_TICKET_TTL_SECONDS + 5)
    send_on_commit(group, {"type": SESSION_REVOKE, "reason": reason})


def token_revoke(*, token: Token) -> None:
    """Log a game client out: the token stops working, its tickets are refused and its sockets are closed."""
    _revoke_credential(credential=token.key, reason="logged_out")
    token.delete()


def session_revoke(*, session_key: str) -> None:
    """Log a browser session out (the caller ends the session itself): its tickets and sockets as for a token."""
    _revoke_credential(credential=session_key, reason="logged_out")


@transaction.atomic
def user_change_password(*, user: User, new_password: str) -> Token:
    """Set a new password and revoke everything issued before: the token is replaced, other sessions stop working
    (Django checks the password hash they were made with), outstanding tickets are refused (they carry that hash
    too) and every socket of the user is closed with 4012; clients reconnect with the new token or session."""
    user.set_password(new_password)
    user.save(update_fields=["password"])
    Token.objects.filter(user=user).delete()
    send_on_commit(user_group(user.pk), {"type": SESSION_REVOKE, "reason": "password_changed"})
    return Token.objects.create(user=user)


def password_problems(*, password: str, user: User | None = None) -> list[str]:
    try:
        password_validation.validate_password(password, user=user)
    except Exception as exc:  # ValidationError carries one message per failed validator
        return list(getattr(exc, "messages", [str(exc)]))
    return []


# --- bans --------------------------------------------------------------------------------------------------------


@transaction.atomic
def user_ban(*, user: User, reason: str = "") -> None:
    """Ban a user: no more logins, tokens deleted, live WebSocket sessions closed."""
    user.banned_at = timezone.now()
    user.ban_reason = reason[:500]
    user.is_active = False
    user.save(update_fields=["banned_at", "ban_reason", "is_active"])
    Token.objects.filter(user=user).delete()
    send_on_commit(user_group(user.pk), {"type": SESSION_REVOKE, "reason": "banned"})


@transaction.atomic
def user_unban(*, user: User) -> None:
    user.banned_at = None
    user.ban_reason = ""
    user.is_active = True
    user.save(update_fields=["banned_at", "ban_reason", "is_active"])


# --- WebSocket connect tickets ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WsTicket:
    ticket: str
    expires_in: int


def ws_ticket_issue(*, user: User, credential: str) -> WsTicket:
    """A short-lived, single-use ticket that a non-browser client puts in the WebSocket URL instead of its token,
    which would otherwise end up in proxy logs. It remembers the credential it was issued under (so that logging
    that credential out refuses it and closes the socket) and the password hash of the moment (so that a password
    change refuses it)."""
    ticket = secrets.token_urlsafe(24)
    ttl = settings.WS_TICKET_TTL_SECONDS
    entry = {"user_id": user.pk, "group": credential_group(credential), "auth_hash": user.get_session_auth_hash()}
    cache.set(f"ws-ticket:{ticket}", entry, timeout=ttl)
    return WsTicket(ticket=ticket, expires_in=ttl)


def ws_ticket_redeem(*, ticket: str) -> tuple[User, str] | None:
    """(user, credential group) for a valid ticket, once; None for an unknown, expired or used ticket, or one
    whose credential was revoked since (logout, password change, ban)."""
    key = f"ws-ticket:{ticket}"
    entry = cache.get(key)
    # Whoever deletes the key owns the ticket: two sockets racing with the same ticket cannot both win.
    if entry is None or not cache.delete(key):
        return None
    if cache.get(f"revoked:{entry['group']}"):
        return None
    user = User.objects.filter(pk=entry["user_id"], is_active=True).first()
    if user is None or not constant_time_compare(user.get_session_auth_hash(), entry.get("auth_hash", "")):
        return None
    return user, entry["group"]
