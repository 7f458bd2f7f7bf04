"""Refuse an HTTP request whose query string or body is over the limits before anything reads or keeps it.

RequestLimitsMiddleware wraps the ASGI application (gameserver/asgi.py), so it holds under any server: a Content-Length
over MAX_REQUEST_BYTES gets 413 without a byte of the body being read, and a body without one (chunked) is counted as
the server streams it and refused once it passes the limit. Django then gets the body, at most MAX_REQUEST_BYTES,
in one piece. Under daphne, deploy/daphne_http.py refuses the same requests earlier, before Twisted buffers them.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings

from gameserver.api_errors import error_body

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The head's limits under daphne (Twisted's HTTPChannel.totalHeadersSize and maxHeaders, deploy/daphne_http.py), checked
# here too so that every server answers 431 alike. httptools (uvicorn's default parser) has no limit of its own.
MAX_HEAD_BYTES = 16384
MAX_HEADERS = 500


def refusal_body(path: str, status: int, code: str, message: str) -> tuple[bytes, bytes]:
    """(content type, body) of a refusal: the API's JSON error under /api/, a small HTML page elsewhere."""
    if path.startswith("/api/"):
        return b"application/json", json.dumps(error_body(code, message)).encode()
    title = f"{status} {HTTPStatus(status).phrase}"
    page = f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{html.escape(message)}</p>\n"
    return b"text/html; charset=utf-8", page.encode()


def body_too_large_message(limit: int) -> str:
    return f"The request body is over {limit} bytes."


def query_too_long_message(limit: int) -> str:
    return f"The query string is over {limit} bytes."


class RequestLimitsMiddleware:
    """ASGI middleware for HTTP scopes: 414 for a long query string, 431 for too many or too long headers, 413 for a
    long body, 400 for a bad Content-Length; every path (API, pages, admin). Refusals close the connection (the rest of the body is unread)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int | None = None, max_query_string_bytes: int | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes if max_body_bytes is not None else settings.MAX_REQUEST_BYTES
        self.max_query_string_bytes = (
            max_query_string_bytes if max_query_string_bytes is not None else settings.MAX_QUERY_STRING_BYTES
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > self.max_query_string_bytes:
            await self.refuse(scope, send, 414, "query_too_long", query_too_long_message(self.max_query_string_bytes))
            return
        headers = scope["headers"]
        if len(headers) > MAX_HEADERS or sum(len(name) + len(value) for name, value in headers) > MAX_HEAD_BYTES:
            message = f"The request's headers are over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} headers."
            await self.refuse(scope, send, 431, "headers_too_large", message)
            return
        lengths = {value for name, value in scope["headers"] if name == b"content-length"}
        if len(lengths) > 1 or (lengths and not next(iter(lengths)).isdigit()):
            await self.refuse(scope, send, 400, "bad_request", "Content-Length is not one number.")
            return
        if lengths and int(next(iter(lengths))) > self.max_body_bytes:
            await self.refuse(scope, send, 413, "request_too_large", body_too_large_message(self.max_body_bytes))
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # http.disconnect: the client left before its body was complete
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await self.refuse(scope, send, 413, "request_too_large", body_too_large_message(self.max_body_bytes))
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    @staticmethod
    async def refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
        content_type, body = refusal_body(scope.get("path", ""), status, code, message)
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            # The body (or its rest) is unread: the connection cannot carry another request.
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body read so far in one message, then whatever the server says next (disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed
