"""daphne's HTTP side with limits that act before Twisted buffers a request: deploy/daphne_ws.py's DirectServer builds
its HTTP factory with `limited_http_factory`.

Stock Twisted keeps a request's whole body (in memory, or in a temporary file when it is over 100 KB or chunked) before
daphne hands the request to the application, and drops a connection whose request line or header line is over 16 KiB
without a word. Here:
- a Content-Length over MAX_REQUEST_BYTES is answered 413 as soon as the headers are in; no byte of the body is kept;
- a chunked body is counted as it is decoded and answered 413 once it passes the limit;
- an accepted body is kept in memory (it is bounded), never in a temporary file;
- a request line over 16 KiB is answered 414; a head (request line and headers) over 16 KiB or with more than 500
  headers is answered 431 (Twisted's own limits, HTTPChannel.MAX_LENGTH, totalHeadersSize and maxHeaders);
- HTTP/2 is not offered (Twisted's H2 stack buffers bodies its own way, untouched here).
Refusals carry the API's JSON error under /api/ and a small HTML page elsewhere (gameserver/middleware.py renders both)
and close the connection: the response is written, our side is shut, and what the client still sends is read and
thrown away (at most LINGER_BYTES, for at most LINGER_SECONDS) so that the client reads the answer rather than a reset.
Malformed heads keep Twisted's answer: a bare 400 and the connection closed.

What this relies on beyond Twisted's and daphne's public API (the methods it overrides, the attributes it reads, and
Twisted's private _GenericHTTPChannelProtocol) is declared in deploy/boundary_daphne.py, checked when the server
starts; tests/deploy/test_daphne_http.py feeds a connection bytes and checks that the answers come at the right moment.
"""

from __future__ import annotations

from http import HTTPStatus
from io import BytesIO

from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings
from twisted.web import http

from deploy.boundary_daphne import wrap_http_channel

# After a refusal: how much of the rest of the request is read and dropped, and for how long, before the connection
# is cut. Enough for the client to finish writing a moderately over-size body and read the answer; a client that
# keeps sending gets a reset.
LINGER_BYTES = 1024 * 1024
LINGER_SECONDS = 2.0


class LimitedHTTPChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 connection with the head limits answered by a status, and a way to refuse a request."""

    max_body_bytes: int
    refused = False
    _reading_head = False  # between the request line and the end of the body
    _head_bytes = 0
    _head_lines = 0
    _request_path = ""
    _discarded = 0
    _linger_call = None

    def __init__(self, max_body_bytes: int):
        super().__init__()
        self.max_body_bytes = max_body_bytes

    def lineReceived(self, line: bytes):  # noqa: N802 - Twisted's name
        if not self._reading_head:
            self._reading_head = True
            self._note_path(line)
        # Counted as Twisted counts (totalHeadersSize, maxHeaders), checked before it would answer a bare 400.
        self._head_bytes += len(line)
        self._head_lines += 1
        if self._head_bytes > self.totalHeadersSize or self._head_lines > self.maxHeaders + 1:
            self.refuse(431, "headers_too_large", f"The request's head is over {self.totalHeadersSize} bytes or "
                                                  f"{self.maxHeaders} headers.")
        else:
            super().lineReceived(line)
        # A true value stops LineReceiver from handing the rest of what it has read to this request.
        return self.refused or None

    def lineLengthExceeded(self, line: bytes):  # noqa: N802 - Twisted's name
        if self._reading_head:
            self.refuse(431, "headers_too_large", f"A header line is over {self.MAX_LENGTH} bytes.")
        else:
            self._note_path(line[: self.MAX_LENGTH])
            self.refuse(414, "query_too_long", f"The request line is over {self.MAX_LENGTH} bytes.")

    def _note_path(self, request_line: bytes) -> None:
        """Where the request goes, as far as a refusal needs it (JSON under /api/)."""
        parts = request_line.split(b" ", 2)
        self._request_path = parts[1][:64].decode("latin-1") if len(parts) > 1 else ""

    def allContentReceived(self):  # noqa: N802 - Twisted's name
        if self.refused:
            return  # the end of a body we refused (it came in the same read): there is no request to run
        self._reading_head = False
        self._head_bytes = self._head_lines = 0
        super().allContentReceived()

    def refuse_body(self) -> None:
        self.refuse(413, "request_too_large", f"The request body is over {self.max_body_bytes} bytes.")

    def refuse(self, status: int, code: str, message: str) -> None:
        """Answer `status` with the error, then read and drop what follows for a while, and close."""
        if self.refused:
            return
        self.refused = True
        self.persistent = False
        # Imported here: daphne imports this module before it loads the application (and Django's settings).
        from gameserver.middleware import refusal_body

        content_type, body = refusal_body(self._request_path, status, code, message)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, HTTPStatus(status).phrase.encode(), content_type, len(body), body)
        )
        # From here on every byte goes to _discard, as Twisted's own WebSocket upgrade redirects dataReceived.
        self.dataReceived = self._discard
        self.setTimeout(None)
        lose_write = getattr(self.transport, "loseWriteConnection", None)  # TCP has it, TLS does not
        if lose_write is not None:
            lose_write()
        self._linger_call = self.callLater(LINGER_SECONDS, self._end_linger)

    def _discard(self, data: bytes) -> None:
        self._discarded += len(data)
        if self._discarded > LINGER_BYTES:
            self._end_linger()

    def _end_linger(self) -> None:
        self._linger_call = None
        self.transport.abortConnection()

    def connectionLost(self, reason):  # noqa: N802 - Twisted's name
        if self._linger_call is not None and self._linger_call.active():
            self._linger_call.cancel()
        self._linger_call = None
        super().connectionLost(reason)


class LimitedWebRequest(WebRequest):
    """daphne's request, keeping its body in memory and refusing it once it is over the channel's limit."""

    channel: LimitedHTTPChannel
    _body_bytes = 0

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted's name
        self.content = BytesIO()  # at most max_body_bytes: never Twisted's temporary file
        if length is not None and length > self.channel.max_body_bytes:
            # Twisted answers "Expect: 100-continue" right after this call: no invitation to send a refused body.
            self.requestHeaders.removeHeader(b"Expect")
            self.channel.refuse_body()

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        if self.channel.refused:
            return
        self._body_bytes += len(data)
        if self._body_bytes > self.channel.max_body_bytes:
            self.channel.refuse_body()
            return
        self.content.write(data)


class LimitedHTTPFactory(HTTPFactory):
    """daphne's HTTP factory building LimitedHTTPChannel and LimitedWebRequest, HTTP/1.1 only."""

    def __init__(self, server, *, max_body_bytes: int):
        super().__init__(server)
        self.max_body_bytes = max_body_bytes

    def protocol(self):
        # Twisted's HTTPFactory.protocol wraps a new HTTPChannel the same way (it negotiates HTTP/2 in the wrapper).
        return wrap_http_channel(LimitedHTTPChannel(self.max_body_bytes))

    def buildProtocol(self, addr):  # noqa: N802 - Twisted's name
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = LimitedWebRequest
        return protocol

    def acceptableProtocols(self):  # noqa: N802 - Twisted's name
        return [b"http/1.1"]


def limited_http_factory(factory: HTTPFactory) -> LimitedHTTPFactory:
    """The factory daphne's Server.run() made, rebuilt with the limits (MAX_REQUEST_BYTES from Django's settings)."""
    return LimitedHTTPFactory(factory.server, max_body_bytes=settings.MAX_REQUEST_BYTES)
