"""The client's address for every HTTP request and WebSocket, from the socket peer and the proxies we trust.

Per-address limits (login, sign-up) are only as good as the address. X-Forwarded-For is a list that each proxy
appends its peer to; everything left of what our own proxies wrote is whatever the client sent. With
TRUSTED_PROXY_COUNT = N the client is the Nth address from the right (the peer that our outermost proxy saw);
with 0 (no proxy) the header is ignored. daphne's and uvicorn's --proxy-headers are not needed: daphne's takes the
leftmost address, which the client controls, so the recipes leave it off (docs/scale-out.md).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def forwarded_client(peer: str | None, forwarded_for: list[str], trusted_proxies: int) -> str | None:
    """The client address given the socket peer, the X-Forwarded-For entries in order, and how many proxies we run.

    A request that reached us through fewer proxies than configured (a header shorter than N) gets its leftmost
    entry: the furthest address anyone vouches for, as Django REST framework's NUM_PROXIES does."""
    if trusted_proxies <= 0 or not forwarded_for:
        return peer
    return forwarded_for[-min(trusted_proxies, len(forwarded_for))]


def _forwarded_for(scope: dict[str, Any]) -> list[str]:
    entries: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":  # several header lines are one list, in order (RFC 9110 5.3)
            entries += [part.strip() for part in value.decode("latin-1").split(",") if part.strip()]
    return entries


def client_ip(request) -> str:
    """The address per-address limits count for a Django or DRF request (REMOTE_ADDR comes from scope["client"])."""
    return request.META.get("REMOTE_ADDR") or "unknown"


class ClientAddressMiddleware:
    """ASGI middleware for HTTP and WebSocket scopes: scope["client"] becomes the client's address as above, so that
    Django's REMOTE_ADDR and the WebSocket consumers see the same address."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            trusted = settings.TRUSTED_PROXY_COUNT
            if trusted:
                client = scope.get("client") or (None, 0)
                address = forwarded_client(client[0], _forwarded_for(scope), trusted)
                if address != client[0]:
                    # The port is the proxy's connection's, not the client's: keep none rather than a wrong one.
                    scope = dict(scope, client=(address, 0))
        return await self.app(scope, receive, send)
