"""The matchmaker: pure grouping by rating window, and run_one_step's matches, expiry and exactly-once claims."""

from __future__ import annotations

from datetime import timedelta

import pytest

from games.models import Match, MatchPlayer
from lobby import matchmaker, services
from lobby.matchmaker import Queued, form_groups
from lobby.models import Rating, Ticket, TicketMember


def q(i: int, rating: float, waited: float = 0.0, size: int = 1) -> Queued:
    return Queued(id=i, size=size, rating=rating, waited=waited)


# --- pure grouping ---------------------------------------------------------------------------------------------------


def test_close_ratings_pair_up_for_a_two_player_game():
    groups = form_groups([q(1, 25), q(2, 40), q(3, 26), q(4, 41)], min_players=2, max_players=2)
    assert sorted(sorted(t.id for t in g) for g in groups) == [[1, 3], [2, 4]]


def test_far_ratings_wait_until_the_window_widens():
    # docs/lobby.md: a window of 3 mu points plus 0.5 per second waited; a gap of 12 needs 18 s of waiting.
    assert form_groups([q(1, 20), q(2, 32)], min_players=2, max_players=2) == []
    assert form_groups([q(1, 20, waited=17), q(2, 32)], min_players=2, max_players=2) == []
    assert len(form_groups([q(1, 20, waited=18), q(2, 32)], min_players=2, max_players=2)) == 1


def test_arena_fills_to_its_maximum_when_the_queue_allows():
    groups = form_groups([q(i, 25 + i * 0.1) for i in range(10)], min_players=2, max_players=8)
    assert [len(g) for g in groups] == [8]


def test_arena_starts_short_handed_only_after_the_fill_wait():
    # docs/lobby.md: short-handed once the group's oldest ticket has waited 20 s.
    few = [q(i, 25) for i in range(3)]
    assert form_groups(few, min_players=2, max_players=8) == []
    assert form_groups([q(0, 25, waited=19.9), q(1, 25), q(2, 25)], min_players=2, max_players=8) == []
    waited = [q(0, 25, waited=20), q(1, 25), q(2, 25)]
    assert [len(g) for g in form_groups(waited, min_players=2, max_players=8)] == [3]


def test_parties_are_never_split_and_never_overfill():
    groups = form_groups([q(1, 25, size=2), q(2, 25), q(3, 25, size=2)], min_players=2, max_players=2)
    assert sorted(sorted(t.id for t in g) for g in groups) == [[1], [3]]


def test_every_ticket_is_in_at_most_one_group():
    tickets = [q(i, 20 + (i * 7919 % 100) / 10, waited=i % 40) for i in range(500)]
    groups = form_groups(tickets, min_players=2, max_players=8)
    ids = [t.id for g in groups for t in g]
    assert len(ids) == len(set(ids))
    assert all(2 <= len(g) <= 8 for g in groups)


# --- run_one_step ----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_step_creates_one_match_per_group_and_marks_tickets_matched(make_user):
    users = [make_user(f"p{i}") for i in range(5)]
    for user in users:
        services.ticket_create(user=user, game="pong")
    result = matchmaker.run_one_step()
    assert (result.matches, result.matched_tickets) == (2, 4)
    assert Match.objects.filter(source="matchmaking", game="pong").count() == 2
    matched = Ticket.objects.filter(status=Ticket.Status.MATCHED)
    assert matched.count() == 4 and all(t.match_id for t in matched)
    for ticket in matched:
        assert MatchPlayer.objects.filter(match_id=ticket.match_id, user=ticket.owner).exists()
    assert Ticket.objects.filter(status=Ticket.Status.SEARCHING).count() == 1
    assert not TicketMember.objects.filter(active=True).exclude(ticket__status=Ticket.Status.SEARCHING).exists()
    assert matchmaker.run_one_step().matches == 0


@pytest.mark.django_db
def test_step_uses_server_ratings(make_user):
    strong, weak1, weak2, strong2 = (make_user(n) for n in ("strong", "weak1", "weak2", "strong2"))
    for user, mu in ((strong, 40), (strong2, 41), (weak1, 10), (weak2, 11)):
        Rating.objects.create(user=user, game="pong", mu=mu, sigma=3, ordinal=mu - 9)
        services.ticket_create(user=user, game="pong")
    matchmaker.run_one_step()
    pairs = {
        frozenset(Match.objects.get(pk=m).players.values_list("user__username", flat=True))
        for m in Ticket.objects.values_list("match_id", flat=True)
    }
    assert pairs == {frozenset({"strong", "strong2"}), frozenset({"weak1", "weak2"})}


@pytest.mark.django_db
def test_party_members_share_a_match(make_user, api_as):
    alice, bob, carol, dave = (make_user(n) for n in ("alice", "bob", "carol", "dave"))
    lobby = services.lobby_create(user=alice, game="pong")
    services.lobby_join(user=bob, code=lobby.code)
    services.lobby_set_ready(user=bob, code=lobby.code, ready=True)
    party = services.ticket_create(user=alice, game="pong", lobby_code=lobby.code)
    services.ticket_create(user=carol, game="pong")
    services.ticket_create(user=dave, game="pong")
    assert matchmaker.run_one_step().matches == 2
    party.refresh_from_db()
    assert set(party.match.players.values_list("user__username", flat=True)) == {"alice", "bob"}


@pytest.mark.django_db
def test_old_tickets_expire(make_user):
    ticket = services.ticket_create(user=make_user("alice"), game="arena")
    result = matchmaker.run_one_step(now=ticket.expires_at + timedelta(seconds=1))
    assert result.expired == 1
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.EXPIRED


@pytest.mark.django_db
def test_banned_users_ticket_is_cancelled_not_matched(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    banned = services.ticket_create(user=alice, game="pong")
    services.ticket_create(user=bob, game="pong")
    alice.is_active = False
    alice.save()
    assert matchmaker.run_one_step().matches == 0
    banned.refresh_from_db()
    assert banned.status == Ticket.Status.CANCELLED


@pytest.mark.django_db
def test_a_claim_conflict_rolls_the_games_step_back(make_user, monkeypatch):
    for name in ("alice", "bob"):
        services.ticket_create(user=make_user(name), game="pong")
    real_form = matchmaker.form_groups

    def steal_then_form(tickets, **kwargs):
        # Another matchmaker ends a ticket between our read and our claim.
        Ticket.objects.filter(pk=tickets[0].id).update(status=Ticket.Status.CANCELLED)
        return real_form(tickets, **kwargs)

    monkeypatch.setattr(matchmaker, "form_groups", steal_then_form)
    assert matchmaker.run_one_step().matches == 0
    assert not Match.objects.exists()
    # Everything the step did for the game was rolled back (here, even the simulated theft).
    assert Ticket.objects.filter(status=Ticket.Status.SEARCHING).count() == 2


@pytest.mark.django_db
def test_run_matchmaker_once_command(make_user, capsys):
    from django.core.management import call_command

    for name in ("alice", "bob"):
        services.ticket_create(user=make_user(name), game="pong")
    call_command("run_matchmaker", "--once")
    assert "1 matches from 2 tickets" in capsys.readouterr().out


def test_window_widens_with_wait_up_to_a_cap():
    # docs/lobby.md: 3 mu points, plus 0.5 per second waited, up to 25.
    assert [matchmaker.window(waited) for waited in (0, 10, 44, 1000)] == [3.0, 8.0, 25.0, 25.0]


# One pass is enough (suite time): what it checks, the worker's own HTTP server, does not depend on the services.
@pytest.mark.multiprocess
@pytest.mark.embedded_only
def test_the_matchmaker_worker_serves_its_metrics_on_its_own_address(tmp_path):
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.procs import ROOT, Cluster, drop_database, embedded_env, free_port, wait_for_port

    cluster = Cluster(env=embedded_env(tmp_path), tmp_path=tmp_path)
    cluster.migrate()
    port = free_port()
    worker = subprocess.Popen([sys.executable, "manage.py", "run_matchmaker", "--interval", "0.2", "--metrics-bind",
                               f"127.0.0.1:{port}"], cwd=ROOT, env=cluster.env, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, worker)
        deadline = time.monotonic() + 10
        while True:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            if 'gameserver_matchmaking_queue{game="pong"} 0.0' in body or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert 'gameserver_matchmaking_queue{game="pong"} 0.0' in body
        assert "gameserver_matchmaking_wait_seconds" in body
        bad = subprocess.run([sys.executable, "manage.py", "run_matchmaker", "--metrics-bind", "9101"], cwd=ROOT,
                             env=cluster.env, capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0 and "expected HOST:PORT" in bad.stderr
    finally:
        worker.terminate()
        worker.wait(timeout=10)
        drop_database(cluster.env["DATABASE_URL"])


@pytest.mark.django_db
def test_a_matchmaker_step_the_database_refused_is_counted_as_a_retry(monkeypatch):
    import threading

    from django.db import OperationalError

    from gameserver.metrics import REGISTRY

    stop = threading.Event()

    def refused(**kwargs):
        stop.set()  # one step is enough
        raise OperationalError("the database is away")

    monkeypatch.setattr(matchmaker, "run_one_step", refused)
    before = REGISTRY.get_sample_value("gameserver_database_retries_total", {"what": "matchmaker_step"}) or 0
    matchmaker.run_forever(stop=stop, interval=0.01)
    assert REGISTRY.get_sample_value("gameserver_database_retries_total", {"what": "matchmaker_step"}) == before + 1
