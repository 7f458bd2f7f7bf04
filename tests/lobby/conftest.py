"""Fixtures of the lobby tests: no background matchmaker (tests step it themselves), and error-body checks."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_embedded_matchmaker(settings):
    settings.MATCHMAKER_IN_PROCESS = False


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body
