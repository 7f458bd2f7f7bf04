"""The metrics endpoint and what it counts, the log context and JSON format, and the Grafana dashboard's names."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from gameserver import directws, logs, metrics
from gameserver.directws import OP_TEXT, DirectSocket
from gameserver.wirecounts import WireCounts
from lobby import matchmaker, services
from tests.gameserver.test_directws import FakeSink, FakeTransport, frame

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
TOKEN = "a-metrics-token-of-32-characters-or-more"


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


# --- the endpoint ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_are_not_there_without_the_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 404


@pytest.mark.django_db
def test_metrics_with_the_token_are_prometheus_text(client, settings):
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    body = response.content.decode()
    assert 'gameserver_matches{role="owned"}' in body
    assert 'gameserver_sockets_open{kind="match"}' in body
    assert "process_resident_memory_bytes" in body


# --- what is counted ----------------------------------------------------------------------------------------------


def test_a_direct_socket_counts_messages_bytes_and_its_protocol_error_close():
    counts = WireCounts()
    transport, sink = FakeTransport(), FakeSink()
    sock = DirectSocket(transport)
    sock.attach(sink, max_message_bytes=100, counts=counts)
    assert sock.opened()
    sock.feed(frame(OP_TEXT, b"hello") + frame(OP_TEXT, b"again"))
    assert counts.messages_in == 2
    wire = directws.encode_frame(OP_TEXT, b"x" * 50)
    assert sock.send_wire(wire)
    assert (counts.messages_out, counts.bytes_out) == (1, len(wire))
    before = sample("gameserver_ws_closes_total", code="1002")
    sock.feed(frame(OP_TEXT, b"unmasked", masked=False))  # RFC 6455 5.1: the server fails the connection, 1002
    assert sample("gameserver_ws_closes_total", code="1002") == before + 1
    assert not sock.send_wire(wire) and counts.messages_out == 1


def test_ticks_over_their_period_are_counted_over_budget():
    game = "metrics-test-game"
    tick = metrics.TickMetrics(game, period=0.05)
    tick.observe(0.01, 20.0)
    tick.observe(-0.001, 49.9)  # a tick that started early counts as on time
    assert sample("gameserver_ticks_over_budget_total", game=game) == 0
    tick.observe(0.2, 50.5)
    assert sample("gameserver_ticks_over_budget_total", game=game) == 1
    assert sample("gameserver_tick_duration_seconds_count", game=game) == 3
    assert sample("gameserver_tick_lateness_seconds_bucket", game=game, le="0.0005") == 1  # the early one
    assert sample("gameserver_tick_duration_seconds_sum", game=game) == pytest.approx(0.1204)


@pytest.mark.django_db
def test_the_matchmaker_exports_its_queue_per_game_and_the_waits_of_matched_tickets(
    make_user, django_capture_on_commit_callbacks
):
    for i in range(3):
        services.ticket_create(user=make_user(f"q{i}"), game="pong")
    waits_before = sample("gameserver_matchmaking_wait_seconds_count", game="pong")
    with django_capture_on_commit_callbacks(execute=True):
        assert matchmaker.run_one_step().matched_tickets == 2
    assert sample("gameserver_matchmaking_queue", game="pong") == 3  # what the step found searching
    assert sample("gameserver_matchmaking_queue", game="arena") == 0
    assert sample("gameserver_matchmaking_wait_seconds_count", game="pong") == waits_before + 2
    matchmaker.run_one_step()
    assert sample("gameserver_matchmaking_queue", game="pong") == 1


def test_a_stale_matchmaking_queue_is_not_exported(monkeypatch):
    metrics.matchmaking_queue_seen({"pong": 4})
    assert sample("gameserver_matchmaking_queue", game="pong") == 4
    monkeypatch.setattr(metrics, "QUEUE_FRESH_SECONDS", 0.0)
    assert metrics.REGISTRY.get_sample_value("gameserver_matchmaking_queue", {"game": "pong"}) is None


# --- logs -----------------------------------------------------------------------------------------------------------


def _record(message: str) -> logging.LogRecord:
    record = logging.LogRecord("games.engine.host", logging.WARNING, __file__, 1, message, (), None)
    assert logs.ContextFilter().filter(record)
    return record


def test_log_records_carry_the_match_the_user_and_the_process():
    logs.log_context(match_id=12, user_id=3)
    try:
        entry = json.loads(logs.JsonFormatter().format(_record("lease lost")))
    finally:
        logs.log_context(match_id=None, user_id=None)
    assert entry["match_id"] == 12 and entry["user_id"] == 3 and entry["message"] == "lease lost"
    assert entry["level"] == "WARNING" and entry["logger"] == "games.engine.host"
    assert re.fullmatch(r".+:\d+", entry["process"]) and entry["time"].endswith("+00:00")
    assert _record("idle").context == ""


def test_the_plain_format_shows_the_context(settings):
    logs.log_context(match_id=7, user_id=None)
    try:
        record = _record("tick loop failed")
    finally:
        logs.log_context(match_id=None, user_id=None)
    line = logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"]).format(record)
    assert line.endswith(" match=7 tick loop failed")


def test_json_logs_include_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info())
    logs.ContextFilter().filter(record)
    entry = json.loads(logs.JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]


# --- the dashboard ----------------------------------------------------------------------------------------------------


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_every_metric_the_dashboard_queries_exists():
    queries = dashboard_queries()
    assert len(queries) >= 10
    used = {name for expr in queries for name in re.findall(r"\b((?:gameserver|process|python)_[a-z_]+)\b", expr)}
    assert used, "the dashboard queries no metric of ours"
    assert sorted(used - metrics.metric_names()) == []
    # Every metric of ours is on the dashboard somewhere (the process_ and python_ ones need not be).
    ours = {name for name in metrics.metric_names() if name.startswith("gameserver_")}
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in ours}
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert sorted(families - shown) == []
