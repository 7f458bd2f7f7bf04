"""The client's address: the socket peer, or the Nth X-Forwarded-For entry from the right behind N trusted proxies."""

from __future__ import annotations

import pytest

from gameserver.clientaddr import ClientAddressMiddleware, forwarded_client


@pytest.mark.parametrize(
    "peer, header, trusted, expected",
    [
        ("198.51.100.7", ["1.2.3.4"], 0, "198.51.100.7"),  # direct: the header is the client's own text
        ("127.0.0.1", ["198.51.100.7"], 1, "198.51.100.7"),  # nginx appended the client it saw
        ("127.0.0.1", ["1.2.3.4", "5.6.7.8", "198.51.100.7"], 1, "198.51.100.7"),  # forged entries on the left
        ("10.0.0.2", ["1.2.3.4", "198.51.100.7", "10.0.0.1"], 2, "198.51.100.7"),  # load balancer, then nginx
        ("127.0.0.1", ["198.51.100.7"], 2, "198.51.100.7"),  # fewer entries than proxies: the furthest one
        ("127.0.0.1", [], 1, "127.0.0.1"),  # no header at all: the peer
    ],
)
def test_forwarded_client(peer, header, trusted, expected):
    assert forwarded_client(peer, header, trusted) == expected


async def seen_client(scope_type: str, headers: list[tuple[bytes, bytes]]):
    seen = {}

    async def app(scope, receive, send):
        seen["client"] = scope.get("client")

    await ClientAddressMiddleware(app)({"type": scope_type, "client": ("127.0.0.1", 50000), "headers": headers}, None, None)
    return seen["client"]


@pytest.mark.parametrize("scope_type", ["http", "websocket"])
async def test_middleware_ignores_the_header_when_no_proxy_is_trusted(settings, scope_type):
    settings.TRUSTED_PROXY_COUNT = 0
    assert await seen_client(scope_type, [(b"x-forwarded-for", b"1.2.3.4")]) == ("127.0.0.1", 50000)


@pytest.mark.parametrize("scope_type", ["http", "websocket"])
async def test_middleware_takes_the_rightmost_entries_across_header_lines(settings, scope_type):
    settings.TRUSTED_PROXY_COUNT = 1
    headers = [(b"x-forwarded-for", b"1.2.3.4, 5.6.7.8"), (b"x-forwarded-for", b"198.51.100.7")]
    assert (await seen_client(scope_type, headers))[0] == "198.51.100.7"


def test_drf_reads_remote_addr_only(settings):
    """DRF's throttles must not parse X-Forwarded-For again (with NUM_PROXIES unset it keys on the whole header)."""
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory
    from rest_framework.throttling import BaseThrottle

    request = Request(APIRequestFactory().get("/", HTTP_X_FORWARDED_FOR="1.2.3.4", REMOTE_ADDR="198.51.100.7"))
    assert BaseThrottle().get_ident(request) == "198.51.100.7"
