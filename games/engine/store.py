"""Where match ownership, checkpoints and journals live: Redis when REDIS_URL is set (shared by every process), else
memory.

A lease names the process that runs a match's tick loop. The owner renews it and writes a checkpoint in one fenced
step: a process that lost its lease (stalled, or presumed dead) can no longer overwrite its successor's checkpoint.
The input log is appended in that same step, so a checkpoint and the log up to it always agree, and the journal
(journal.py: what each tick applied since) is trimmed up to the checkpoint's tick. Journal appends are fenced the
same way and extend the lease, so a ticking match renews its lease every tick for free.

Keys shard by match id across ENGINE_REDIS_URLS (one Redis node each): a match's lease, checkpoint, log and journal
live on one node, so each fenced step stays one script on one node.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import NoScriptError

from games.engine.journal import JournalWriter, Written, record_number

# Renewed every tick by the journal (and every maintenance round): short, so that a dead owner's matches are taken
# over quickly (docs/architecture.md, "Leases, checkpoints, failover", has the trade-off).
LEASE_TTL_MS = 1000
# Fencing: a lease renewed by a call sent at t is certainly ours until t + TTL (Redis starts the TTL later than t).
# The margin covers clock rate differences and the time to send a tick once the check passed.
LEASE_SAFE_SECONDS = LEASE_TTL_MS / 1000 - 0.5
CHECKPOINT_TTL_S = 3600
# A node that has not answered a journal flush within this long fails it (its records are kept for the next one).
# Not shorter: a process whose event loop lags (overload, a full collection) reads the answer late, and a timeout
# then would throw a good write away and break the connection.
JOURNAL_TIMEOUT_SECONDS = 1.0

# KEYS: lease, checkpoint, log, journal. ARGV: owner, ttl ms, checkpoint ('' for a renewal only), key ttl s,
# journal record number the checkpoint includes, then the new log entries.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
  if #ARGV > 5 then
    redis.call('RPUSH', KEYS[3], unpack(ARGV, 6))
  end
  redis.call('EXPIRE', KEYS[3], ARGV[4])
  local upto = tonumber(ARGV[5])
  while true do
    local head = redis.call('LINDEX', KEYS[4], 0)
    if not head or tonumber(string.match(head, '^%[(%d+)')) > upto then break end
    redis.call('LPOP', KEYS[4])
  end
end
return 1
"""

# One call per node per flush, for all the process's matches on that node (one command to pack and parse, not one
# per match). KEYS: each match's lease, journal, checkpoint and release mark, in fours. ARGV: owner, ttl ms, key ttl s, then per
# match its record count and its records. Returns per match (journal.Written) 1: written, lease extended; 0: someone
# else holds the lease, nothing written (also when this process released it itself moments ago: a write still in
# flight when the match ended or was handed over must not take it back); 2: nobody held it (it expired while the
# process lagged, or Redis restarted), so it is taken again and the records written (3: and the checkpoint is gone
# too: Redis lost the match's keys).
# RPUSH takes at most 500 records at a time (Lua's unpack has a stack limit).
_JOURNAL = """
local owner, ttl, keep = ARGV[1], ARGV[2], ARGV[3]
local results = {}
local at = 4
for i = 1, #KEYS, 4 do
  local count = tonumber(ARGV[at])
  local holder = redis.call('GET', KEYS[i])
  local result = 1
  if holder == owner then
    redis.call('PEXPIRE', KEYS[i], ttl)
  elseif holder or redis.call('GET', KEYS[i + 3]) == owner then
    result = 0
  else
    redis.call('SET', KEYS[i], owner, 'PX', ttl)
    result = 2
    if redis.call('EXISTS', KEYS[i + 2]) == 0 then result = 3 end
  end
  if result ~= 0 and count > 0 then
    for from = at + 1, at + count, 500 do
      redis.call('RPUSH', KEYS[i + 1], unpack(ARGV, from, math.min(from + 499, at + count)))
    end
    redis.call('EXPIRE', KEYS[i + 1], keep)
  end
  results[#results + 1] = result
  at = at + 1 + count
end
return results
"""
_JOURNAL_SHA = hashlib.sha1(_JOURNAL.encode()).hexdigest()

# Takes the lease if it is free; re-acquiring our own (a renewal raced with a restart of the loop) is fine. One round
# trip: relays try every maintenance round for every match they relay.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"""

# A lease that expired meanwhile (the match ended while Redis was away) still lets its last owner clear the keys. The
# release mark (KEYS[5], for a few seconds) keeps this owner's journal writes still in flight from taking it back.
_RELEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
if holder then redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[5], ARGV[1], 'PX', 3000)
if ARGV[2] == '1' then redis.call('DEL', KEYS[2], KEYS[3], KEYS[4]) end
return 1
"""


# One applied input (or, with None, a player's removal) of the match's input log: (step, seat, raw input as JSON text).
# The log lives as long as the match, 20 entries a second per player. Kept as a tuple of plain values, the garbage
# collector stops tracking it; as a list, or with the input's dict inside, every full collection walked all of
# them: pauses of ~200 ms once a few hundred thousand had piled up at 1,000 players.
# The JSON is kept as str: orjson's bytes keep the 4 KiB buffer they were written in (3 GB for 800,000 entries).
LogEntry = tuple[int, int, str | None]


def log_entry(step: int, seat: int, raw: Any) -> LogEntry:
    return (step, seat, None if raw is None else input_text(raw))


def input_text(raw: Any) -> str:
    """A raw input (not None) as the log and the journal keep it."""
    return orjson.dumps(raw).decode()


def export_log(entries: list[LogEntry]) -> list[list[Any]]:
    """The log as stored (match results, checkpoints): [[step, seat, raw input or None], ...]."""
    return [[step, seat, None if raw is None else orjson.loads(raw)] for step, seat, raw in entries]


@dataclass(slots=True)
class Checkpoint:
    """What a successor resumes from: the checkpoint (None when the match's owner died before writing one, while
    its journal already had records from the first tick), the input log up to it, and the journal records after it."""

    data: dict[str, Any] | None
    log: list[list[Any]]
    journal: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class Renewal:
    """One owned match's share of a renewal round: its lease, and maybe its checkpoint and the log entries since the
    last one (the checkpoint's "jn", the journal records it includes, trims the journal up to there)."""

    match_id: int
    checkpoint: dict[str, Any] | None = None
    new_log_entries: list[LogEntry] = field(default_factory=list)


class MemoryStore:
    """One process, nothing shared: leases always succeed for the only process there is.

    With nobody to take a match over, checkpoints would never be read: the host's store keeps none
    (keep_checkpoints=False) and runners skip building them; tests keep them to check the protocol. Nor is there a
    journal: no successor could replay it."""

    journal = None

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
    """Leases, checkpoints, logs and journals on one Redis node or several: a match's keys live on the node its id
    picks (`urls[match_id % len(urls)]`), so every fenced step is one script on one node, and a round's calls go out
    as one pipeline per node, all nodes at once. Changing the list of nodes moves matches: do it between deploys."""

    keeps_checkpoints = True

    def __init__(self, urls: str | list[str], prefix: str = "gs", *, journal: bool = True) -> None:
        import redis.asyncio as redis

        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls:
            raise ValueError("RedisStore needs at least one Redis URL")
        self._nodes = [redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) for url in urls]
        self._prefix = prefix
        self._renew = self._nodes[0].register_script(_RENEW)
        self._release = self._nodes[0].register_script(_RELEASE)
        self._acquire = self._nodes[0].register_script(_ACQUIRE)
        self.journal = JournalWriter(self.append_journal) if journal else None

    def _node(self, match_id: int):
        return self._nodes[match_id % len(self._nodes)]

    @property
    def live_node(self):
        """Where processes write their live-match summaries (live.py): the first node."""
        return self._nodes[0]

    def _keys(self, match_id: int) -> list[str]:
        p = self._prefix
        return [f"{p}:lease:{match_id}", f"{p}:ckpt:{match_id}", f"{p}:log:{match_id}", f"{p}:jrnl:{match_id}",
                f"{p}:released:{match_id}"]

    async def _per_node(self, items: list, match_id_of, queue) -> list:
        """Runs `queue(pipe, item)` for each item in one pipeline per node, the nodes concurrently; results in the
        items' order, as many per item as `queue` queued commands."""
        by_node: dict[int, list[int]] = {}
        for index, item in enumerate(items):
            by_node.setdefault(match_id_of(item) % len(self._nodes), []).append(index)

        async def run(node: int, indexes: list[int]) -> list[tuple[int, list]]:
            async with self._nodes[node].pipeline(transaction=False) as pipe:
                counts = []
                for index in indexes:
                    before = len(pipe.command_stack)
                    await queue(pipe, items[index])
                    counts.append(len(pipe.command_stack) - before)
                replies = await pipe.execute()
            out, at = [], 0
            for index, count in zip(indexes, counts, strict=True):
                out.append((index, replies[at : at + count]))
                at += count
            return out

        results: list = [None] * len(items)
        for chunk in await asyncio.gather(*(run(node, indexes) for node, indexes in by_node.items())):
            for index, replies in chunk:
                results[index] = replies
        return results

    async def acquire(self, match_id: int, owner: str) -> bool:
        return bool(await self._acquire(keys=self._keys(match_id)[:1], args=[owner, LEASE_TTL_MS], client=self._node(match_id)))

    async def owner_of(self, match_id: int) -> str | None:
        value = await self._node(match_id).get(self._keys(match_id)[0])
        return value.decode() if value else None

    async def renew(self, owner: str, renewals: list[Renewal]) -> list[bool]:
        if not renewals:
            return []

        async def queue(pipe, item: Renewal) -> None:
            args: list[Any] = [owner, LEASE_TTL_MS, "", CHECKPOINT_TTL_S, 0]
            if item.checkpoint is not None:
                args[2] = orjson.dumps(item.checkpoint)
                args[4] = item.checkpoint.get("jn", 0)
                # The raw input is JSON text already: written as is, not decoded and encoded again.
                args.extend(
                    f"[{step},{seat},{'null' if raw is None else raw}]" for step, seat, raw in item.new_log_entries
                )
            await self._renew(keys=self._keys(item.match_id), args=args, client=pipe)

        replies = await self._per_node(renewals, lambda item: item.match_id, queue)
        return [bool(reply[0]) for reply in replies]

    async def append_journal(self, owner: str, items: list[tuple[int, list[bytes]]]) -> list[Written]:
        """Appends each match's records to its journal if the lease is still `owner`'s, extending the lease: one
        script call per node, the nodes at once. A node that does not answer fails only its own matches
        (Written.UNREACHABLE)."""
        by_node: dict[int, list[int]] = {}
        for index, (match_id, _) in enumerate(items):
            by_node.setdefault(match_id % len(self._nodes), []).append(index)

        async def run(node: int, indexes: list[int]) -> list[tuple[int, Written]]:
            keys: list[str] = []
            args: list[Any] = [owner, LEASE_TTL_MS, CHECKPOINT_TTL_S]
            for index in indexes:
                match_id, records = items[index]
                lease, checkpoint, _, journal, released = self._keys(match_id)
                keys += (lease, journal, checkpoint, released)
                args.append(len(records))
                args += records
            client = self._nodes[node]
            try:
                async with asyncio.timeout(JOURNAL_TIMEOUT_SECONDS):  # no task per call, unlike wait_for
                    try:
                        replies = await client.evalsha(_JOURNAL_SHA, len(keys), *keys, *args)
                    except NoScriptError:  # a restarted Redis forgot the script
                        await client.script_load(_JOURNAL)
                        replies = await client.evalsha(_JOURNAL_SHA, len(keys), *keys, *args)
            except asyncio.CancelledError:
                raise
            except Exception:  # unreachable, or the timeout
                return [(index, Written.UNREACHABLE) for index in indexes]
            return [(index, Written(reply)) for index, reply in zip(indexes, replies, strict=True)]

        if len(by_node) == 1:
            chunks = [await run(*next(iter(by_node.items())))]
        else:
            chunks = await asyncio.gather(*(run(node, indexes) for node, indexes in by_node.items()))
        results: list[Written] = [Written.UNREACHABLE] * len(items)
        for chunk in chunks:
            for index, written in chunk:
                results[index] = written
        return results

    async def has_checkpoint(self, match_id: int) -> bool:
        return bool(await self._node(match_id).exists(self._keys(match_id)[1]))

    async def ping(self) -> None:
        await asyncio.gather(*(node.ping() for node in self._nodes))

    async def reacquire(self, owner: str, match_ids: list[int]) -> list[tuple[bool, bool]]:
        """Leases that vanished (a Redis restart, or renewals late past the TTL): take each again if it is free or
        still ours, in one round trip per node. Per match: (acquired, its checkpoint is still there)."""

        async def queue(pipe, match_id: int) -> None:
            lease, ckpt = self._keys(match_id)[:2]
            pipe.set(lease, owner, nx=True, px=LEASE_TTL_MS)
            pipe.get(lease)
            pipe.exists(ckpt)

        mine = owner.encode()
        replies = await self._per_node(match_ids, lambda match_id: match_id, queue)
        return [(bool(taken) or holder == mine, bool(has_ckpt)) for taken, holder, has_ckpt in replies]

    async def load(self, match_id: int) -> Checkpoint | None:
        """The last checkpoint with the log up to it and the journal after it; a match that has a journal from its
        first tick but no checkpoint yet has data None; with neither, None."""
        _, ckpt_key, log_key, journal_key, _ = self._keys(match_id)
        node = self._node(match_id)
        async with node.pipeline(transaction=True) as pipe:
            pipe.get(ckpt_key)
            pipe.lrange(journal_key, 0, -1)
            raw, journal = await pipe.execute()
        if raw is None:
            if journal and record_number(journal[0]) == 1:
                return Checkpoint(data=None, log=[], journal=journal)
            return None
        data = orjson.loads(raw)
        entries = await node.lrange(log_key, 0, data["log_len"] - 1) if data["log_len"] else []
        after = [record for record in journal if record_number(record) > data.get("jn", 0)]
        return Checkpoint(data=data, log=[orjson.loads(entry) for entry in entries], journal=after)

    async def release(self, match_id: int, owner: str, *, clear: bool) -> None:
        await self._release(keys=self._keys(match_id), args=[owner, "1" if clear else "0"], client=self._node(match_id))

    async def close(self) -> None:
        if self.journal is not None:
            await self.journal.close()
        for node in self._nodes:
            await node.aclose()
