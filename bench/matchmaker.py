"""Matchmaking benchmark: server time to match 10,000 queued tickets, and ticket-creation API throughput.

Runs against DATABASE_URL (a database of its own: it deletes users and tickets) or, without it, a throwaway SQLite
file. docs/benchmarks.md ("Matchmaking") has the numbers and the commands.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta


def setup_django() -> None:
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="gs-bench-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gameserver.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def reset() -> None:
    from games.models import Match
    from gameserver.accounts.models import User
    from lobby.models import Ticket

    Ticket.objects.all().delete()
    Match.objects.all().delete()
    User.objects.filter(username__startswith="bench").delete()


def queue_tickets(count: int, seed: int) -> None:
    """Bulk-insert `count` solo tickets, half pong and half arena, with normal ratings and waits of 0-60 s."""
    from django.utils import timezone

    from gameserver.accounts.models import User
    from lobby.models import Ticket, TicketMember

    rng = random.Random(seed)
    now = timezone.now()
    users = User.objects.bulk_create([User(username=f"bench{i}") for i in range(count)], batch_size=1000)
    tickets = Ticket.objects.bulk_create(
        [
            Ticket(
                owner=user,
                game="pong" if i % 2 else "arena",
                rating=rng.gauss(25, 4),
                expires_at=now + timedelta(minutes=10),
            )
            for i, user in enumerate(users)
        ],
        batch_size=1000,
    )
    # auto_now_add ignores given values: spread the waits afterwards.
    for ticket in tickets:
        ticket.created_at = now - timedelta(seconds=rng.uniform(0, 60))
    Ticket.objects.bulk_update(tickets, ["created_at"], batch_size=1000)
    TicketMember.objects.bulk_create(
        [TicketMember(ticket=t, user=u) for t, u in zip(tickets, users, strict=True)], batch_size=1000
    )


def bench_matchmaker(count: int, runs: int) -> list[dict]:
    from lobby import matchmaker
    from lobby.models import Ticket

    results = []
    for run in range(runs):
        reset()
        queue_tickets(count, seed=run)
        steps = matches = matched = 0
        started = time.perf_counter()
        while True:
            step = matchmaker.run_one_step()
            steps += 1
            matches += step.matches
            matched += step.matched_tickets
            if not step.matches:
                break
        elapsed = time.perf_counter() - started
        left = Ticket.objects.filter(status=Ticket.Status.SEARCHING).count()
        results.append({"seconds": elapsed, "steps": steps, "matches": matches, "matched": matched, "left": left})
        print(f"  run {run + 1}: {elapsed:.3f} s, {steps} steps, {matches} matches, {matched} matched, {left} left")
    return results


def bench_api(users: int, seconds: float) -> float:
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from gameserver.accounts.models import User

    reset()
    people = User.objects.bulk_create([User(username=f"benchapi{i}") for i in range(users)], batch_size=1000)
    tokens = Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in people], batch_size=1000)
    client = APIClient()
    done = 0
    started = time.perf_counter()
    for token in tokens:
        if time.perf_counter() - started > seconds:
            break
        response = client.post(
            "/api/matchmaking/tickets/", {"game": "pong"}, format="json", HTTP_AUTHORIZATION=f"Token {token.key}"
        )
        assert response.status_code == 201, response.content
        done += 1
    rate = done / (time.perf_counter() - started)
    print(f"  {done} tickets created, {rate:.0f} requests/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--api-users", type=int, default=3000)
    parser.add_argument("--api-seconds", type=float, default=10.0)
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    from lobby import matchmaker

    matchmaker.EMBEDDED = False
    print(f"database: {connection.vendor}; {args.tickets} tickets, {args.runs} runs")
    print("matchmaker, forming matches and pushing each player's status after commit:")
    results = bench_matchmaker(args.tickets, args.runs)
    print(f"matchmaker median: {statistics.median(r['seconds'] for r in results):.3f} s")
    # The same without the per-player pushes: what forming the matches alone costs.
    real_send = matchmaker.send_on_commit
    matchmaker.send_on_commit = lambda group, message: None
    print("matchmaker, forming matches only:")
    results = bench_matchmaker(args.tickets, args.runs)
    print(f"matchmaker (no pushes) median: {statistics.median(r['seconds'] for r in results):.3f} s")
    matchmaker.send_on_commit = real_send
    rates = [bench_api(args.api_users, args.api_seconds) for _ in range(args.runs)]
    print(f"ticket API median: {statistics.median(rates):.0f} requests/s")
    reset()


if __name__ == "__main__":
    sys.exit(main())
