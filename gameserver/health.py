"""Liveness and readiness for load balancers and orchestrators.

GET /health/live: 200 while the process serves HTTP at all. Restart the process only when this fails.
GET /health/ready: 200 when this process can serve players: PostgreSQL answers, Redis answers (when REDIS_URL is
set) and the process is not handing its matches over after SIGTERM. Otherwise 503 with Retry-After and the failed
checks, so that a balancer sends new players elsewhere; live sockets are not affected by this answer.

Neither needs a login, neither is throttled, and both answer in bounded time (DB_CONNECT_TIMEOUT,
REDIS_TIMEOUT_SECONDS). docs/operations.md explains how to wire them.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from gameserver.api_errors import SERVICE_ERRORS

log = logging.getLogger(__name__)


def _database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except SERVICE_ERRORS as exc:
        log.warning("readiness: database unreachable: %s", str(exc).strip()[:200])
        return "unreachable"
    return "ok"


def _redis_check() -> str:
    if not settings.REDIS_URL:
        return "not_configured"
    try:
        # The cache's own pool (gameserver/rediscache.py): no connection of its own per probe.
        cache._cache.get_client(write=True).ping()
    except SERVICE_ERRORS as exc:
        log.warning("readiness: Redis unreachable: %s", str(exc).strip()[:200])
        return "unreachable"
    return "ok"


def _draining() -> bool:
    from games.engine.host import local_hosts

    return any(host.closing for _, host in local_hosts())


@never_cache
@require_safe
def live(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def ready(request):
    checks = {"database": _database_check(), "redis": _redis_check(), "draining": _draining()}
    ok = checks["database"] == "ok" and checks["redis"] in ("ok", "not_configured") and not checks["draining"]
    response = JsonResponse({"status": "ready" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)
    if not ok:
        response["Retry-After"] = str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)
    return response
