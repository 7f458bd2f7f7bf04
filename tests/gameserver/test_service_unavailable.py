"""PostgreSQL or Redis unreachable: 503 service_unavailable with Retry-After (API and pages), readiness, WebSocket 4503.
The real outage, with real processes, is tests/games/test_postgres_faults.py."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from gameserver import health
from gameserver.closecodes import CloseCode

pytestmark = pytest.mark.django_db

NOBODY_LISTENS = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_away(settings):
    """The cache on a Redis that refuses connections: what tickets, throttles and readiness meet in an outage."""
    settings.REDIS_URL = NOBODY_LISTENS
    settings.CACHES = {
        "default": {
            "BACKEND": "gameserver.rediscache.SharedPoolRedisCache",
            "LOCATION": NOBODY_LISTENS,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }


def test_live_and_ready_answer_200_when_everything_answers(client):
    assert client.get("/health/live").status_code == 200
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["database"] == "ok"


def test_ready_is_503_with_retry_after_while_the_database_is_unreachable(client, monkeypatch, settings):
    settings.REDIS_URL = ""  # no Redis to ask: its check says so, and only the database decides
    monkeypatch.setattr(health, "connection", type("Down", (), {"cursor": lambda self: (_ for _ in ()).throw(OperationalError("down"))})())
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {"status": "unavailable", "checks": {"database": "unreachable", "redis": "not_configured", "draining": False}}


def test_ready_is_503_while_redis_is_unreachable(client, redis_away):
    response = client.get("/health/ready")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["checks"] == {"database": "ok", "redis": "unreachable", "draining": False}


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


def test_login_with_the_cache_away_is_503_not_500(api, alice, redis_away):
    response = api.post("/api/auth/login/", {"username": "alice", "password": "x"}, format="json")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"] == "service_unavailable"


def test_a_ticket_with_the_cache_away_is_503(api_as, alice, redis_away):
    response = api_as(alice).post("/api/auth/ws-ticket/")
    assert response.status_code == 503, response.content
    assert response.json()["error"] == "service_unavailable"


def test_the_login_page_with_the_cache_away_is_503_text(client, alice, redis_away):
    response = client.post("/login/", {"username": "alice", "password": "x"})
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.django_db(transaction=True)
async def test_a_websocket_handshake_with_the_cache_away_is_refused_with_4503(redis_away):
    from channels.testing import WebsocketCommunicator

    from gameserver.asgi import application

    comm = WebsocketCommunicator(application, "/ws/matchmaking/?ticket=abc", headers=[(b"origin", b"http://localhost")])
    connected, _ = await comm.connect()
    assert connected  # accepted so that the client can read the code
    closed = await comm.receive_output(timeout=3)
    assert (closed["type"], closed["code"]) == ("websocket.close", CloseCode.TRY_AGAIN_LATER)
    await comm.disconnect()
