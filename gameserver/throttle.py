"""Fixed-window counters on the cache, shared by every process: the login and sign-up throttles.

Counting is one atomic step (cache.add then cache.incr: INCR on Redis, a locked increment on LocMem), so parallel
requests all count; a read-then-write would let a burst of guesses through with one count. The window is fixed
(aligned on multiples of its length), which keeps a counter to one cache key that expires by itself.

With the cache (Redis) unreachable, hit() raises and the request answers 503 with Retry-After (gameserver/api_errors.py):
failing closed, since a throttle that lets everything through while Redis is away is no throttle.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


@dataclass(frozen=True, slots=True)
class Rate:
    limit: int
    window_seconds: int

    @classmethod
    def parse(cls, text: str, *, setting: str = "rate") -> Rate:
        """"30/hour", "5/300s" or "120/minute" (DRF's spelling, plus an optional number of units)."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*", text.lower())
        if not match or match[3] not in _PERIODS or int(match[1]) < 1:
            raise ImproperlyConfigured(f"{setting}={text!r} is not a rate like 30/hour, 5/300s or 120/minute.")
        return cls(limit=int(match[1]), window_seconds=int(match[2] or 1) * _PERIODS[match[3]])


@dataclass(frozen=True, slots=True)
class Count:
    """One counted attempt: the count it made in its window, and where that window ends."""

    key: str
    count: int
    limit: int
    window_ends_at: float

    @property
    def over_limit(self) -> bool:
        return self.count > self.limit

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.window_ends_at - time.time()))


def _key(scope: str, subject: str, window_start: int) -> str:
    # Hashed: usernames and addresses are client-chosen text (length, spaces) and cache keys must stay short and safe.
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    return f"throttle:{scope}:{digest}:{window_start}"


def hit(scope: str, subject: str, rate: Rate) -> Count:
    """Count one attempt by `subject` (an address, a username) in `scope`; the caller refuses it when over_limit."""
    now = time.time()
    window_start = int(now // rate.window_seconds) * rate.window_seconds
    key = _key(scope, subject, window_start)
    # The key outlives its window by a little so that a late incr never lands on a key that just expired.
    cache.add(key, 0, timeout=rate.window_seconds + 5)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr: start again, counting this attempt
        cache.add(key, 1, timeout=rate.window_seconds + 5)
        count = 1
    return Count(key=key, count=count, limit=rate.limit, window_ends_at=window_start + rate.window_seconds)


def refund(counted: Count) -> None:
    """Take back an attempt that turned out not to count (a login with the right password). Best effort: when the
    cache went away since hit() (which then answered), the attempt stays counted rather than failing a good login."""
    from gameserver.api_errors import SERVICE_ERRORS

    try:
        cache.decr(counted.key)
    except ValueError:  # the window has expired meanwhile: nothing to take back
        pass
    except SERVICE_ERRORS:
        pass
