"""PostgreSQL or Redis unreachable: 503 service_unavailable with Retry-After (API and pages), readiness, WebSocket 4503.
The real outage, with real processes, is tests/games/test_postgres_faults.py."""

from __future__ import annotations

import pytest
import redis.exceptions
from django.db import OperationalError

from gameserver import health, throttle
from gameserver.closecodes import CloseCode
from gameserver.ws import authenticate_websocket

pytestmark = pytest.mark.django_db


def _redis_down(*args, **kwargs):
    raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def test_live_and_ready_answer_200_when_everything_answers(client):
    assert client.get("/health/live").status_code == 200
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["database"] == "ok"


def test_ready_is_503_with_retry_after_while_the_database_is_unreachable(client, monkeypatch):
    monkeypatch.setattr(health, "connection", type("Down", (), {"cursor": lambda self: (_ for _ in ()).throw(OperationalError("down"))})())
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {"status": "unavailable", "checks": {"database": "unreachable", "redis": response.json()["checks"]["redis"], "draining": False}}


def test_ready_is_503_while_redis_is_unreachable(client, monkeypatch, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    monkeypatch.setattr(health, "_redis_check", lambda: "unreachable")
    response = client.get("/health/ready")
    assert response.status_code == 503 and response.json()["checks"]["redis"] == "unreachable"


def test_ready_is_503_while_the_process_hands_over(client, monkeypatch):
    monkeypatch.setattr(health, "_draining", lambda: True)
    assert client.get("/health/ready").status_code == 503


def test_an_api_read_with_the_database_away_is_503_service_unavailable(api_as, alice, monkeypatch):
    from django.db.models.query import QuerySet

    client = api_as(alice)
    monkeypatch.setattr(QuerySet, "_fetch_all", lambda self: (_ for _ in ()).throw(OperationalError("gone")))
    response = client.get("/api/matches/")
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "5"
    assert response.json()["error"] == "service_unavailable" and response.json()["retry_after"] == 5


def test_login_with_the_cache_away_is_503_not_500(api, alice, monkeypatch):
    monkeypatch.setattr(throttle.cache, "add", _redis_down)
    response = api.post("/api/auth/login/", {"username": "alice", "password": "x"}, format="json")
    assert response.status_code == 503
    assert response.json()["error"] == "service_unavailable"


def test_a_ticket_with_the_cache_away_is_503(api_as, alice, monkeypatch):
    from gameserver.accounts import services

    monkeypatch.setattr(services.cache, "set", _redis_down)
    monkeypatch.setattr(services.cache, "add", _redis_down)
    response = api_as(alice).post("/api/auth/ws-ticket/")
    assert response.status_code == 503, response.content


def test_the_login_page_with_the_cache_away_is_503_text(client, alice, monkeypatch):
    monkeypatch.setattr(throttle.cache, "add", _redis_down)
    response = client.post("/login/", {"username": "alice", "password": "x"})
    assert response.status_code == 503 and response["Retry-After"] == "5"


async def test_a_websocket_handshake_with_the_cache_away_is_refused_with_4503(monkeypatch):
    from gameserver.accounts import services

    monkeypatch.setattr(services.cache, "get", _redis_down)
    monkeypatch.setattr(services.cache, "delete", _redis_down)
    monkeypatch.setattr(services.cache, "get_many", _redis_down)
    user, group, error = await authenticate_websocket({"query_string": b"ticket=abc", "headers": []})
    assert (user.is_authenticated, group, error) == (False, None, "service_unavailable")
    assert CloseCode.TRY_AGAIN_LATER == 4503
