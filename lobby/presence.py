"""How many matchmaking sockets each user has open, on every process (the cache: Redis when REDIS_URL is set), so
that a ticket stops searching soon after its player left the site (docs/lobby.md, "Leaving while queued")."""

from __future__ import annotations

from django.core.cache import cache

# Long enough for any session; refreshed on each arrival. A count that outlives a crashed process only keeps a
# ticket searching until it expires, as before.
TTL_SECONDS = 6 * 3600


def _key(user_id: int) -> str:
    return f"lobby:mm-sockets:{user_id}"


def arrive(*, user_id: int) -> int:
    """A matchmaking socket of the user opened; returns how many are open now."""
    key = _key(user_id)
    cache.add(key, 0, timeout=TTL_SECONDS)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between the two calls
        cache.set(key, 1, timeout=TTL_SECONDS)
        count = 1
    cache.touch(key, TTL_SECONDS)
    return count


def depart(*, user_id: int) -> int:
    """One closed; returns how many are still open. The key is never deleted here: a delete could race with an
    arrival on another process and lose it."""
    try:
        return max(0, cache.decr(_key(user_id)))
    except ValueError:
        return 0


def count(*, user_id: int) -> int:
    return max(0, cache.get(_key(user_id), 0))
