"""The API docs: descriptions keep their placeholders and examples through Markdown, the introduction's error
example is what the API answers, and ReDoc's page loads nothing from outside the server."""

from __future__ import annotations

import json
import re

import pytest

from gameserver.api_docs import escape_markdown_html

pytestmark = pytest.mark.django_db


def schema(api_as, user) -> dict:
    response = api_as(user).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def descriptions(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield value
            else:
                yield from descriptions(value)
    elif isinstance(node, list):
        for item in node:
            yield from descriptions(item)


def test_brackets_are_escaped_outside_code_spans_only():
    text = "GET /api/matches/<id>/ or `{\"error\": <code>}` and ``a ` <b>`` then a < b & c"
    assert escape_markdown_html(text) == (
        "GET /api/matches/&lt;id&gt;/ or `{\"error\": <code>}` and ``a ` <b>`` then a &lt; b &amp; c"
    )


def test_no_description_has_a_bare_tag_that_markdown_would_swallow(api_as, alice):
    body = schema(api_as, alice)
    found = list(descriptions(body))
    assert len(found) > 50
    for text in found:
        outside_code = re.sub(r"(`+)[\s\S]*?\1", "", text)
        assert not re.search(r"<[A-Za-z/]", outside_code), text
    # The placeholders are still there, as entities that the docs pages show as <id>.
    pointer = body["components"]["schemas"]["MatchPointer"]["properties"]["ws"]["description"]
    assert pointer == "The match WebSocket path, /ws/matches/&lt;id&gt;/."


def test_the_introductions_error_example_is_what_the_api_answers(api_as, alice):
    intro = schema(api_as, alice)["info"]["description"]
    assert "`{\"error\": <stable code>, \"message\": <readable text>, \"fields\": {<field>: [messages]}}`" in intro
    example = json.loads(re.search(r"for example `(\{.*?\})`\.", intro).group(1))
    response = api_as(alice).post("/api/lobbies/", {"game": "arena", "size": 65}, format="json")
    assert response.status_code == 400
    assert response.json() == example


def test_redoc_page_loads_no_web_fonts_and_only_local_scripts(api_as, alice):
    for path in ("/api/redoc/", "/api/docs/"):
        html = api_as(alice).get(path).content.decode()
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html, path
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources, path
        assert all(source.startswith("/") for source in sources), (path, sources)
