"""Where match ownership and checkpoints live: Redis when REDIS_URL is set (shared by every process), else memory.

A lease names the process that runs a match's tick loop. The owner renews it and writes a checkpoint in one fenced
step: a process that lost its lease (stalled, or presumed dead) can no longer overwrite its successor's checkpoint.
The input log is appended in that same step, so a checkpoint and the log up to it always agree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

LEASE_TTL_MS = 2000
CHECKPOINT_TTL_S = 3600

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
  if #ARGV > 4 then
    redis.call('RPUSH', KEYS[3], unpack(ARGV, 5))
  end
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return 1
"""

# A lease that expired meanwhile (the match ended while Redis was away) still lets its last owner clear the keys.
_RELEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
if holder then redis.call('DEL', KEYS[1]) end
if ARGV[2] == '1' then redis.call('DEL', KEYS[2], KEYS[3]) end
return 1
"""


# One applied input (or, with None, a player's removal) of the match's input log: (step, seat, raw input as JSON text).
# The log lives as long as the match, 20 entries a second per player. Kept as a tuple of plain values, the garbage
# collector stops tracking it; as a list, or with the input's dict inside, every full collection walked all of
# them: pauses of ~200 ms once a few hundred thousand had piled up at 1,000 players.
# The JSON is kept as str: orjson's bytes keep the 4 KiB buffer they were written in (3 GB for 800,000 entries).
LogEntry = tuple[int, int, str | None]


def log_entry(step: int, seat: int, raw: Any) -> LogEntry:
    return (step, seat, None if raw is None else orjson.dumps(raw).decode())


def export_log(entries: list[LogEntry]) -> list[list[Any]]:
    """The log as stored (match results, checkpoints): [[step, seat, raw input or None], ...]."""
    return [[step, seat, None if raw is None else orjson.loads(raw)] for step, seat, raw in entries]


@dataclass(slots=True)
class Checkpoint:
    data: dict[str, Any]
    log: list[list[Any]]


@dataclass(slots=True)
class Renewal:
    """One owned match's share of a renewal round: its checkpoint and the log entries since the last one."""

    match_id: int
    checkpoint: dict[str, Any] | None = None
    new_log_entries: list[LogEntry] = field(default_factory=list)


class MemoryStore:
    """One process, nothing shared: leases always succeed for the only process there is.

    With nobody to take a match over, checkpoints would never be read: the host's store keeps none
    (keep_checkpoints=False) and runners skip building them; tests keep them to check the protocol."""

    def __init__(self, *, keep_checkpoints: bool = True) -> None:
        self.keeps_checkpoints = keep_checkpoints
        self._leases: dict[int, tuple[str, float]] = {}
        self._checkpoints: dict[int, dict[str, Any]] = {}
        self._logs: dict[int, list[list[Any]]] = {}

    def _holder(self, match_id: int) -> str | None:
        entry = self._leases.get(match_id)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    async def acquire(self, match_id: int, owner: str) -> bool:
        if self._holder(match_id) not in (None, owner):
            return False
        self._leases[match_id] = (owner, time.monotonic() + LEASE_TTL_MS / 1000)
        return True

    async def owner_of(self, match_id: int) -> str | None:
        return self._holder(match_id)

    async def renew(self, owner: str, renewals: list[Renewal]) -> list[bool]:
        results = []
        for item in renewals:
            if self._holder(item.match_id) != owner:
                results.append(False)
                continue
            self._leases[item.match_id] = (owner, time.monotonic() + LEASE_TTL_MS / 1000)
            if item.checkpoint is not None:
                self._checkpoints[item.match_id] = orjson.loads(orjson.dumps(item.checkpoint))
                self._logs.setdefault(item.match_id, []).extend(export_log(item.new_log_entries))
            results.append(True)
        return results

    async def has_checkpoint(self, match_id: int) -> bool:
        return match_id in self._checkpoints

    async def ping(self) -> None:
        pass

    async def reacquire(self, owner: str, match_ids: list[int]) -> list[tuple[bool, bool]]:
        return [(await self.acquire(match_id, owner), match_id in self._checkpoints) for match_id in match_ids]

    async def load(self, match_id: int) -> Checkpoint | None:
        data = self._checkpoints.get(match_id)
        if data is None:
            return None
        return Checkpoint(data=orjson.loads(orjson.dumps(data)), log=list(self._logs.get(match_id, []))[: data["log_len"]])

    async def release(self, match_id: int, owner: str, *, clear: bool) -> None:
        holder = self._holder(match_id)
        if holder in (None, owner):
            self._leases.pop(match_id, None)
            if clear:
                self._checkpoints.pop(match_id, None)
                self._logs.pop(match_id, None)

    async def close(self) -> None:
        pass


class RedisStore:
    keeps_checkpoints = True

    def __init__(self, url: str, prefix: str = "gs") -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)

    def _keys(self, match_id: int) -> list[str]:
        p = self._prefix
        return [f"{p}:lease:{match_id}", f"{p}:ckpt:{match_id}", f"{p}:log:{match_id}"]

    async def acquire(self, match_id: int, owner: str) -> bool:
        lease = self._keys(match_id)[0]
        if await self._redis.set(lease, owner, nx=True, px=LEASE_TTL_MS):
            return True
        # Re-acquiring our own lease (a renewal raced with a restart of the loop) is fine.
        return (await self._redis.get(lease)) == owner.encode()

    async def owner_of(self, match_id: int) -> str | None:
        value = await self._redis.get(self._keys(match_id)[0])
        return value.decode() if value else None

    async def renew(self, owner: str, renewals: list[Renewal]) -> list[bool]:
        if not renewals:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for item in renewals:
                args: list[Any] = [owner, LEASE_TTL_MS, "", CHECKPOINT_TTL_S]
                if item.checkpoint is not None:
                    args[2] = orjson.dumps(item.checkpoint)
                    # The raw input is JSON text already: written as is, not decoded and encoded again.
                    args.extend(
                        f"[{step},{seat},{'null' if raw is None else raw}]" for step, seat, raw in item.new_log_entries
                    )
                await self._renew(keys=self._keys(item.match_id), args=args, client=pipe)
            return [bool(result) for result in await pipe.execute()]

    async def has_checkpoint(self, match_id: int) -> bool:
        return bool(await self._redis.exists(self._keys(match_id)[1]))

    async def ping(self) -> None:
        await self._redis.ping()

    async def reacquire(self, owner: str, match_ids: list[int]) -> list[tuple[bool, bool]]:
        """Leases that vanished (a Redis restart, or renewals late past the TTL): take each again if it is free or
        still ours, all in one round trip. Per match: (acquired, its checkpoint is still there)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for match_id in match_ids:
                lease, ckpt, _ = self._keys(match_id)
                pipe.set(lease, owner, nx=True, px=LEASE_TTL_MS)
                pipe.get(lease)
                pipe.exists(ckpt)
            results = await pipe.execute()
        mine = owner.encode()
        return [
            (bool(results[k]) or results[k + 1] == mine, bool(results[k + 2])) for k in range(0, len(results), 3)
        ]

    async def load(self, match_id: int) -> Checkpoint | None:
        _, ckpt_key, log_key = self._keys(match_id)
        raw = await self._redis.get(ckpt_key)
        if raw is None:
            return None
        data = orjson.loads(raw)
        entries = await self._redis.lrange(log_key, 0, data["log_len"] - 1) if data["log_len"] else []
        return Checkpoint(data=data, log=[orjson.loads(entry) for entry in entries])

    async def release(self, match_id: int, owner: str, *, clear: bool) -> None:
        await self._release(keys=self._keys(match_id), args=[owner, "1" if clear else "0"])

    async def close(self) -> None:
        await self._redis.aclose()
