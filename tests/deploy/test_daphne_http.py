"""deploy/daphne_http.py against Twisted itself (no server process): what it relies on of Twisted and daphne is there,
and a connection fed bytes answers 413/414/431 at the right moment. A failure here after an upgrade of Twisted or
daphne names what moved; tests/security/test_http_attacks.py attacks a real server."""

from __future__ import annotations

import json

import pytest
from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import http

from deploy.daphne_http import LINGER_BYTES, LINGER_SECONDS, LimitedHTTPChannel, LimitedHTTPFactory, LimitedWebRequest


def test_what_daphne_http_relies_on_is_still_there():
    missing = []
    if not callable(getattr(http, "_GenericHTTPChannelProtocol", None)):
        missing.append("twisted.web.http._GenericHTTPChannelProtocol (how HTTPFactory wraps an HTTPChannel)")
    for name in ("gotLength", "handleContentChunk"):
        if not callable(getattr(http.Request, name, None)):
            missing.append(f"twisted.web.http.Request.{name} (called by HTTPChannel for the body)")
    for name in ("lineReceived", "lineLengthExceeded", "allContentReceived", "allHeadersReceived"):
        if not callable(getattr(http.HTTPChannel, name, None)):
            missing.append(f"twisted.web.http.HTTPChannel.{name}")
    for name in ("MAX_LENGTH", "totalHeadersSize", "maxHeaders"):
        if not isinstance(getattr(http.HTTPChannel, name, None), int):
            missing.append(f"twisted.web.http.HTTPChannel.{name} (the head's limits)")
    if not issubclass(WebRequest, http.Request) or not issubclass(HTTPFactory, http.HTTPFactory):
        missing.append("daphne.http_protocol.WebRequest/HTTPFactory no longer extend Twisted's Request/HTTPFactory")
    assert not missing, "deploy/daphne_http.py relies on what an upgrade changed: " + "; ".join(missing)


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
