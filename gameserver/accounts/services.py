"""Account state changes: registration, login and its throttle, logout, password change, bans and WS tickets."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from gameserver.accounts.models import User
from gameserver.broadcast import credential_group, send_on_commit, user_group

SESSION_REVOKE = "session.revoke"


class LoginThrottled(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"Too many failed logins. Try again in {retry_after} s.")
        self.retry_after = retry_after


class InvalidCredentials(Exception):
    pass


class AccountBanned(Exception):
    pass


# --- registration and login ------------------------------------------------------------------------------------


@transaction.atomic
def user_register(*, username: str, password: str, email: str = "") -> User:
    """Create an account. The caller has validated the password against the validators already."""
    return User.objects.create_user(username=username, password=password, email=email)


def _failure_keys(*, username: str, client_ip: str) -> list[str]:
    # Counted per account (guessing one password) and per address (trying many accounts).
    return [f"login-fail:user:{username.lower()}", f"login-fail:ip:{client_ip}"]


def login_check_throttle(*, username: str, client_ip: str) -> None:
    limit = settings.LOGIN_FAILURE_LIMIT
    for key in _failure_keys(username=username, client_ip=client_ip):
        entry = cache.get(key)
        if entry and entry["count"] >= limit:
            retry_after = max(1, int(entry["until"] - timezone.now().timestamp()))
            raise LoginThrottled(retry_after)


def _login_record_failure(*, username: str, client_ip: str) -> None:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    now = timezone.now().timestamp()
    for key in _failure_keys(username=username, client_ip=client_ip):
        entry = cache.get(key) or {"count": 0, "until": now + window}
        entry["count"] += 1
        cache.set(key, entry, timeout=max(1, int(entry["until"] - now)))


def user_authenticate(*, username: str, password: str, client_ip: str) -> User:
    """Check a username and password, throttling repeated failures. Raises LoginThrottled, AccountBanned or
    InvalidCredentials."""
    login_check_throttle(username=username, client_ip=client_ip)
    user = authenticate(username=username, password=password)
    if user is None:
        banned = User.objects.filter(username=username, banned_at__isnull=False).first()
        if banned is not None and banned.check_password(password):
            raise AccountBanned()
        _login_record_failure(username=username, client_ip=client_ip)
        raise InvalidCredentials()
    cache.delete_many(_failure_keys(username=username, client_ip=client_ip)[:1])
    return user


def token_for(*, user: User) -> Token:
    token, _ = Token.objects.get_or_create(user=user)
    return token


def token_revoke(*, token: Token) -> None:
    """Log a game client out: the token stops working and the sockets opened with it are closed."""
    send_on_commit(credential_group(token.key), {"type": SESSION_REVOKE, "reason": "logged_out"})
    token.delete()


def session_revoke(*, session_key: str) -> None:
    send_on_commit(credential_group(session_key), {"type": SESSION_REVOKE, "reason": "logged_out"})


@transaction.atomic
def user_change_password(*, user: User, new_password: str) -> Token:
    """Set a new password. The old token is replaced so that other copies of it stop working."""
    user.set_password(new_password)
    user.save(update_fields=["password"])
    Token.objects.filter(user=user).delete()
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
    which would otherwise end up in proxy logs. It remembers the credential it was issued under so that logging
    that credential out also closes the socket."""
    ticket = secrets.token_urlsafe(24)
    ttl = settings.WS_TICKET_TTL_SECONDS
    cache.set(f"ws-ticket:{ticket}", {"user_id": user.pk, "group": credential_group(credential)}, timeout=ttl)
    return WsTicket(ticket=ticket, expires_in=ttl)


def ws_ticket_redeem(*, ticket: str) -> tuple[int, str] | None:
    """(user id, credential group) for a valid ticket, once; None for an unknown, expired or used one."""
    key = f"ws-ticket:{ticket}"
    entry = cache.get(key)
    # Whoever deletes the key owns the ticket: two sockets racing with the same ticket cannot both win.
    if entry is None or not cache.delete(key):
        return None
    return entry["user_id"], entry["group"]
