"""The bot side of the load tool: a minimal WebSocket client on a bare asyncio.Protocol, one bot per connection.

A bench driver shares the two cores with the server it measures, so it has to be cheap: no task per bot, no frame
objects, no JSON parsing of snapshots (the ack is sliced out of the text), inputs pre-formatted. Client frames use
an all-zero mask (RFC 6455 requires a mask, not a random one, from the server's point of view), so masking is free.
It speaks docs/protocol.md: Origin header, `Authorization: Token`, subprotocol gs.v<1|2>.<json|msgpack>. With v2 it
follows the delta stream as far as its own ack needs (the acks array of keyframes, with each delta's patch of it
applied) and asks for a keyframe on a gap, as a real client must.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import random
import socket
import struct
import time
from array import array
from dataclasses import dataclass, field

import msgpack
import orjson

from games.engine import delta

TICK_PERIOD = 0.05
# Pacing (on unless --no-pace), as static/js/gsclient.js's InputPacer keeps its lead, quick to add and slow to take
# off: a snapshot that says the bot's seat ran dry (a negative count: the tick found none of its inputs waiting) moves
# its next input half a tick earlier (at most once per DRY_PAUSE_TICKS); PACE_AFTER_TICKS snapshots in a row with a
# spare input waiting (2 or more) move it half a tick later. Without it, a bot whose timer runs a hair faster than the
# server's ticks fills its input buffer to the bound (docs/protocol.md, "Inputs and ticks"), and its input latency is
# the buffer's, not the server's.
PACE_AFTER_TICKS = 60
DRY_PAUSE_TICKS = 5


@dataclass
class Window:
    """Monotonic times shared by every bot process (CLOCK_MONOTONIC is system-wide on Linux)."""

    start: float
    end: float


@dataclass
class BotStats:
    connected: bool = False
    connect_error: str = ""
    dropped: bool = False  # closed by the server or the network before the window ended
    close_code: int | None = None
    snapshots: int = 0  # received inside the window
    inputs: int = 0  # sent inside the window
    keyframes: int = 0  # v2: stream keyframes received at any time (the first one, and one after each gap)
    pace_shifts: int = 0  # times pacing moved this bot's inputs by half a tick (later or earlier)
    gaps: int = 0  # v2: deltas that did not fit what the bot held (each answered by a keyframe request)
    errors: int = 0  # {"type": "error"} messages received at any time
    error_codes: dict = field(default_factory=dict)  # their "error" field -> count
    latencies: array = field(default_factory=lambda: array("d"))  # ms, for inputs sent inside the window
    # This bot's TCP connection during the window, from the kernel (TCP_INFO): payload bytes both ways, and segments
    # both ways (pure ACKs included), for a wire count that other traffic on the loopback cannot inflate.
    tcp_payload_bytes: int = 0
    tcp_segments: int = 0
    spectator: bool = False  # welcomed without a seat: it only watches (--spectators)
    # ms between consecutive snapshots inside the window: a tick loop that something slows shows here, whatever the
    # bot's input phase (which input->ack latency depends on)
    intervals: array = field(default_factory=lambda: array("d"))


# struct tcp_info (linux/tcp.h): offsets of tcpi_bytes_received (u64), tcpi_segs_out and tcpi_segs_in (u32),
# tcpi_bytes_sent (u64, Linux 4.19+).
TCP_INFO_SIZE = 232
_BYTES_RECEIVED, _SEGS, _BYTES_SENT = 128, 136, 200


def tcp_counters(transport) -> tuple[int, int] | None:
    """(payload bytes sent + received, segments out + in) of a bot's connection so far; None when it is gone."""
    if transport is None or transport.is_closing():
        return None
    try:
        info = transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
    except OSError:
        return None
    if len(info) < _BYTES_SENT + 8:
        return None
    received = struct.unpack_from("Q", info, _BYTES_RECEIVED)[0]
    segs_out, segs_in = struct.unpack_from("II", info, _SEGS)
    sent = struct.unpack_from("Q", info, _BYTES_SENT)[0]
    return sent + received, segs_out + segs_in


def _is_match_end(message) -> bool:
    return type(message) is dict and message.get("type") == "match_end"


def _frame(payload: bytes, opcode: int) -> bytes:
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + b"\0\0\0\0" + payload


class Bot(asyncio.Protocol):
    """One player: handshake, then an input every tick at a random phase, and the ack of every snapshot."""

    def __init__(self, *, host: str, path: str, token: str, binary: bool, window: Window, fire: bool, rng: random.Random,
                 version: int = 1, pace: bool = True):
        self.host, self.path, self.token, self.binary, self.version = host, path, token, binary, version
        self.pace = pace
        self.waiting: list | None = None  # the last snapshot's `waiting` (inputs waiting per seat; absent: all 0)
        self.waiting_key: str | int = "waiting"  # v2 deltas' name for it (see acks_key)
        self.surplus_ticks = 0  # snapshots in a row that had 2 or more of our inputs waiting
        self.dry_ticks = 0  # snapshots since pacing last moved an input earlier
        self.shift = 0.0  # added once to the next input's time
        self.input_fields: tuple[str, ...] = ()  # v2, from the welcome: inputs as [seq, value, ...] in this order
        self.stream_n: int | None = None  # v2: the delta stream's number, and the acks array as of it
        self.acks_key: str | int = "acks"  # how deltas name it (msgpack: its number in the keyframe's key table)
        self.acks: list = []
        self.window = window
        self.fire = fire
        self.rng = rng
        self.stats = BotStats()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshaken = False
        self.seat: int | None = None
        self.seq = 0
        self.sent_at: dict[int, float] = {}  # seq -> monotonic send time, for inputs sent inside the window
        self.last_ack = 0
        self.last_snapshot_at: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.done = asyncio.get_running_loop().create_future()
        self.opened = asyncio.get_running_loop().create_future()
        self.loop = asyncio.get_running_loop()

    # --- connection -------------------------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        subprotocol = f"gs.v{self.version}.{'msgpack' if self.binary else 'json'}"
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1\r\n"
            f"Sec-WebSocket-Protocol: {subprotocol}\r\nAuthorization: Token {self.token}\r\n\r\n"
        )
        transport.write(request.encode())

    def connection_lost(self, exc) -> None:
        if self.timer:
            self.timer.cancel()
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during handshake: {exc}"))
        if time.monotonic() < self.window.end:
            self.stats.dropped = True
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.write(_frame(struct.pack("!H", 1000), 0x8))
            self.transport.close()

    # --- frames in ----------------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.handshaken:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace")))
                self.transport.close()
                return
            self.handshaken = True
            self.stats.connected = True
            self.opened.set_result(None)
        buf = self.buffer
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            n = buf[1] & 0x7F
            offset = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n = (buf[2] << 8) | buf[3]
                offset = 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n = int.from_bytes(buf[2:10], "big")
                offset = 10
            if len(buf) < offset + n:
                return
            payload = bytes(buf[offset : offset + n])
            del buf[: offset + n]
            if opcode in (1, 2):
                self.on_message(payload)
            elif opcode == 8:
                self.stats.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self.transport.close()
                return
            elif opcode == 9:
                self.transport.write(_frame(payload, 0xA))

    def on_message(self, payload: bytes) -> None:
        now = time.monotonic()
        if self.version >= 2:
            message = msgpack.unpackb(payload, strict_map_key=False) if self.binary else orjson.loads(payload)
            if type(message) is list:  # a delta: [n, patch(, events)]
                kind = "snapshot"  # counted as one: a player-tick either way
                ack = self.follow_delta(message[0], message[1])
            else:
                kind = message.get("type")
                ack = self.follow_keyframe(message) if kind == "snapshot" else None
                if kind == "welcome":
                    self.seat = message.get("seat")
                    self.input_fields = tuple(message.get("input_fields") or ())
        elif self.binary:
            message = msgpack.unpackb(payload)
            kind = message.get("type")
            ack = message["acks"][self.seat] if kind == "snapshot" and self.seat is not None else None
            if kind == "snapshot":
                self.waiting = message.get("waiting")
        else:
            if payload.startswith(b'{"type":"snapshot"'):
                kind = "snapshot"
                ack = None
                if self.seat is not None:
                    start = payload.index(b'"acks":[') + 8
                    acks = payload[start : payload.index(b"]", start)].split(b",")
                    ack = int(acks[self.seat])
                    start = payload.find(b'"waiting":[')
                    self.waiting = None if start < 0 else json.loads(payload[start + 10 : payload.index(b"]", start) + 1])
            else:
                kind = payload[9 : payload.index(b'"', 9)].decode()
                ack = None
                if kind == "welcome":
                    self.seat = json.loads(payload).get("seat")
        if kind == "snapshot":
            if self.window.start <= now < self.window.end:
                self.stats.snapshots += 1
                if self.last_snapshot_at is not None:
                    self.stats.intervals.append((now - self.last_snapshot_at) * 1000)
            self.last_snapshot_at = now
            if self.pace and self.seat is not None:
                self.pace_inputs()
            if ack is not None and ack != self.last_ack:
                self.last_ack = ack
                sent = self.sent_at.pop(ack, None)
                if sent is not None:
                    self.stats.latencies.append((now - sent) * 1000)
        elif kind == "welcome":
            if self.binary:
                self.seat = message.get("seat")
            if self.seat is None:
                self.stats.spectator = True
            else:
                self.start_inputs()
        elif kind == "error":
            self.stats.errors += 1
            code = (msgpack.unpackb(payload) if self.binary else json.loads(payload)).get("error", "?")
            self.stats.error_codes[code] = self.stats.error_codes.get(code, 0) + 1

    def follow_keyframe(self, message: dict) -> int | None:
        """v2: our ack in this snapshot (a keyframe when it has `n`; the join snapshot has none and is not part of the
        stream)."""
        if "n" in message:
            self.stream_n = message["n"]
            self.stats.keyframes += 1
            keys = message.get("keys")  # msgpack: deltas name keys by number in this table
            self.acks_key = keys.index("acks") if keys and "acks" in keys else "acks"
            self.waiting_key = keys.index("waiting") if keys and "waiting" in keys else "waiting"
        self.acks = message["acks"]
        self.waiting = message.get("waiting")
        return self.acks[self.seat] if self.seat is not None else None

    def follow_delta(self, n: int, patch: dict) -> int | None:
        """v2: our ack after delta `n` (None when it does not follow what we hold: a keyframe is asked for)."""
        if n - 1 != self.stream_n:
            if self.stream_n is not None:  # one request per gap: the keyframe comes within a tick
                self.stats.gaps += 1
                self.stream_n = None
                self.send_message({"type": "keyframe"})
            return None
        self.stream_n = n
        acks = patch.get(self.acks_key)
        if acks is not None:
            self.acks = delta.apply(self.acks, acks)
        waiting = patch.get(self.waiting_key)
        if waiting is not None:  # a patch of the list, a new list ([0, list]), or gone ([2]: all 0)
            try:
                self.waiting = None if waiting == delta.DELETE_MARK else delta.apply(self.waiting, waiting)
            except delta.PatchError:  # (only pacing reads it: the next keyframe brings it back)
                self.waiting = None
        return self.acks[self.seat] if self.seat is not None else None

    def pace_inputs(self) -> None:
        """After each snapshot: see PACE_AFTER_TICKS."""
        waiting = self.waiting[self.seat] if self.waiting and self.seat < len(self.waiting) else 0
        self.surplus_ticks = self.surplus_ticks + 1 if waiting >= 2 else 0
        self.dry_ticks += 1
        if waiting < 0 and self.dry_ticks >= DRY_PAUSE_TICKS:
            self.shift, self.dry_ticks, self.surplus_ticks = -TICK_PERIOD / 2, 0, 0
            self.stats.pace_shifts += 1
        elif self.surplus_ticks >= PACE_AFTER_TICKS:
            self.shift, self.surplus_ticks = TICK_PERIOD / 2, 0
            self.stats.pace_shifts += 1

    def send_message(self, message: dict) -> None:
        if self.transport is not None and not self.transport.is_closing():
            data = msgpack.packb(message) if self.binary else orjson.dumps(message)
            self.transport.write(_frame(data, 0x2 if self.binary else 0x1))

    # --- inputs out -----------------------------------------------------------------------------------------------

    def start_inputs(self) -> None:
        if self.timer is None:
            self.next_at = self.loop.time() + self.rng.random() * TICK_PERIOD
            self.timer = self.loop.call_at(self.next_at, self.send_input)

    def send_input(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.seq += 1
        angle = self.rng.random() * 2 * math.pi
        dx, dy = round(math.cos(angle), 3), round(math.sin(angle), 3)
        aim = max(-3.141, min(3.141, round(angle - math.pi, 3)))  # rounded, it must stay within [-pi, pi]
        fire = self.fire and self.seq % 10 == 0
        if self.input_fields:  # v2's compact input in the game's field order; floats as 32 bits in msgpack
            given = {"dx": dx, "dy": dy, "fire": fire, "aim": aim}
            values = [self.seq, *(given.get(field) for field in self.input_fields)]
            data = (_frame(msgpack.packb(values, use_single_float=True), 0x2) if self.binary
                    else _frame(orjson.dumps(values), 0x1))
        elif self.binary:
            data = _frame(
                msgpack.packb({"type": "input", "seq": self.seq, "input": {"dx": dx, "dy": dy, "fire": fire, "aim": aim}}),
                0x2,
            )
        else:
            flag = "true" if fire else "false"
            text = f'{{"type":"input","seq":{self.seq},"input":{{"dx":{dx},"dy":{dy},"fire":{flag},"aim":{aim}}}}}'
            data = _frame(text.encode(), 0x1)
        sent = time.monotonic()
        if self.window.start <= sent < self.window.end:
            self.stats.inputs += 1
            self.sent_at[self.seq] = sent
        self.transport.write(data)
        now = self.loop.time()  # the loop's clock schedules; time.monotonic() measures (uvloop's clock ticks in ms)
        self.next_at += TICK_PERIOD + self.shift
        self.shift = 0.0
        if self.next_at < now:  # this process fell behind: skip rather than burst
            self.next_at = now + TICK_PERIOD
        self.timer = self.loop.call_at(self.next_at, self.send_input)


async def run_bots(
    targets: list[tuple[str, int, int, str]], *, binary: bool, ramp: tuple[float, float], window: Window, fire: bool, seed: int,
    version: int = 1, pace: bool = True,
) -> list[BotStats]:
    """targets: (host, port, match_id, token) per bot. Connects them evenly over ramp=(start, end), keeps them
    playing until window.end, closes them all and returns their stats."""
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    bots: list[Bot] = []
    step = (ramp[1] - ramp[0]) / max(1, len(targets))

    async def open_one(i: int, host: str, port: int, match_id: int, token: str) -> None:
        await asyncio.sleep(max(0.0, ramp[0] + i * step - loop.time()))
        bot = Bot(host=f"{host}:{port}", path=f"/ws/matches/{match_id}/", token=token, binary=binary, window=window,
                  fire=fire, rng=random.Random(rng.random()), version=version, pace=pace)
        bots.append(bot)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: bot, host, port), 10)
            await asyncio.wait_for(bot.opened, 10)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported, none stops the run
            bot.stats.connect_error = f"{type(exc).__name__}: {exc}"[:200]
            if bot.transport:
                bot.transport.close()

    await asyncio.gather(*(open_one(i, *target) for i, target in enumerate(targets)))
    await asyncio.sleep(max(0.0, window.start - loop.time()))
    at_start = [tcp_counters(bot.transport) for bot in bots]
    await asyncio.sleep(max(0.0, window.end - loop.time()))
    for bot, before in zip(bots, at_start, strict=True):
        after = tcp_counters(bot.transport)
        if before is not None and after is not None:
            bot.stats.tcp_payload_bytes = after[0] - before[0]
            bot.stats.tcp_segments = after[1] - before[1]
    for bot in bots:
        bot.close()
    await asyncio.wait([asyncio.ensure_future(b.done) for b in bots if b.transport], timeout=3)
    return [bot.stats for bot in bots]


def bot_process(targets, binary, ramp, window, fire, seed, nice, conn, version=1, pace=True) -> None:
    """Entry point of one bot process (multiprocessing, spawn): runs its bots and sends back their stats."""
    if nice:
        os.nice(nice)
    try:  # the driver shares the cores with the server it measures: uvloop roughly halves its cost
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    stats = asyncio.run(run_bots(targets, binary=binary, ramp=ramp, window=window, fire=fire, seed=seed, version=version,
                                 pace=pace))
    conn.send(stats)
    conn.close()


# --- soak: matches that end and are replaced ------------------------------------------------------------------------


@dataclass
class SoakStats:
    """One bot process's counts over a whole soak (a bot plays many matches: counts, not per-bot numbers)."""

    matches_ended: int = 0  # groups whose match sent match_end and closed 4013
    sockets: int = 0  # connections opened
    connect_errors: int = 0
    close_codes: dict = field(default_factory=dict)  # close code (as text) -> count, for every socket
    errors: int = 0
    error_codes: dict = field(default_factory=dict)
    snapshots: int = 0
    latencies: array = field(default_factory=lambda: array("d"))


class SoakBot(Bot):
    """A Bot that plays one match to its end: after `leave_after` seconds of play (if set) it gives its seat up, so
    that a match of bots ends (last player standing) sooner than its time limit."""

    def __init__(self, *, leave_after: float | None, **kwargs):
        super().__init__(**kwargs)
        self.leave_after = leave_after
        self.ended = False  # match_end received

    def on_message(self, payload: bytes) -> None:
        if payload.startswith(b'{"type":"match_end"') or (self.binary and _is_match_end(msgpack.unpackb(payload, strict_map_key=False))):
            self.ended = True
            return
        first = self.seat is None
        super().on_message(payload)
        if first and self.seat is not None and self.leave_after is not None:
            self.loop.call_later(self.leave_after, self.send_leave)

    def send_leave(self) -> None:
        if self.timer:  # no inputs after leaving: the server would reject them (input_rejected)
            self.timer.cancel()
        if self.transport is not None and not self.transport.is_closing():
            message = {"type": "leave"}
            data = msgpack.packb(message) if self.binary else json.dumps(message).encode()
            self.transport.write(_frame(data, 0x2 if self.binary else 0x1))


async def run_soak_group(
    group: int, tokens: list[str], first_match: int, endpoints: list[tuple[str, int]], *, binary: bool, start_at: float,
    end_at: float, leave_after: float | None, next_match, stats: SoakStats, seed: int,
) -> None:
    """One match's worth of players, for the whole soak: play the match, ask for the next one, play it, ..."""
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    window = Window(start=start_at, end=end_at)
    match_id = first_match
    await asyncio.sleep(max(0.0, start_at - loop.time()))
    while loop.time() < end_at:
        host, port = endpoints[match_id % len(endpoints)]  # a stable hash of the path, as nginx's routing does
        bots = [
            SoakBot(leave_after=leave_after, host=f"{host}:{port}", path=f"/ws/matches/{match_id}/", token=token,
                    binary=binary, window=window, fire=True, rng=random.Random(rng.random()))
            for token in tokens
        ]

        async def open_one(bot: SoakBot, host: str = host, port: int = port) -> None:
            stats.sockets += 1
            try:
                await asyncio.wait_for(loop.create_connection(lambda: bot, host, port), 10)
                await asyncio.wait_for(bot.opened, 10)
            except Exception:  # noqa: BLE001 - counted; the others of the group play on
                stats.connect_errors += 1
                if bot.transport:
                    bot.transport.close()

        await asyncio.gather(*(open_one(bot) for bot in bots))
        pending = [asyncio.ensure_future(b.done) for b in bots if b.transport]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, end_at - loop.time()))
        for bot in bots:
            bot.close()
            code = str(bot.stats.close_code) if bot.done.done() else "open at the end"
            stats.close_codes[code] = stats.close_codes.get(code, 0) + 1
            stats.snapshots += bot.stats.snapshots
            stats.errors += bot.stats.errors
            for key, n in bot.stats.error_codes.items():
                stats.error_codes[key] = stats.error_codes.get(key, 0) + n
            stats.latencies.extend(bot.stats.latencies[::20])  # a sample: a soak makes millions
        if loop.time() >= end_at:
            break
        if any(bot.ended for bot in bots):
            stats.matches_ended += 1
        else:
            await asyncio.sleep(1.0)  # nothing came back: do not hammer a server that refuses us
        match_id = await next_match(group, end_at)
        if match_id is None:
            break


def soak_bot_process(groups, endpoints, binary, ramp, end_at, leave_after, seed, nice, conn) -> None:
    """Entry point of one soak bot process. groups: [(group, tokens, first match id)]. Asks the driver for each next
    match over `conn` (("next", group) -> ("match", group, match id)) and sends back its SoakStats at the end."""
    if nice:
        os.nice(nice)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass

    async def main() -> SoakStats:
        loop = asyncio.get_running_loop()
        waiting: dict[int, asyncio.Future] = {}

        def on_reply() -> None:
            while conn.poll():
                _, group, match_id = conn.recv()
                future = waiting.pop(group, None)
                if future is not None and not future.done():
                    future.set_result(match_id)

        loop.add_reader(conn.fileno(), on_reply)

        async def next_match(group: int, end_at: float) -> int | None:
            waiting[group] = loop.create_future()
            conn.send(("next", group))
            try:
                return await asyncio.wait_for(waiting[group], max(0.1, end_at - loop.time()))
            except TimeoutError:
                return None

        stats = SoakStats()
        step = (ramp[1] - ramp[0]) / max(1, len(groups))
        tasks = [
            run_soak_group(group, tokens, first, endpoints, binary=binary, start_at=ramp[0] + i * step, end_at=end_at,
                           leave_after=leave_after, next_match=next_match, stats=stats, seed=seed * 100_000 + group)
            for i, (group, tokens, first) in enumerate(groups)
        ]
        await asyncio.gather(*tasks)
        loop.remove_reader(conn.fileno())
        return stats

    stats = asyncio.run(main())
    # The event loop's add_reader left the pipe non-blocking: the stats (every latency) fill it, and a non-blocking
    # send would fail half-way (EAGAIN) while the driver is still reading.
    os.set_blocking(conn.fileno(), True)
    conn.send(("stats", stats))
    conn.close()
