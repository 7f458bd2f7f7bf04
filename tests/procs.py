"""Real server processes for tests: a prepared database, daphne processes on free loopback ports, HTTP helpers.

The processes run `python -m deploy.daphne_ws`, the command scripts/run and the Procfile use (daphne with direct match
sockets), so multi-process, failover and hand-over tests exercise that path."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import free_port, wait_for_port  # noqa: F401 - the tests' server helpers, shared with the load tool

ROOT = Path(__file__).resolve().parent.parent


def database_url_for(tmp_path: Path) -> str:
    """A fresh database for the processes: PostgreSQL when the suite runs on it, else a SQLite file."""
    base = os.environ.get("DATABASE_URL", "")
    if base.startswith("postgres"):
        import psycopg

        name = f"gs_proc_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return base.rsplit("/", 1)[0] + "/" + name
    return f"sqlite:///{tmp_path / 'db.sqlite3'}"


def drop_database(url: str) -> None:
    if url.startswith("postgres"):
        import psycopg

        base, name = url.rsplit("/", 1)
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# A database migrated once per test run, which Cluster.migrate copies: `manage.py migrate` in a process of its own
# costs 3-5 s (Django's start-up and every migration), and the suite prepares dozens of server databases. The copy has
# the same schema and rows (the migrations depend on no setting but the database's).
_template: dict[str, str] = {}


def _migrated_template() -> str:
    """The template's URL, migrated on first use: a SQLite file in a folder of its own, or a PostgreSQL database
    (dropped when the run ends) next to the suite's."""
    base = os.environ.get("DATABASE_URL", "")
    if base not in _template:
        folder = Path(tempfile.mkdtemp(prefix="gs_template_"))
        url = database_url_for(folder)
        env = {**os.environ, "DATABASE_URL": url, "DATA_DIR": str(folder)}
        if url.startswith("postgres"):
            atexit.register(drop_database, url)
        else:
            atexit.register(shutil.rmtree, folder, True)
        result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(result.stderr)
        _template[base] = url
    return _template[base]


@dataclass
class Cluster:
    env: dict[str, str]
    tmp_path: Path
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)  # port -> process

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(result.stderr)
        return result.stdout

    def migrate(self) -> None:
        """The schema and rows `manage.py migrate` gives the cluster's new, empty database, copied from a template
        migrated once per run (_migrated_template)."""
        url, template = self.env["DATABASE_URL"], _migrated_template()
        if url.startswith("postgres"):
            import psycopg

            name, template_name = url.rsplit("/", 1)[1], template.rsplit("/", 1)[1]
            with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{name}"')  # made empty by database_url_for
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
        else:
            path = Path(url.removeprefix("sqlite:///"))
            assert not path.exists() or not path.stat().st_size, f"{path} is not a new database"
            shutil.copyfile(template.removeprefix("sqlite:///"), path)

    def start(
        self, port: int | None = None, *, tls: tuple[Path, Path] | None = None, application: str = "gameserver.asgi:application"
    ) -> int:
        """A daphne process on a free port; with `tls` (certificate chain, private key: PEM files) on daphne's own TLS
        endpoint (Twisted's endpoint string), serving https:// and wss:// only. `application`: another ASGI app to
        serve under the same launcher (tests/security/echo_app.py)."""
        port = port or free_port()
        log = open(self.tmp_path / f"daphne-{port}.log", "ab")
        if tls is None:
            listen = ["-b", "127.0.0.1", "-p", str(port)]
        else:
            listen = ["-e", f"ssl:{port}:privateKey={tls[1]}:certKey={tls[0]}:interface=127.0.0.1"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.daphne_ws", *listen, "--application-close-timeout", "3",
             application],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        self.procs[port] = proc
        wait_for_port(port, proc)
        return port

    def log_of(self, port: int) -> str:
        return (self.tmp_path / f"daphne-{port}.log").read_text(errors="replace")

    def kill(self, port: int, sig: int = signal.SIGKILL) -> None:
        self.procs[port].send_signal(sig)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait(timeout=10)

    def http(self, port: int, method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", **({"Authorization": f"Token {token}"} if token else {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def new_pong_match(self, port: int) -> tuple[dict, dict[str, str]]:
        """Registers alice and bob, alice invites bob to a pong match and he accepts: (the match, their tokens)."""
        tokens = {name: self.register(port, name) for name in ("alice", "bob")}
        return self.new_match(port, "pong", ["alice", "bob"], tokens), tokens

    def new_match(self, port: int, game: str, players: list[str], tokens: dict[str, str]) -> dict:
        """The first player creates the match (inviting the others) and every other player accepts it."""
        status, match = self.http(port, "POST", "/api/matches/", {"game": game, "players": players}, token=tokens[players[0]])
        assert status == 201, match
        for name in players[1:]:
            status, match = self.http(port, "POST", f"/api/matches/{match['id']}/accept/", token=tokens[name])
            assert status == 200, match
        assert match["status"] == "waiting", match
        return match

    def register(self, port: int, username: str) -> str:
        status, body = self.http(port, "POST", "/api/auth/register/", {"username": username, "password": "correct horse battery staple"})
        assert status == 201, body
        return body["token"]


def embedded_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A server process's environment on the embedded defaults (in-process channel layer, no Redis), with its own
    database and prefixes; `extra` adds or overrides settings."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": database_url_for(tmp_path), "DATA_DIR": str(tmp_path), "CHANNEL_PREFIX": prefix,
           "ENGINE_PREFIX": prefix, "THROTTLE_REGISTER": "1000/minute", "LOG_LEVEL": "INFO", "DB_CONN_MAX_AGE": "0",
           **extra}
    env.pop("REDIS_URL", None)
    return env


def make_cluster(tmp_path: Path, redis_url: str) -> Cluster:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for(tmp_path),
        "REDIS_URL": redis_url,
        "CHANNEL_PREFIX": prefix,
        "ENGINE_PREFIX": prefix,
        "DATA_DIR": str(tmp_path),
        "THROTTLE_REGISTER": "1000/minute",
        "LOG_LEVEL": "INFO",
        "DB_CONN_MAX_AGE": "0",
    }
    cluster = Cluster(env=env, tmp_path=tmp_path)
    cluster.migrate()
    return cluster


async def wait_until(check, timeout: float, what: str, every: float = 0.05):
    """Calls the blocking `check` (an HTTP request to a server process, say) in a thread until it returns something
    true, and returns that; fails after `timeout` seconds, naming `what` it waited for."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await asyncio.to_thread(check)
        if result:
            return result
        await asyncio.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
