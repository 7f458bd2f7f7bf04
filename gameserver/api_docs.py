"""The API docs pages (Swagger UI at /api/docs/, ReDoc at /api/redoc/ with templates/api/redoc.html): a schema hook
that keeps placeholders such as `<id>` visible, since both pages render descriptions as Markdown, where `<id>` is an
unknown HTML tag and vanishes."""

from __future__ import annotations

import re
from typing import Any

# Code spans (`...`, ``...``) show their text as it is: only the text between them needs its brackets escaped.
_CODE_SPAN = re.compile(r"(`+)(?:.|\n)*?\1")


def escape_markdown_html(text: str) -> str:
    """`<` and `>` outside code spans become entities, which Markdown shows as the characters themselves."""
    out = []
    at = 0
    for span in _CODE_SPAN.finditer(text):
        out.append(_escape(text[at : span.start()]))
        out.append(span.group(0))
        at = span.end()
    out.append(_escape(text[at:]))
    return "".join(out)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_descriptions(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every `description` in the schema (the introduction, operations,
    fields) is Markdown for the docs pages; summaries and titles are shown as plain text and stay as they are."""
    _walk(result)
    return result


def _walk(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = escape_markdown_html(value)
            else:
                _walk(value)
    elif isinstance(node, list):
        for item in node:
            _walk(item)
