"""This process's Prometheus metrics, served at GET /metrics behind METRICS_TOKEN (docs/operations.md, "Metrics").

Two kinds of counting. What happens per message (messages in and out, bytes out), per socket (open sockets, close
codes) or per tick (duration, lateness, over budget) is counted in plain ints, lists and dicts, with no lock, and read
at scrape time by `EngineCollector`; so are the engine's gauges (matches owned and relayed), read off the match hosts.
What is rarer (takeovers, handovers, database retries, matchmaking waits) uses prometheus-client's own metrics. `metric_names()` lists every series; deploy/grafana-dashboard.json uses them (a test checks it).
"""

from __future__ import annotations

import hmac
import time
from bisect import bisect_left
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotFound
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from gameserver.metrics_process import PROCESS
from gameserver.wirecounts import CLOSES, OPEN_SOCKETS, SOCKET_KINDS, WIRE

# --- prometheus-client metrics: once per match-tick or rarer ---------------------------------------------------------

# The *_created series (when a counter was first used) add nothing a dashboard here reads.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
# process_resident_memory_bytes, process_open_fds, process_cpu_seconds_total...: what a soak run watches
# (docs/operations.md, "Soak runs"); python_gc_*: collections per generation.
ProcessCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

LEASE_TAKEOVERS = Counter(
    "gameserver_lease_takeovers", "Matches this process started from another process's checkpoint (its owner died, "
    "stalled or handed over).", registry=REGISTRY,
)
LEASES_LOST = Counter(
    "gameserver_leases_lost", "Matches this process stopped running because another process took their lease.",
    registry=REGISTRY,
)
HANDOVERS = Counter(
    "gameserver_handovers", "Matches this process handed over to others on SIGTERM.", registry=REGISTRY,
)
DATABASE_RETRIES = Counter(
    "gameserver_database_retries", "Database calls retried because PostgreSQL was unavailable.", ["what"],
    registry=REGISTRY,
)
MATCHMAKING_WAIT = Histogram(
    "gameserver_matchmaking_wait_seconds", "How long matched tickets waited in the queue.", ["game"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600), registry=REGISTRY,
)


# Ticks run every 16-50 ms (20-60 Hz): the buckets resolve the simulation's ~0.1-5 ms and lateness up to several periods.
TICK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class PlainHistogram:
    """A histogram in plain lists, for the tick loop: a bisect and two adds, about 0.4 us an observation against
    prometheus-client's 1 us (its lock). Written and read on the event loop's thread only."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(TICK_BUCKETS) + 1)  # the last one: above every bound (+Inf)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(TICK_BUCKETS, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, int]]:
        """Cumulative, as Prometheus wants them."""
        cumulative, out = 0, []
        for bound, count in zip((*TICK_BUCKETS, float("inf")), self.counts, strict=True):
            cumulative += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        return out


class GameTicks:
    """One game's ticks in this process: what every match of it adds up to."""

    __slots__ = ("duration", "lateness", "over_budget")

    def __init__(self) -> None:
        self.duration = PlainHistogram()
        self.lateness = PlainHistogram()
        self.over_budget = 0


TICKS: dict[str, GameTicks] = {}


class TickMetrics:
    """One match's handle on its game's tick histograms; runner.py calls `observe` once per tick."""

    __slots__ = ("ticks", "budget_ms")

    def __init__(self, game: str, period: float) -> None:
        self.ticks = TICKS.get(game) or TICKS.setdefault(game, GameTicks())
        self.budget_ms = period * 1000

    def observe(self, lateness: float, spent_ms: float) -> None:
        # PlainHistogram.observe's lines, inline: two calls fewer per tick of every match.
        ticks = self.ticks
        duration, late = ticks.duration, ticks.lateness
        spent = spent_ms / 1000
        duration.counts[bisect_left(TICK_BUCKETS, spent)] += 1
        duration.total += spent
        if lateness < 0.0:
            lateness = 0.0
        late.counts[bisect_left(TICK_BUCKETS, lateness)] += 1
        late.total += lateness
        if spent_ms > self.budget_ms:
            ticks.over_budget += 1


# --- matchmaking queue: seen by whichever process runs the matchmaker's step -----------------------------------------

# A step's queue sizes are exported for this long after it; a process whose matchmaker stood down (a worker took over)
# stops exporting them rather than repeating stale numbers.
QUEUE_FRESH_SECONDS = 10.0
_queue: dict[str, int] = {}
_queue_at = float("-inf")


def matchmaking_queue_seen(sizes: dict[str, int]) -> None:
    """Searching tickets per game, as the matchmaker's step read them (every game, zero included)."""
    global _queue, _queue_at
    _queue, _queue_at = dict(sizes), time.monotonic()


# --- the scrape ----------------------------------------------------------------------------------------------------


class EngineCollector:
    """Reads the plain counts and the match hosts at scrape time."""

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        yield from self._families(live=True)

    def _families(self, *, live: bool = False) -> Iterator[Metric]:
        info = GaugeMetricFamily("gameserver_process", "This process (1), by host:pid and match engine id.",
                                 labels=["process", "engine"])
        sockets = GaugeMetricFamily("gameserver_sockets_open", "Open WebSockets by kind.", labels=["kind"])
        matches = GaugeMetricFamily("gameserver_matches", "Matches this process owns (runs) or relays.", labels=["role"])
        messages_in = CounterMetricFamily("gameserver_ws_messages_received", "WebSocket messages received.", labels=["kind"])
        messages_out = CounterMetricFamily("gameserver_ws_messages_sent", "WebSocket messages sent.", labels=["kind"])
        bytes_out = CounterMetricFamily("gameserver_ws_sent_bytes", "WebSocket bytes sent (frames).", labels=["kind"])
        closes = CounterMetricFamily("gameserver_ws_closes", "Sockets this server closed, by close code.", labels=["code"])
        duration = HistogramMetricFamily(
            "gameserver_tick_duration_seconds",
            "A match tick's own time (simulation, snapshot, sending), not counting the wait for its journal record.",
            labels=["game"],
        )
        lateness = HistogramMetricFamily("gameserver_tick_lateness_seconds", "How late ticks started against their "
                                         "schedule.", labels=["game"])
        over_budget = CounterMetricFamily("gameserver_ticks_over_budget", "Ticks whose own time exceeded the tick period "
                                          "(the match cannot keep its rate).", labels=["game"])
        queue = GaugeMetricFamily("gameserver_matchmaking_queue", "Searching tickets per game, as this process's "
                                  "matchmaker last saw them (absent where it does not run).", labels=["game"])
        if live:
            from games.engine.host import local_hosts

            hosts = [host for _, host in local_hosts()]
            info.add_metric([PROCESS, ",".join(host.proc for host in hosts if host.proc)], 1)
            for kind in SOCKET_KINDS:
                sockets.add_metric([kind], OPEN_SOCKETS.get(kind, 0))
                counts = WIRE[kind]
                messages_in.add_metric([kind], counts.messages_in)
                messages_out.add_metric([kind], counts.messages_out)
                bytes_out.add_metric([kind], counts.bytes_out)
            matches.add_metric(["owned"], sum(len(host.runners) for host in hosts))
            matches.add_metric(["relayed"], sum(len(host.relayed) for host in hosts))
            for code, count in sorted(CLOSES.items()):
                closes.add_metric([str(code)], count)
            for game, ticks in sorted(TICKS.items()):
                duration.add_metric([game], ticks.duration.buckets(), ticks.duration.total)
                lateness.add_metric([game], ticks.lateness.buckets(), ticks.lateness.total)
                over_budget.add_metric([game], ticks.over_budget)
            if time.monotonic() - _queue_at < QUEUE_FRESH_SECONDS:
                for game, size in sorted(_queue.items()):
                    queue.add_metric([game], size)
        yield from (info, sockets, matches, messages_in, messages_out, bytes_out, closes, duration, lateness, over_budget,
                    queue)


REGISTRY.register(EngineCollector())


def metric_names() -> set[str]:
    """Every series name this process can expose (with _total, _bucket, _sum, _count): what a dashboard may query."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


# --- the endpoint --------------------------------------------------------------------------------------------------


def _authorized(request) -> bool:
    expected = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


@never_cache
@require_safe
async def metrics(request):
    """Prometheus text format. 404 unless METRICS_TOKEN is set and sent as `Authorization: Bearer <token>`: without
    the token the endpoint does not exist, as far as a client can tell. Runs on the event loop, where the counts are
    written, so it reads them between two callbacks."""
    if not _authorized(request):
        return HttpResponseNotFound("Not found", content_type="text/plain")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
