"""What the live-match console shows: each process's summary of the matches it runs or relays, and their merge.

Every process writes its summary once a second from its maintenance round (host.py): with Redis one key per process
(`<ENGINE_PREFIX>:live:<proc>`, expiring after LIVE_TTL_SECONDS) named in a sorted set by the time it was written;
without Redis a dict in this process. A reader (the console's view, sync code) merges them: the owner's entry gives a
match's game, phase, tick, seats and tick time; every process adds its own spectators. A process that dies drops out
when its key expires. docs/operations.md ("The live-match console") has the costs.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson
from django.conf import settings

if TYPE_CHECKING:
    from games.engine.host import MatchHost

# A summary older than this is from a process that stopped (or cannot reach Redis): it is not shown.
LIVE_TTL_SECONDS = 3.0
# Written every this many maintenance rounds (MAINTENANCE_SECONDS each): once a second.
LIVE_EVERY_ROUNDS = 4
# Names of processes whose summaries expired are forgotten from the sorted set after this long.
FORGET_AFTER_SECONDS = 60.0

PROCESS_NAME = f"{socket.gethostname()}:{os.getpid()}"

_local: dict[str, tuple[float, dict[str, Any]]] = {}  # without Redis: proc -> (written at, summary)
_local_lock = threading.Lock()


class TickTimes:
    """Mean tick time per owned match since the previous summary (the runners' TickStats only add up)."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[int, float]] = {}

    def mean_ms(self, mid: int, ticks: int, total_ms: float) -> float | None:
        before_ticks, before_ms = self._last.get(mid, (0, 0.0))
        self._last[mid] = (ticks, total_ms)
        if ticks <= before_ticks:
            return None
        return round((total_ms - before_ms) / (ticks - before_ticks), 3)

    def keep_only(self, mids: set[int]) -> None:
        for mid in [mid for mid in self._last if mid not in mids]:
            del self._last[mid]


def summary(host: MatchHost, tick_times: TickTimes) -> dict[str, Any]:
    """This process's share of every match it has sockets of or runs."""
    now = time.monotonic()
    matches: dict[str, dict[str, Any]] = {}
    for mid, runner in list(host.runners.items()):
        matches[str(mid)] = {
            "owner": True,
            "game": runner.info.game,
            "phase": runner.phase,
            "tick": runner.steps,
            "connected": [runner.is_connected(seat, now) for seat in range(runner.seats)],
            "removed": runner.removed[:],
            "tick_ms": tick_times.mean_ms(mid, runner.stats.ticks, runner.stats.total_step_ms),
            "max_tick_ms": round(runner.stats.max_step_ms, 2),
        }
    tick_times.keep_only(set(host.runners))
    for mid in host.sockets.matches():
        entry = matches.setdefault(str(mid), {"owner": False})
        conns = list(host.sockets.of(mid))
        entry["spectators"] = sum(1 for conn in conns if conn.seat is None)
        entry["seats_here"] = sorted({conn.seat for conn in conns if conn.seat is not None})
    return {"proc": host.proc, "name": PROCESS_NAME, "at": time.time(), "matches": matches}


def _keys() -> tuple[str, str]:
    return f"{settings.ENGINE_PREFIX}:live", f"{settings.ENGINE_PREFIX}:live:"


async def publish(host: MatchHost, data: dict[str, Any]) -> None:
    """Writes this process's summary: to Redis when the host's store is there, else into this process."""
    node = getattr(host.store, "live_node", None)
    if node is None:
        with _local_lock:
            _local[data["proc"]] = (time.monotonic(), data)
        return
    index, prefix = _keys()
    async with node.pipeline(transaction=False) as pipe:
        pipe.set(prefix + data["proc"], orjson.dumps(data), px=int(LIVE_TTL_SECONDS * 1000))
        pipe.zadd(index, {data["proc"]: data["at"]})
        pipe.zremrangebyscore(index, "-inf", data["at"] - FORGET_AFTER_SECONDS)
        await pipe.execute()


def forget_local(proc: str) -> None:
    with _local_lock:
        _local.pop(proc, None)


def read_summaries() -> list[dict[str, Any]]:
    """Every live process's last summary (sync: the console's view). Raises when Redis cannot be reached."""
    if not settings.REDIS_URL:
        now = time.monotonic()
        with _local_lock:
            return [data for at, data in _local.values() if now - at < LIVE_TTL_SECONDS]
    index, prefix = _keys()
    client = _reader(settings.ENGINE_REDIS_URLS[0], settings.REDIS_TIMEOUT_SECONDS)
    procs = client.zrangebyscore(index, time.time() - LIVE_TTL_SECONDS, "+inf")
    raw = client.mget([prefix + proc.decode() for proc in procs]) if procs else []
    return [orjson.loads(item) for item in raw if item]


@functools.cache
def _reader(url: str, timeout: int):
    """One client (and connection pool) per process for the console's reads: it polls every second."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def live_matches(summaries: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Summaries merged by match: the owner's view of the match, every process's spectators and seats."""
    merged: dict[int, dict[str, Any]] = {}
    for data in summaries:
        for key, part in data["matches"].items():
            mid = int(key)
            entry = merged.setdefault(mid, {"match_id": mid, "owner": None, "spectators": 0, "processes": [],
                                             "seats_on": {}})
            entry["processes"].append(data["name"])
            entry["spectators"] += part.get("spectators", 0)
            for seat in part.get("seats_here", []):
                entry["seats_on"][str(seat)] = data["name"]
            if part["owner"]:
                entry["owner"] = data["name"]
                for name in ("game", "phase", "tick", "connected", "removed", "tick_ms", "max_tick_ms"):
                    entry[name] = part[name]
    return merged
