"""deploy/daphne_http.py against Twisted itself (no server process): a connection fed bytes answers 413/414/431 at the
right moment, which also checks the order in which Twisted calls what it overrides. That each piece it relies on is
there is checked by deploy/boundary_daphne.py (tests/deploy/test_boundaries.py); tests/security/test_http_attacks.py
attacks a real server."""

from __future__ import annotations

import json

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from deploy.daphne_http import LINGER_BYTES, LINGER_SECONDS, LimitedHTTPChannel, LimitedHTTPFactory, LimitedWebRequest


class FakeServer:
    """The part of daphne's Server that a request touches before it runs (a refused request never runs)."""

    def protocol_connected(self, protocol):
        pass

    def protocol_disconnected(self, protocol):
        pass


def connect(limit=100):
    factory = LimitedHTTPFactory(FakeServer(), max_body_bytes=limit)
    protocol = factory.buildProtocol(None)
    assert protocol.requestFactory is LimitedWebRequest, "daphne's HTTPFactory.buildProtocol no longer sets requestFactory"
    clock = Clock()
    protocol.callLater = clock.callLater
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, clock


def answer(transport) -> tuple[int, bytes]:
    head, _, body = transport.value().partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_content_length_over_the_limit_is_refused_with_the_headers_and_no_100_continue():
    protocol, transport, _ = connect()
    protocol.dataReceived(b"POST /api/x/ HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 101\r\n\r\n")
    status, body = answer(transport)
    assert status == 413 and json.loads(body)["error"] == "request_too_large"
    assert b"100 Continue" not in transport.value(), "Twisted now answers Expect before calling Request.gotLength"


def test_chunked_body_is_refused_once_it_passes_the_limit():
    protocol, transport, _ = connect()
    protocol.dataReceived(b"POST /login/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    protocol.dataReceived(b"3c\r\n" + b"x" * 60 + b"\r\n")
    assert transport.value() == b""
    protocol.dataReceived(b"3c\r\n" + b"x" * 60 + b"\r\n0\r\n\r\n")  # ends the body in the same read: still refused
    status, body = answer(transport)
    assert status == 413 and body.startswith(b"<!doctype html>")
    assert transport.value().count(b"HTTP/1.1") == 1


def test_body_within_the_limit_is_kept_in_memory():
    protocol, transport, _ = connect()
    protocol.dataReceived(b"POST /api/x/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n" + b"x" * 60 + b"\r\n")
    request = protocol._channel.requests[-1]
    assert request.content.getvalue() == b"x" * 60  # a BytesIO, where Twisted would open a temporary file


@pytest.mark.parametrize(("data", "status"), [
    (b"GET /api/x/?" + b"a" * 20_000 + b" HTTP/1.1\r\n", 414),
    (b"GET /api/x/ HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n", 431),
    (b"GET /api/x/ HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 100) for i in range(200)), 431),
    (b"GET /api/x/ HTTP/1.1\r\n" + b"".join(b"X-H%d: a\r\n" % i for i in range(600)), 431),
], ids=["long-request-line", "long-header", "large-head", "many-headers"])
def test_oversized_heads_are_answered(data, status):
    protocol, transport, _ = connect()
    protocol.dataReceived(data)
    got, body = answer(transport)
    assert got == status and json.loads(body)["error"] in {"query_too_long", "headers_too_large"}


def test_after_a_refusal_the_rest_is_dropped_then_the_connection_is_cut():
    protocol, transport, clock = connect()
    protocol.dataReceived(b"POST /api/x/ HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n")
    protocol.dataReceived(b"x" * LINGER_BYTES)
    assert not transport.disconnecting
    protocol.dataReceived(b"x")
    assert transport.disconnecting

    protocol, transport, clock = connect()
    protocol.dataReceived(b"POST /api/x/ HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n")
    clock.advance(LINGER_SECONDS)
    assert transport.disconnecting
    assert isinstance(protocol._channel, LimitedHTTPChannel)
