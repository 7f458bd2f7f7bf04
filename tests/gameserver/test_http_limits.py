"""The HTTP limits below the server: the ASGI middleware, the JSON parser and the pagination (gameserver/)."""

from __future__ import annotations

import json

import pytest

from gameserver.middleware import RequestLimitsMiddleware


class App:
    """An ASGI application that reads the whole body, as Django's handler does."""

    def __init__(self):
        self.body: bytes | None = None

    async def __call__(self, scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.body = body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def run(path="/api/x/", *, headers=(), chunks=(b"",), query=b"", limit=100):
    app = App()
    middleware = RequestLimitsMiddleware(app, max_body_bytes=limit, max_query_string_bytes=50)
    scope = {"type": "http", "path": path, "query_string": query, "headers": list(headers)}
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    received = []

    async def receive():
        received.append(1)
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    await middleware(scope, receive, send)
    status = sent[0]["status"]
    return status, dict(sent[0]["headers"]), sent[1]["body"], app.body, len(received)


async def test_content_length_over_the_limit_is_refused_without_reading():
    status, headers, body, app_body, reads = await run(headers=[(b"content-length", b"101")])
    assert (status, reads, app_body) == (413, 0, None)
    assert json.loads(body)["error"] == "request_too_large"
    assert headers[b"connection"] == b"close"


async def test_streamed_body_is_refused_once_it_passes_the_limit():
    status, _, body, app_body, reads = await run(chunks=[b"x" * 60, b"x" * 60, b"x" * 60])
    assert (status, reads, app_body) == (413, 2, None)  # the third chunk is never asked for


async def test_body_within_the_limit_reaches_the_application_in_one_piece():
    status, _, _, app_body, _ = await run(headers=[(b"content-length", b"100")], chunks=[b"x" * 50, b"y" * 50])
    assert (status, app_body) == (200, b"x" * 50 + b"y" * 50)


async def test_pages_get_an_html_refusal():
    status, headers, body, _, _ = await run("/login/", headers=[(b"content-length", b"1000")])
    assert status == 413 and headers[b"content-type"].startswith(b"text/html") and b"413" in body


async def test_long_query_string_is_a_414():
    status, _, body, app_body, _ = await run(query=b"a" * 51)
    assert (status, json.loads(body)["error"], app_body) == (414, "query_too_long", None)


@pytest.mark.parametrize("headers", [[(b"content-length", b"1e3")], [(b"content-length", b"5"), (b"content-length", b"6")]])
async def test_bad_content_length_is_a_400(headers):
    status, _, body, _, _ = await run(headers=headers)
    assert (status, json.loads(body)["error"]) == (400, "bad_request")


async def test_too_many_headers_is_a_431():
    status, _, body, _, _ = await run(headers=[(b"x-h", b"a")] * 501)
    assert (status, json.loads(body)["error"]) == (431, "headers_too_large")


def test_deeply_nested_json_is_a_parse_error(api):
    response = api.generic("POST", "/api/auth/register/", "[" * 5000 + "]" * 5000, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "parse_error"


def test_json_nested_below_the_parser_limit_is_parsed(api):
    response = api.generic("POST", "/api/auth/register/", "[" * 1000 + "]" * 1000, content_type="application/json")
    assert response.json()["error"] == "validation_error"  # parsed, then refused as not an object


@pytest.mark.parametrize("query", ["limit=1e20", "limit=-1", "limit=0", "limit=101", "limit=abc", "limit=%201",
                                   "offset=-1", "offset=99999999999999999999", "offset=1000001", "offset=1.5"])
def test_out_of_range_pagination_is_a_400(api_as, alice, query):
    response = api_as(alice).get(f"/api/leaderboards/pong/?{query}")
    assert response.status_code == 400 and response.json()["error"] == "invalid_pagination", response.content


@pytest.mark.parametrize("endpoint", ["/api/lobbies/", "/api/history/", "/api/matches/", "/api/history/{alice}/"])
def test_every_paginated_list_validates(api_as, alice, endpoint):
    url = endpoint.format(alice=alice.pk)
    assert api_as(alice).get(f"{url}?limit=1e20").json()["error"] == "invalid_pagination"


def test_pagination_bounds_are_served(api_as, alice, settings):
    assert api_as(alice).get("/api/leaderboards/pong/?limit=100&offset=1000000").status_code == 200
    assert api_as(alice).get("/api/leaderboards/pong/?limit=&offset=").json()["count"] == 0  # empty = absent
    settings.PAGINATION_MAX_LIMIT = 5
    assert api_as(alice).get("/api/leaderboards/pong/?limit=6").status_code == 400


def test_schema_documents_the_pagination_bounds(api):
    schema = api.get("/api/schema/?format=json").json()
    params = {p["name"]: p for p in schema["paths"]["/api/leaderboards/{game}/"]["get"]["parameters"]}
    assert "invalid_pagination" in schema["paths"]["/api/leaderboards/{game}/"]["get"]["responses"]["400"]["description"]
    assert "1 to 100" in params["limit"]["description"]
