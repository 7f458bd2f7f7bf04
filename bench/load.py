"""Load tool: N bot players in real matches against real server processes on 127.0.0.1, with a timed window.

    .venv/bin/python -m bench.load --bots 1000                      # one daphne, embedded defaults (SQLite, no Redis)
    .venv/bin/python -m bench.load --bots 1000 --servers 2 --redis redis://127.0.0.1:6379/2
    .venv/bin/python -m bench.load --bots 1000 --server uvicorn

It makes its own throwaway database (or uses --database-url), bulk-creates users, tokens and matches of --players
seats, starts --servers processes on free loopback ports, and connects the bots from --bot-procs processes over a
ramp. Each bot sends an input every tick and times input seq k -> the first snapshot whose acks[seat] is k. During
the window it samples /proc for the servers' CPU and RSS (and Redis' and the bots' own) and the bytes carried by the
loopback interface (wire bytes per player-tick, as ../shared/peers/bench.py counts them), then stops everything it
started, by pid, prints a table and appends one JSON line to --out. `--attach URL --pid P` measures a server that is
already running instead (the database of this shell's DATABASE_URL/DATA_DIR must be that server's).
docs/benchmarks.md ("Match capacity") has results and the exact commands.
"""

from __future__ import annotations

import argparse
import ast
import collections
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
BOT_PASSWORD = "!"  # unusable: bots only ever authenticate with their token


# --- preparing the database (runs in a child process with the servers' environment) ------------------------------


def prepare(bots: int, game: str, players: int, prefix: str, spectators: int = 0) -> list[dict]:
    """Users <prefix>0..N-1 with fresh tokens, in matches of `players` seats: bot i is seat i % players; then
    `spectators` more users per match (<prefix>s0...), entries with "spectator": true, who watch it."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gameserver.settings")
    import django

    django.setup()
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from games import services
    from gameserver.accounts.models import User

    names = [f"{prefix}{i}" for i in range(bots)]
    watchers = [f"{prefix}s{i}" for i in range(spectators * -(-bots // players))]
    names += watchers
    with transaction.atomic():
        User.objects.bulk_create([User(username=name, password=BOT_PASSWORD) for name in names], ignore_conflicts=True, batch_size=500)
        by_name = {u.username: u for u in User.objects.filter(username__in=names)}
        users = [by_name[name] for name in names]
        Token.objects.filter(user__in=users).delete()
        tokens = Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users], batch_size=500)
        out = []
        for k, start in enumerate(range(0, bots, players)):
            group = users[start : start + players]
            match = services.match_create(game=game, users=group, source="bench")
            out.extend({"match": match.pk, "token": t.key, "user": u.pk} for u, t in zip(group, tokens[start : start + len(group)], strict=True))
            first = bots + k * spectators
            out.extend({"match": match.pk, "token": t.key, "user": u.pk, "spectator": True}
                       for u, t in zip(users[first : first + spectators], tokens[first : first + spectators], strict=True))
    return out


def factory_main() -> None:
    """The soak's match factory (a child process with the servers' environment): for each line of JSON
    {"game": ..., "users": [ids in seat order]} on stdin, create the match as the matchmaker would (no invitations)
    and print its id."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gameserver.settings")
    import django

    django.setup()
    from django.db import close_old_connections

    from games import services
    from gameserver.accounts.models import User

    for line in sys.stdin:
        request = json.loads(line)
        by_id = User.objects.in_bulk(request["users"])
        match = services.match_create(game=request["game"], users=[by_id[pk] for pk in request["users"]], source="bench")
        print(match.pk, flush=True)
        close_old_connections()


def _prepare_in_child(env: dict[str, str], bots: int, game: str, players: int, prefix: str, spectators: int = 0) -> list[dict]:
    code = "import json, sys; from bench.load import prepare; print(json.dumps(prepare(*json.loads(sys.argv[1]))))"
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps([bots, game, players, prefix, spectators])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    if result.returncode:
        raise SystemExit(f"preparing the bots failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- servers -------------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A free loopback port (the tests' server helpers use this too: tests/procs.py)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def callgrind_argv(argv: list[str], kind: str, folder: Path) -> list[str]:
    """The server under valgrind's callgrind, which runs it some 50 times slower: daphne gets more time for a handshake
    than its 5 s (the first connects run Django's lazy imports at that speed)."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind.startswith("daphne"):
        argv = [*argv[:-1], "--websocket_connect_timeout", "120", argv[-1]]
    return ["valgrind", "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={folder}/callgrind.out.%p", *argv]


def callgrind_window_instructions(folder: Path, pid: int) -> int:
    """Instructions of the dump made at the window's end (callgrind_control --dump after --zero at its start)."""
    for path in sorted(folder.glob(f"callgrind.out.{pid}.*")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"no callgrind dump of process {pid} in {folder}")


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


UVICORN_WS = "deploy.uvicorn_ws:WebSocketProtocol"


def server_argv(kind: str, port: int) -> list[str]:
    if kind == "daphne":  # with direct match sockets, as scripts/run and the Procfile run it
        return [sys.executable, "-m", "deploy.daphne_ws", "-b", "127.0.0.1", "-p", str(port), "gameserver.asgi:application"]
    if kind == "daphne-asgi":  # stock daphne: every frame through autobahn and the ASGI queue
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "gameserver.asgi:application"]
    if kind == "uvicorn":
        # websockets-sansio: the same protocol code as the `websockets` package, without its legacy layer.
        return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--ws", UVICORN_WS,
                "--ws-per-message-deflate", "false", "--lifespan", "off", "--no-access-log", "--log-level", "warning",
                "gameserver.asgi:application"]
    raise SystemExit(f"unknown server kind {kind!r}")


# --- /proc -----------------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of pid and its waited-for children."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of pid and its waited-for children: system time is the kernel's work for the
    process (its socket reads and writes, and on loopback much of the TCP work for the other end too)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0
    return (int(fields[11]) + int(fields[13])) / CLK_TCK, (int(fields[12]) + int(fields[14])) / CLK_TCK


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def busy_seconds() -> float:
    """Whole-machine busy CPU seconds (everything but idle and iowait)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK


def wait_for_quiet(limit_s: float, threshold: float = 0.25) -> float:
    """The box may be shared: wait (bounded) for a second in which the rest of it uses under `threshold` cores."""
    deadline = time.monotonic() + limit_s
    while True:
        before = busy_seconds()
        time.sleep(1.0)
        busy = busy_seconds() - before
        if busy < threshold or time.monotonic() >= deadline:
            return round(busy, 2)


def redis_pid(url: str) -> int | None:
    try:
        import redis

        return int(redis.Redis.from_url(url, socket_timeout=2).info("server")["process_id"])
    except Exception:  # noqa: BLE001 - Redis' own CPU is a nice-to-have column
        return None


# --- the run ---------------------------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    server: str
    servers: int
    routing: str
    encoding: str
    protocol: int  # 2: snapshots as deltas
    bots: int
    players: int
    connected: int
    connect_failed: int
    dropped: int
    errors: int
    snapshots_per_bot_s: float
    snapshots_per_bot_s_p1: float  # the slowest 1% of bots
    inputs_per_bot_s: float
    tick_rate: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    samples: int
    server_cores: float
    server_cores_each: list[float]
    server_system_cores: float  # the part of server_cores spent in the kernel
    server_rss_mb: float
    redis_cores: float | None
    driver_cores: float
    other_cores: float
    cpu_us_per_player_tick: float  # server CPU per snapshot delivered: capacity that contention cannot hide
    # Loopback bytes during the window (both directions, TCP/IP headers included, each byte counted once: lo's
    # received bytes) per snapshot delivered. Everything on lo counts: with --redis, the relay and store traffic too.
    wire_bytes_per_player_tick: float
    # The same from the bots' own connections (TCP_INFO payload bytes, plus LOOPBACK_PACKET_OVERHEAD per segment):
    # what the loopback count would be without any other traffic on the machine (other tests, Redis, databases).
    socket_bytes_per_player_tick: float
    tcp_payload_per_player_tick: float  # its parts: WebSocket bytes both ways, and TCP segments both ways (ACKs too)
    tcp_segments_per_player_tick: float
    keyframes: int  # v2: stream keyframes the bots got (one each at the start, then one per gap)
    paced: bool  # bots paced their inputs by the snapshots' `waiting` (bench/wsbot.py, PACE_AFTER_TICKS)
    pace_shifts: int  # times a bot moved its inputs by half a tick for that
    gaps: int  # v2: deltas that did not fit (each made its bot ask for a keyframe)
    window_s: float
    ramp_s: float
    nice: int
    machine: str
    when: str
    connect_errors: list[str]
    error_codes: dict[str, int]
    close_codes_of_dropped: dict[str, int]
    # --spectators: sockets watching the bots' matches (not counted above: the players' numbers are the players')
    spectators: int = 0
    spectators_dropped: int = 0
    spectator_snapshots_per_s: float | None = None
    # The players' time between consecutive snapshots (ms): 50 at 20 Hz when nothing delays the tick or its sending
    interval_p99_ms: float | None = None
    interval_max_ms: float | None = None
    # --callgrind: the first server's instructions during the window per snapshot it delivered (valgrind counts
    # instructions, not seconds: the same for the same work whatever else the machine does)
    instructions_per_player_tick: int | None = None


# What the loopback interface counts per TCP segment besides its payload: IPv4 (20) and TCP with the timestamp option
# Linux sends by default (32). Not the Ethernet header: loopback_xmit() takes it off (eth_type_trans) before it counts.
# Checked: 5 x 20,000 segments of a ping-pong on this machine counted 57.6-58.7 bytes each beyond their payload on lo,
# the rest being other traffic of the box in the same half second.
LOOPBACK_PACKET_OVERHEAD = 20 + 32


def loopback_bytes() -> int:
    """Bytes through the loopback interface so far (each byte sent on lo is received on lo once)."""
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[0])
    return 0


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def run(args: argparse.Namespace) -> Result:
    from bench.wsbot import Window, bot_process

    tmp = Path(tempfile.mkdtemp(prefix="gs-load-"))
    prefix = f"b{uuid.uuid4().hex[:6]}"
    env = dict(os.environ)
    env.update({"DATA_DIR": str(tmp), "LOG_LEVEL": "WARNING", "CHANNEL_PREFIX": prefix, "ENGINE_PREFIX": prefix})
    # Every bot connects from 127.0.0.1: the per-address socket limit (docs/security.md) would stop them at 64.
    env["WS_MAX_CONNECTIONS_PER_ADDRESS"] = "0"
    if args.callgrind:
        env["MATCH_JOIN_TIMEOUT_SECONDS"] = "600"  # the matches are made before a server that takes a minute to start
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    elif not args.attach:
        env.pop("DATABASE_URL", None)
    if args.redis:
        env["REDIS_URL"] = args.redis
    elif not args.attach:
        env.pop("REDIS_URL", None)

    started: list[subprocess.Popen] = []
    bot_procs: list[multiprocessing.Process] = []
    try:
        if args.attach:
            parts = urlsplit(args.attach)
            endpoints = [(parts.hostname, parts.port or 80)]
            server_pids = args.pid
        else:
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                           capture_output=True, timeout=300)
        plan = _prepare_in_child(env, args.bots, args.game, args.players, f"loadbot-{prefix}-" if args.attach else "bot",
                                 args.spectators)
        if not args.attach:
            endpoints = []
            for i in range(args.servers):
                port = free_port()
                log = open(tmp / f"server-{i}.log", "ab")
                argv = server_argv(args.server, port)
                if args.callgrind and i == 0:
                    argv = callgrind_argv(argv, args.server, Path(args.callgrind))
                proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        preexec_fn=(lambda: os.nice(args.nice)) if args.nice else None)
                started.append(proc)
                endpoints.append(("127.0.0.1", port))
            for proc, (_, port) in zip(started, endpoints, strict=True):
                wait_for_port(port, proc, timeout=300.0 if args.callgrind else 30.0)
            server_pids = [p.pid for p in started]
        for host, _ in endpoints:
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise SystemExit("the load tool only targets loopback addresses")

        matches = sorted({bot["match"] for bot in plan})
        match_index = {m: i for i, m in enumerate(matches)}
        targets = []
        for i, bot in enumerate(plan):
            k = match_index[bot["match"]] if args.routing == "match" else i
            host, port = endpoints[k % len(endpoints)]
            targets.append((host, port, bot["match"], bot["token"]))

        ramp_s = args.ramp if args.ramp is not None else 2 + args.bots / 250
        t0 = time.monotonic() + 1.5  # bot processes need a moment to import
        ramp = (t0, t0 + ramp_s)
        window = Window(start=ramp[1] + args.settle, end=ramp[1] + args.settle + args.window)
        ctx = multiprocessing.get_context("spawn")
        pipes = []
        procs_n = max(1, min(args.bot_procs, len(targets)))
        for k in range(procs_n):
            receiver, sender = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=bot_process, args=(targets[k::procs_n], args.encoding == "msgpack", ramp, window,
                                                         args.fire, args.seed + k, args.nice, sender, args.protocol,
                                                         not args.no_pace), daemon=True)
            proc.start()
            sender.close()
            bot_procs.append(proc)
            pipes.append(receiver)

        rpid = redis_pid(args.redis) if args.redis else None
        time.sleep(max(0.0, window.start - time.monotonic()))
        if args.callgrind:
            subprocess.run(["callgrind_control", "--zero", str(server_pids[0])], capture_output=True, check=True, timeout=120)
        if args.profile:
            # Sampling costs CPU on the same cores: use profile runs to find the time, not to measure capacity.
            started.append(subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server_pids[0]), "--duration",
                 str(int(args.window)), "--rate", "50", "--idle", "--threads", "--nonblocking", "--format", "raw", "-o", args.profile],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        server_before = [cpu_split(p) for p in server_pids]  # (user, system) each
        before = ([sum(split) for split in server_before], [cpu_seconds(p.pid) for p in bot_procs],
                  cpu_seconds(rpid) if rpid else 0.0, busy_seconds(), time.monotonic(), loopback_bytes())
        time.sleep(max(0.0, window.end - time.monotonic()))
        server_after = [cpu_split(p) for p in server_pids]
        after = ([sum(split) for split in server_after], [cpu_seconds(p.pid) for p in bot_procs],
                 cpu_seconds(rpid) if rpid else 0.0, busy_seconds(), time.monotonic(), loopback_bytes())
        system_seconds = sum(a[1] - b[1] for a, b in zip(server_after, server_before, strict=True))
        rss = sum(rss_mb(p) for p in server_pids)
        if args.callgrind:
            subprocess.run(["callgrind_control", "--dump=window", str(server_pids[0])], capture_output=True, check=True,
                           timeout=120)

        stats = []
        deadline = window.end + 20
        for receiver in pipes:
            if receiver.poll(max(0.1, deadline - time.monotonic())):
                stats.extend(receiver.recv())
        for proc in bot_procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        _kill_all(bot_procs, started)

    elapsed = after[4] - before[4]
    server_each = [(a - b) / elapsed for a, b in zip(after[0], before[0], strict=True)]
    server_cores = sum(server_each)
    driver_cores = sum(a - b for a, b in zip(after[1], before[1], strict=True)) / elapsed
    redis_cores = (after[2] - before[2]) / elapsed if rpid else None
    other = (after[3] - before[3]) / elapsed - server_cores - driver_cores - (redis_cores or 0.0)

    watching = [s for s in stats if s.connected and s.spectator]
    stats = [s for s in stats if not s.spectator]  # everything below is the players'
    connected = [s for s in stats if s.connected]
    rates = sorted(s.snapshots / args.window for s in connected)
    latencies = sorted(x for s in connected for x in s.latencies)
    intervals = sorted(x for s in connected for x in s.intervals)
    settings_tick = 20 if args.game == "arena" else 30
    return Result(
        label=args.label or f"{args.server} x{args.servers}" + (" + redis" if args.redis else ""),
        server=args.server if not args.attach else "attached",
        servers=len(server_pids),
        routing=args.routing,
        encoding=args.encoding,
        protocol=args.protocol,
        bots=args.bots,
        players=args.players,
        connected=len(connected),
        connect_failed=args.bots - len(connected),
        dropped=sum(1 for s in connected if s.dropped),
        errors=sum(s.errors for s in stats),
        snapshots_per_bot_s=round(statistics.fmean(rates), 2) if rates else 0.0,
        snapshots_per_bot_s_p1=round(percentile(rates, 1), 2) if rates else 0.0,
        inputs_per_bot_s=round(sum(s.inputs for s in connected) / max(1, len(connected)) / args.window, 2),
        tick_rate=settings_tick,
        p50_ms=round(percentile(latencies, 50), 1),
        p95_ms=round(percentile(latencies, 95), 1),
        p99_ms=round(percentile(latencies, 99), 1),
        samples=len(latencies),
        server_cores=round(server_cores, 3),
        server_cores_each=[round(c, 3) for c in server_each],
        server_system_cores=round(system_seconds / elapsed, 3),
        server_rss_mb=round(rss, 1),
        redis_cores=round(redis_cores, 3) if redis_cores is not None else None,
        driver_cores=round(driver_cores, 3),
        other_cores=round(other, 3),
        cpu_us_per_player_tick=round(server_cores * 1e6 / max(1e-9, sum(rates)), 1) if rates else 0.0,
        wire_bytes_per_player_tick=round((after[5] - before[5]) / max(1, sum(s.snapshots for s in connected)), 1),
        socket_bytes_per_player_tick=round(
            sum(s.tcp_payload_bytes + LOOPBACK_PACKET_OVERHEAD * s.tcp_segments for s in connected)
            / max(1, sum(s.snapshots for s in connected)), 1),
        tcp_payload_per_player_tick=round(sum(s.tcp_payload_bytes for s in connected) / max(1, sum(s.snapshots for s in connected)), 1),
        tcp_segments_per_player_tick=round(sum(s.tcp_segments for s in connected) / max(1, sum(s.snapshots for s in connected)), 2),
        keyframes=sum(s.keyframes for s in connected),
        paced=not args.no_pace,
        pace_shifts=sum(s.pace_shifts for s in connected),
        gaps=sum(s.gaps for s in connected),
        window_s=args.window,
        ramp_s=ramp_s,
        nice=args.nice,
        machine=f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}",
        when=time.strftime("%Y-%m-%dT%H:%M:%S"),
        connect_errors=sorted({s.connect_error for s in stats if s.connect_error})[:5],
        error_codes=dict(sum((collections.Counter(s.error_codes) for s in stats), collections.Counter())),
        close_codes_of_dropped=dict(collections.Counter(str(s.close_code) for s in connected if s.dropped)),
        interval_p99_ms=round(percentile(intervals, 99), 1) if intervals else None,
        interval_max_ms=round(intervals[-1], 1) if intervals else None,
        spectators=len(watching),
        spectators_dropped=sum(1 for s in watching if s.dropped),
        spectator_snapshots_per_s=round(statistics.fmean(s.snapshots / args.window for s in watching), 2) if watching else None,
        instructions_per_player_tick=(
            round(callgrind_window_instructions(Path(args.callgrind), server_pids[0]) / max(1, sum(s.snapshots for s in connected)))
            if args.callgrind else None
        ),
    )


def exit_on_terminate() -> None:
    """SIGTERM and SIGHUP (a `timeout`, a closed terminal, bench/side_by_side.py stopping this tool) end the run
    through the `finally` that stops what it started. By default they end the process at once, and a server it
    started ran on, idle, until someone found it (bench/side_by_side.py calls this too)."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)


def _kill_all(bot_procs, servers) -> None:
    """Stops the bots' processes and the servers this run started (by pid), whatever state they are in."""
    for proc in bot_procs:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
    for proc in servers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


# --- soak: matches that end and are replaced, sampled over time ---------------------------------------------------

# "<logger> <pid>[ match=<id>][ user=<id>] match <id> finished (...)": the log context (gameserver/logs.py) may come first.
FINISHED_LINE = re.compile(r" \S+ (\d+)(?: \w+=\S+)* match (\d+) finished \(([^)]*)\); recorded here: (\w+); (\{.*\})$")


def _socket_inodes(pid: int) -> tuple[int, set[str]]:
    """(open file descriptors, inodes of the sockets among them) of a process."""
    inodes, count = set(), 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            count += 1
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except FileNotFoundError:
        pass
    return count, inodes


def _tcp_table() -> dict[str, tuple[int, int, str]]:
    """inode -> (local port, remote port, state) of every TCP socket of the machine (IPv4 and IPv6)."""
    table = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    table[parts[9]] = (int(parts[1].rsplit(":", 1)[1], 16), int(parts[2].rsplit(":", 1)[1], 16), parts[3])
        except FileNotFoundError:
            pass
    return table


def _proc_field(pid: int, name: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


@dataclass
class ServerSample:
    pid: int
    rss_mb: float
    fds: int
    threads: int
    player_sockets: int  # established TCP connections on its listening port
    redis_conns: int  # its TCP connections to Redis' port
    db_conns: int  # PostgreSQL: its TCP connections to 5432; SQLite: open descriptors of the database files
    # CPU time it used since the previous sample, per second of that interval. With a steady population of bots this
    # is the work per tick, whatever else the machine runs: the measure of drift that other load cannot fake.
    cores: float


class Sampler:
    """Reads, per server process, what a long run must keep flat: memory, descriptors, connections; and the tick
    stats that each finished match logs (games/engine/runner.py: "match N finished ...")."""

    def __init__(self, pids: list[int], ports: list[int], logs: list[Path], *, redis_url: str, prefix: str,
                 database_url: str, data_dir: Path, match_round: dict[int, int]):
        self.pids, self.ports, self.logs = pids, ports, logs
        self.offsets = [0] * len(logs)
        self.prefix = prefix
        self.data_dir = data_dir
        self.match_round = match_round
        self.redis = None
        self.redis_port = urlsplit(redis_url).port or 6379 if redis_url else None
        if redis_url:
            import redis

            self.redis = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.db_port = (urlsplit(database_url).port or 5432) if database_url.startswith("postgres") else None
        self.finished: list[dict] = []  # every finished match's stats, with when it was seen and its round
        self.log_errors = 0
        self.t0 = time.monotonic()
        self._cpu = {pid: (cpu_seconds(pid), self.t0) for pid in pids}

    def _read_logs(self) -> list[dict]:
        new = []
        for i, path in enumerate(self.logs):
            with path.open("rb") as f:
                f.seek(self.offsets[i])
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1
            self.offsets[i] += end
            for raw in chunk[:end].decode(errors="replace").splitlines():
                if " ERROR " in raw or raw.startswith("Traceback"):
                    self.log_errors += 1
                found = FINISHED_LINE.search(raw)
                if found:
                    stats = ast.literal_eval(found.group(5))
                    mid = int(found.group(2))
                    stats.update(match=mid, server=i, reason=found.group(3), recorded=found.group(4) == "True",
                                 round=self.match_round.get(mid), t=round(time.monotonic() - self.t0, 1))
                    new.append(stats)
        self.finished.extend(new)
        return new

    def sample(self) -> dict:
        tcp = _tcp_table()
        servers = []
        for pid, port in zip(self.pids, self.ports, strict=True):
            fds, inodes = _socket_inodes(pid)
            mine = [tcp[i] for i in inodes if i in tcp]
            if self.db_port:
                db = sum(1 for _, remote, _ in mine if remote == self.db_port)
            else:
                db = 0
                with contextlib.suppress(FileNotFoundError):
                    for fd in os.listdir(f"/proc/{pid}/fd"):
                        with contextlib.suppress(OSError):
                            db += os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(self.data_dir / "db.sqlite3"))
            cpu, at = cpu_seconds(pid), time.monotonic()
            cpu_before, at_before = self._cpu[pid]
            self._cpu[pid] = (cpu, at)
            servers.append(ServerSample(
                pid=pid, rss_mb=round(rss_mb(pid), 1), fds=fds, threads=_proc_field(pid, "Threads"),
                player_sockets=sum(1 for local, _, state in mine if local == port and state == "01"),
                redis_conns=sum(1 for _, remote, _ in mine if remote == self.redis_port),
                db_conns=db,
                cores=round((cpu - cpu_before) / max(1e-9, at - at_before), 3),
            ))
        redis_keys = redis_clients = None
        if self.redis is not None:
            redis_keys = sum(1 for _ in self.redis.scan_iter(match=f"{self.prefix}*", count=1000))
            redis_clients = self.redis.info("clients")["connected_clients"]
        new = self._read_logs()
        late = [m["late_ticks"] for m in new]
        return {
            "t": round(time.monotonic() - self.t0),
            "load1": round(os.getloadavg()[0], 2),
            "servers": [asdict(x) for x in servers],
            "redis_keys": redis_keys,
            "redis_clients_all": redis_clients,
            "finished": len(new),
            "late_per_match": round(statistics.fmean(late), 1) if late else None,
            "skipped_per_match": round(statistics.fmean(m["skipped"] for m in new), 2) if new else None,
            "max_lateness_ms": max((m["max_lateness_ms"] for m in new), default=None),
            "mean_step_ms": round(statistics.fmean(m["mean_step_ms"] for m in new), 3) if new else None,
            "log_errors": self.log_errors,
        }


SOAK_COLUMNS = [
    ("t", "t s"), ("load1", "load"), ("cores", "server cores"), ("rss", "RSS MB"), ("fds", "fds"), ("threads", "threads"),
    ("player_sockets", "sockets"), ("redis_conns", "redis conns"), ("db_conns", "db conns"), ("redis_keys", "redis keys"),
    ("finished", "finished"), ("late_per_match", "late/match"), ("skipped_per_match", "skips/match"),
    ("max_lateness_ms", "max late ms"), ("mean_step_ms", "step ms"), ("log_errors", "log errors"),
]


def soak_rows(samples: list[dict]) -> list[list[str]]:
    rows = []
    for sample in samples:
        per = {k: "/".join(str(s.get(k, "")) for s in sample["servers"]) for k in ("fds", "threads", "player_sockets", "redis_conns", "db_conns", "cores")}
        per["rss"] = "/".join(str(round(s["rss_mb"])) for s in sample["servers"])
        rows.append(["" if (v := {**sample, **per}.get(k)) is None else str(v) for k, _ in SOAK_COLUMNS])
    return rows


def soak_table(samples: list[dict]) -> str:
    rows = [[h for _, h in SOAK_COLUMNS]] + soak_rows(samples)
    widths = [max(len(row[i]) for row in rows) for i in range(len(SOAK_COLUMNS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def per_round(finished: list[dict]) -> list[dict]:
    """Finished matches grouped by round (a group's first match is round 1, its next one round 2, ...)."""
    rounds = collections.defaultdict(list)
    for m in finished:
        if m.get("round"):
            rounds[m["round"]].append(m)
    return [
        {"round": r, "matches": len(ms), "late_per_match": round(statistics.fmean(m["late_ticks"] for m in ms), 1),
         "skipped_per_match": round(statistics.fmean(m["skipped"] for m in ms), 2),
         "max_lateness_ms": max(m["max_lateness_ms"] for m in ms), "mean_step_ms": round(statistics.fmean(m["mean_step_ms"] for m in ms), 3)}
        for r, ms in sorted(rounds.items())
    ]


def soak(args: argparse.Namespace) -> dict:
    """Bots play matches that end (time limit, or everyone leaving after --match-seconds) and are replaced by new
    ones until --soak seconds have passed; every --sample-every seconds a row of the time series."""
    from bench.wsbot import soak_bot_process

    tmp = Path(tempfile.mkdtemp(prefix="gs-soak-"))
    prefix = f"b{uuid.uuid4().hex[:6]}"
    env = dict(os.environ)
    # INFO: the runner logs each finished match's tick stats, which the sampler reads.
    env.update({"DATA_DIR": str(tmp), "LOG_LEVEL": "INFO", "CHANNEL_PREFIX": prefix, "ENGINE_PREFIX": prefix})
    env["WS_MAX_CONNECTIONS_PER_ADDRESS"] = "0"
    env["WS_MAX_CONNECTIONS_PER_USER"] = "0"
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    else:
        env.pop("DATABASE_URL", None)
    if args.redis:
        env["REDIS_URL"] = args.redis
    else:
        env.pop("REDIS_URL", None)
    started: list[subprocess.Popen] = []
    bot_procs: list[multiprocessing.Process] = []
    samples: list[dict] = []
    match_round: dict[int, int] = {}
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=300)
        plan = _prepare_in_child(env, args.bots, args.game, args.players, "bot")
        factory = subprocess.Popen([sys.executable, "-c", "from bench.load import factory_main; factory_main()"],
                                   cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(factory)
        endpoints, logs = [], []
        for i in range(args.servers):
            port = free_port()
            logs.append(tmp / f"server-{i}.log")
            proc = subprocess.Popen(server_argv(args.server, port), cwd=ROOT, env=env, stdout=logs[-1].open("ab"),
                                    stderr=subprocess.STDOUT, preexec_fn=(lambda: os.nice(args.nice)) if args.nice else None)
            started.append(proc)
            endpoints.append(("127.0.0.1", port))
        for proc, (_, port) in zip(started[1:], endpoints, strict=True):
            wait_for_port(port, proc)
        server_pids = [p.pid for p in started[1:]]

        groups = []  # (group, tokens, first match)
        users = {}
        for g, start in enumerate(range(0, len(plan), args.players)):
            seats = plan[start : start + args.players]
            groups.append((g, [b["token"] for b in seats], seats[0]["match"]))
            users[g] = [b["user"] for b in seats]
            match_round[seats[0]["match"]] = 1
        played = collections.Counter()
        ramp_s = args.ramp if args.ramp is not None else 2 + args.bots / 250
        t0 = time.monotonic() + 1.5
        end_at = t0 + args.soak
        ctx = multiprocessing.get_context("spawn")
        pipes = {}
        procs_n = max(1, min(args.bot_procs, len(groups)))
        for k in range(procs_n):
            mine, theirs = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=soak_bot_process, args=(groups[k::procs_n], endpoints, args.encoding == "msgpack",
                                                              (t0, t0 + ramp_s), end_at, args.match_seconds, args.seed + k,
                                                              args.nice, theirs), daemon=True)
            proc.start()
            theirs.close()
            bot_procs.append(proc)
            pipes[mine] = proc
        sampler = Sampler(server_pids, [p for _, p in endpoints], logs, redis_url=args.redis, prefix=prefix,
                          database_url=args.database_url, data_dir=tmp, match_round=match_round)
        sampler.t0 = t0
        if args.profile:
            started.append(subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server_pids[0]), "--duration",
                 str(int(args.soak)), "--rate", "20", "--nonblocking", "--format", "raw", "-o", args.profile],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        print(soak_table([]).splitlines()[0], flush=True)
        next_sample = t0 + args.sample_every
        bot_stats = []
        live = set(pipes)
        while live:
            now = time.monotonic()
            if now >= next_sample:
                samples.append(sampler.sample())
                print(soak_rows(samples[-1:]) and "  ".join(soak_rows(samples[-1:])[0]), flush=True)
                next_sample += args.sample_every
            if now > end_at + 30:
                break
            for conn in multiprocessing.connection.wait(list(live), timeout=max(0.05, min(1.0, next_sample - now))):
                try:
                    message = conn.recv()
                except (EOFError, OSError):  # a bot process that died, or whose last message was cut
                    live.discard(conn)
                    continue
                if message[0] == "stats":
                    bot_stats.append(message[1])
                    live.discard(conn)
                    continue
                group = message[1]
                factory.stdin.write(json.dumps({"game": args.game, "users": users[group]}) + "\n")
                factory.stdin.flush()
                match_id = int(factory.stdout.readline())
                played[group] += 1
                match_round[match_id] = played[group] + 1
                conn.send(("match", group, match_id))
        time.sleep(2)  # the last matches' log lines
        samples.append(sampler.sample())
    finally:
        _kill_all(bot_procs, started)

    latencies = sorted(x for s in bot_stats for x in s.latencies)
    close_codes = sum((collections.Counter(s.close_codes) for s in bot_stats), collections.Counter())
    return {
        "label": args.label or f"soak {args.server} x{args.servers}" + (" + redis" if args.redis else ""),
        "soak_s": args.soak, "bots": args.bots, "players": args.players, "game": args.game, "servers": args.servers,
        "database": "postgresql" if args.database_url.startswith("postgres") else "sqlite",
        "match_seconds": args.match_seconds, "sample_every_s": args.sample_every,
        "matches_ended": sum(s.matches_ended for s in bot_stats),
        "sockets_opened": sum(s.sockets for s in bot_stats),
        "connect_errors": sum(s.connect_errors for s in bot_stats),
        "close_codes": dict(close_codes),
        "error_codes": dict(sum((collections.Counter(s.error_codes) for s in bot_stats), collections.Counter())),
        "p50_ms": round(percentile(latencies, 50), 1), "p99_ms": round(percentile(latencies, 99), 1),
        "samples": samples,
        "rounds": per_round(sampler.finished),
        "finished_matches": sampler.finished,
        "server_logs": [str(p) for p in logs],
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


COLUMNS = [
    ("label", "setup"), ("protocol", "v"), ("encoding", "enc"), ("bots", "N"), ("connected", "ok"), ("connect_failed", "failed"), ("dropped", "dropped"),
    ("errors", "errors"), ("snapshots_per_bot_s", "snap/bot/s"), ("snapshots_per_bot_s_p1", "slowest 1%"),
    ("inputs_per_bot_s", "in/bot/s"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"),
    ("server_cores", "server cores"), ("server_system_cores", "of which kernel"), ("server_rss_mb", "RSS MB"), ("redis_cores", "redis cores"),
    ("driver_cores", "driver cores"), ("other_cores", "other cores"), ("cpu_us_per_player_tick", "us/player-tick"),
    ("wire_bytes_per_player_tick", "lo B/player-tick"), ("socket_bytes_per_player_tick", "socket B/player-tick"),
    ("interval_p99_ms", "gap p99 ms"), ("interval_max_ms", "gap max ms"),
    ("spectators", "spectators"), ("spectator_snapshots_per_s", "snap/spectator/s"),
    ("instructions_per_player_tick", "instr/player-tick"),
]


def table(results: list[Result]) -> str:
    rows = [[h for _, h in COLUMNS]] + [["" if getattr(r, k) is None else str(getattr(r, k)) for k, _ in COLUMNS] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


DEFAULT_OUT = str(ROOT / "var" / "bench" / "load.jsonl")


def main(argv: list[str] | None = None) -> int:
    exit_on_terminate()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=100)
    parser.add_argument("--game", default="arena")
    parser.add_argument("--players", type=int, default=4, help="seats per match")
    parser.add_argument("--spectators", type=int, default=0,
                        help="spectator sockets per match besides the players (they only read; reported apart)")
    parser.add_argument("--server", choices=["daphne", "daphne-asgi", "uvicorn"], default="daphne")
    parser.add_argument("--servers", type=int, default=1, help="server processes to start")
    parser.add_argument("--redis", default="", help="REDIS_URL for the servers (needed for --servers > 1)")
    parser.add_argument("--database-url", default="", help="default: a throwaway SQLite file")
    parser.add_argument("--routing", choices=["match", "spread"], default="match",
                        help="match: all of a match's players on one server (what nginx's hash on the path does); "
                             "spread: seats round-robin over the servers (relays on every match)")
    parser.add_argument("--encoding", choices=["json", "msgpack"], default="json")
    parser.add_argument("--protocol", type=int, choices=[1, 2], default=1,
                        help="match protocol version: 2 sends snapshots as deltas (capacity runs; the soak speaks 1)")
    parser.add_argument("--fire", action="store_true", help="fire every 10th input (bullets, hits, events)")
    parser.add_argument("--no-pace", action="store_true",
                        help="bots send on their own timer only, without pacing by the `waiting` count (bench/wsbot.py)")
    parser.add_argument("--bot-procs", type=int, default=2)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--ramp", type=float, default=None, help="seconds; default 2 + bots/250")
    parser.add_argument("--settle", type=float, default=4.0, help="after the ramp; covers the 3 s countdown")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--attach", default="", help="base URL of a running server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--pid", type=int, action="append", default=[], help="with --attach: server pids to measure")
    parser.add_argument("--callgrind", default="", metavar="DIR",
                        help="run the first server under valgrind's callgrind and report its instructions per "
                        "player-tick in the window (dumps in DIR): repeatable on a busy machine; use a few bots")
    parser.add_argument("--profile", default="", help="py-spy the first server during the window into this file (collapsed stacks)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the servers and bots (negative needs root): on a shared box, -10 keeps "
                             "other work from taking their CPU")
    parser.add_argument("--quiet-wait", type=float, default=0.0, help="wait up to this long for an idle box first")
    parser.add_argument("--soak", type=float, default=0.0, metavar="SECONDS",
                        help="soak mode: matches that end and are replaced for this long, sampled over time")
    parser.add_argument("--match-seconds", type=float, default=None,
                        help="soak: bots leave after this long in a match, ending it (default: play to the time limit)")
    parser.add_argument("--sample-every", type=float, default=60.0, help="soak: seconds between samples")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON lines, appended (soak: var/bench/soak.jsonl)")
    args = parser.parse_args(argv)
    if args.servers > 1 and not args.redis:
        parser.error("--servers > 1 needs --redis")
    if args.attach and not args.pid:
        parser.error("--attach needs --pid")
    if args.soak:
        if args.attach:
            parser.error("--soak starts its own servers")
        report = soak(args)
        print(soak_table(report["samples"]))
        print("per round:", *report["rounds"], sep="\n  ")
        print({k: report[k] for k in ("matches_ended", "sockets_opened", "connect_errors", "close_codes", "error_codes", "p50_ms", "p99_ms")})
        out = Path(args.out if args.out != DEFAULT_OUT else ROOT / "var" / "bench" / "soak.jsonl")
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as f:
            f.write(json.dumps(report) + "\n")
        return 0
    if args.window + (args.ramp or 2 + args.bots / 250) + args.settle > 110 and args.game == "arena":
        parser.error("ramp + settle + window must stay inside the arena's 120 s match")

    if args.quiet_wait:
        print(f"other load before the run: {wait_for_quiet(args.quiet_wait)} cores", file=sys.stderr)
    result = run(args)
    print(table([result]))
    if result.error_codes or result.close_codes_of_dropped:
        print("errors:", result.error_codes, " close codes of dropped bots:", result.close_codes_of_dropped)
    if result.connect_errors:
        print("connect errors:", *result.connect_errors, sep="\n  ")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(asdict(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
