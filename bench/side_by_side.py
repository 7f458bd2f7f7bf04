"""Two trees' servers measured at the same time: the CPU ratio that sequential runs on a shared machine cannot settle.

    .venv/bin/python -m bench.side_by_side --against ../wt/base --bots 500 --rounds 3 \
        --args "--protocol 2 --encoding msgpack" --against-args "--protocol 1 --encoding json"

Per round, each tree gets a PostgreSQL database of its own (created, migrated with that tree's manage.py, dropped
after), a daphne of its own (deploy/daphne_ws.py, as scripts/run runs it) and --bots bots of its own, from that tree's
load tool (`bench.load --attach`: the bots' matches are made with the tree's own models). Both load tools start
together, with the same ramp and window, so both servers pay the same contention at the same moment; the ratio of
their µs per player-tick (this tree's over the other's) does not drift with the machine the way runs a minute apart
do (docs/benchmarks.md). The absolute figures are higher than a server alone would cost.

The other tree needs a load tool that knows --attach, --pid, --database-url, --label and --out: for an older commit,
copy this tree's bench/load.py and bench/wsbot.py (and games/engine/delta.py when it has none) into it. Its Python is
its own .venv's when it has one, else this one's. Everything it starts, it stops by pid; PostgreSQL must answer on
--postgres (trust auth, as on these machines).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.load import exit_on_terminate, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Side:
    name: str
    tree: Path
    load_args: list[str]

    @property
    def python(self) -> str:
        own = self.tree / ".venv" / "bin" / "python"
        return str(own) if own.exists() else sys.executable


def admin(postgres: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{postgres}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def run_round(sides: list[Side], args: argparse.Namespace, round_no: int, out: Path) -> dict[str, dict]:
    """Both servers, both load tools at once; each side's result line (bench.load's JSON) by side name."""
    servers: list[subprocess.Popen] = []
    loads: list[subprocess.Popen] = []
    databases: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="gs-side-"))
    try:
        urls = []
        for side in sides:
            database = f"gs_side_{side.name}_{os.getpid()}"
            admin(args.postgres, f'DROP DATABASE IF EXISTS "{database}"')
            admin(args.postgres, f'CREATE DATABASE "{database}"')
            databases.append(database)
            url = f"{args.postgres}/{database}"
            env = {**os.environ, "DATABASE_URL": url, "WS_MAX_CONNECTIONS_PER_ADDRESS": "0", "LOG_LEVEL": "WARNING",
                   "DATA_DIR": str(tmp / side.name)}
            env.pop("REDIS_URL", None)
            (tmp / side.name).mkdir()
            subprocess.run([side.python, "manage.py", "migrate", "--noinput"], cwd=side.tree, env=env, check=True,
                           capture_output=True, timeout=300)
            port = free_port()
            nice = ["nice", "-n", str(args.nice)] if args.nice else []
            log = open(tmp / f"{side.name}-server.log", "ab")  # noqa: SIM115 (closed with the process)
            server = subprocess.Popen(
                [*nice, side.python, "-m", "deploy.daphne_ws", "-b", "127.0.0.1", "-p", str(port),
                 "gameserver.asgi:application"], cwd=side.tree, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
            servers.append(server)
            wait_for_port(port, server)
            urls.append((url, f"http://127.0.0.1:{port}", server.pid))
        for side, (url, base, pid) in zip(sides, urls, strict=True):
            loads.append(subprocess.Popen(
                [side.python, "-m", "bench.load", "--attach", base, "--pid", str(pid), "--database-url", url,
                 "--bots", str(args.bots), "--ramp", str(args.ramp), "--window", str(args.window),
                 "--nice", str(args.nice), "--label", f"side {round_no} {side.name}", "--out", str(out),
                 *side.load_args],
                cwd=side.tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            ))
        for load in loads:
            output, _ = load.communicate(timeout=args.ramp + args.window + 600)
            if load.returncode:
                raise SystemExit(f"a load tool failed:\n{output.decode(errors='replace')[-3000:]}")
    finally:
        for proc in [*loads, *servers]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*loads, *servers]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for database in databases:
            with contextlib.suppress(Exception):
                admin(args.postgres, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {side.name: next(r for r in reversed(lines) if r.get("label") == f"side {round_no} {side.name}") for side in sides}


def main() -> None:
    exit_on_terminate()  # a SIGTERM stops the servers and load tools it started (run_round's finally)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, type=Path, help="the other tree (a worktree of an older commit)")
    parser.add_argument("--args", default="", help="this tree's load tool options, e.g. \"--protocol 2 --encoding msgpack\"")
    parser.add_argument("--against-args", default=None, help="the other tree's (default: the same as --args)")
    parser.add_argument("--bots", type=int, default=500, help="per side")
    parser.add_argument("--ramp", type=float, default=20)
    parser.add_argument("--window", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--nice", type=int, default=0, help="niceness of servers and bots (negative needs root)")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="server URL, no database")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "side_by_side.jsonl")
    args = parser.parse_args()
    against_args = args.args if args.against_args is None else args.against_args
    sides = [Side("this", ROOT, shlex.split(args.args)), Side("other", args.against.resolve(), shlex.split(against_args))]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ratios = []
    for round_no in range(1, args.rounds + 1):
        results = run_round(sides, args, round_no, args.out)
        this, other = results["this"], results["other"]
        ratio = this["cpu_us_per_player_tick"] / other["cpu_us_per_player_tick"]
        ratios.append(ratio)
        print(f"round {round_no}: this {this['cpu_us_per_player_tick']} µs/player-tick"
              f" ({this['snapshots_per_bot_s']} snapshots/bot/s, {this['socket_bytes_per_player_tick']} B),"
              f" other {other['cpu_us_per_player_tick']} ({other['snapshots_per_bot_s']},"
              f" {other['socket_bytes_per_player_tick']} B): this / other {ratio:.3f}", flush=True)
        if round_no < args.rounds:
            time.sleep(5)
    print(f"this / other, median of {len(ratios)}: {statistics.median(ratios):.3f}"
          f" (rounds: {', '.join(f'{r:.3f}' for r in ratios)})")


if __name__ == "__main__":
    main()
