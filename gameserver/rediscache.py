"""Django's Redis cache with one connection pool per process instead of one per thread.

Django keeps cache objects in an asgiref Local: under ASGI every request and every database_sync_to_async call can
run in a thread of its own, and each thread's RedisCache built its own connection pool. Nothing closes those pools
(RedisCache has no close()), so every such thread left a Redis connection behind until the garbage collector found
it: 50 ticket-and-connect cycles left 50 connections open for minutes. redis-py's ConnectionPool is thread-safe, so
one per process and server serves every thread; at most REDIS_CACHE_MAX_CONNECTIONS are open at once.
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

_clients: dict[tuple, RedisCacheClient] = {}
_lock = threading.Lock()


class SharedPoolRedisCache(RedisCache):
    @cached_property
    def _cache(self) -> RedisCacheClient:
        key = (tuple(self._servers), self._class, tuple(sorted((name, repr(value)) for name, value in self._options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
            return client
