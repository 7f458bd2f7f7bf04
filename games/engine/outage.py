"""Redis as one process sees it: reachable or not, since when, and what that allows (host.py decides with it).

Redis going away (a restart, a failover, an outage of seconds) is not a reason to stop a match. An error of the relay
layer or of the store is contained where it happens: logged once per outage (never per tick or per socket), never
raised into a tick loop or a socket's handler. While Redis is unreachable nobody can take a lease, so owners keep
ticking their local players (may_tick_without_lease) and relays wait; when it is back, owners take their vanished
leases again and rewrite their checkpoints before any relay may take a match over (takeovers_allowed).
docs/operations.md ("Redis outages") tells operators what players see and what to configure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from games.engine.store import LEASE_TTL_MS

log = logging.getLogger("games.engine.host")

# While renewals fail because Redis cannot be reached, nobody else can take a lease either: an owner keeps ticking
# its local players as long as its last failed attempt is this recent (a stalled process's is not).
OUTAGE_TICK_SECONDS = 4.0
# After Redis comes back, relays wait this long before taking a match over, so that a live owner takes its lease
# again and rewrites its checkpoint first (one maintenance round, plus a lease's lifetime for slow ones).
TAKEOVER_GRACE_SECONDS = LEASE_TTL_MS / 1000 + 1.0


class RedisHealth:
    def __init__(self) -> None:
        self.down_since: float | None = None  # the first failed maintenance round of the current outage
        self.failed_at: float | None = None  # the latest failed one
        self.back_at = float("-inf")  # when the last outage ended
        self._logged = False

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def layer_error(self, what: str, exc: BaseException) -> None:
        """Logged once per outage; the maintenance round notices the outage's end."""
        if not self._logged:
            self._logged = True
            log.warning("Redis unreachable (%s: %s: %s); matches carry on locally", what, type(exc).__name__, exc)

    async def contained(self, what: str, awaitable: Awaitable) -> bool:
        """Await a call that needs Redis; False (and logged once per outage) when it failed."""
        try:
            await awaitable
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.layer_error(what, exc)
            return False

    def failed(self, exc: BaseException, now: float) -> bool:
        """A maintenance round could not reach Redis; True when this starts an outage."""
        started = self.down_since is None
        if started:
            self.down_since = now
            self.layer_error("maintenance", exc)
        self.failed_at = now
        return started

    def answered(self, now: float) -> None:
        """A maintenance round reached Redis."""
        if self.down_since is not None or self._logged:
            since = self.down_since
            log.warning("Redis reachable again%s", f" after {now - since:.1f} s" if since is not None else "")
            self.back_at = now
        self.down_since = None
        self.failed_at = None
        self._logged = False

    def takeovers_allowed(self, now: float) -> bool:
        """Not while Redis is away, nor just after: a live owner takes its lease back first."""
        return self.down_since is None and now - self.back_at >= TAKEOVER_GRACE_SECONDS

    def may_tick_without_lease(self, now: float) -> bool:
        """An owner whose renewals fail because Redis cannot be reached keeps ticking its local players: nobody can
        take the lease meanwhile. Only while the failures are recent (a process that was paused has none)."""
        return self.failed_at is not None and now - self.failed_at < OUTAGE_TICK_SECONDS
