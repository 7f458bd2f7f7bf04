"""The launchers' tests share one way to run a server: `servers` (per test) or `module_servers` (per module) start
`python -m deploy.daphne_ws` or uvicorn with deploy/uvicorn_ws.py on a migrated database of their own, and stop every
process and drop every database at the end."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import ROOT, Cluster, database_url_for, drop_database, embedded_env, free_port, wait_for_port

# The command docs/scale-out.md gives, on a loopback port.
UVICORN = ["-m", "uvicorn", "--ws", "deploy.uvicorn_ws:WebSocketProtocol", "--ws-per-message-deflate", "false",
           "--ws-max-size", "65536", "--lifespan", "off", "--no-access-log", "gameserver.asgi:application"]


class Servers:
    """Server processes for tests, each with its own database and folder (logs: Cluster.log_of)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory):
        self.tmp_path_factory = tmp_path_factory
        self.clusters: list[Cluster] = []

    def _cluster(self, env_for) -> Cluster:
        tmp_path = self.tmp_path_factory.mktemp("server")
        cluster = Cluster(env=env_for(tmp_path), tmp_path=tmp_path)
        self.clusters.append(cluster)
        cluster.migrate()
        return cluster

    def daphne(self, *, tls: tuple[Path, Path] | None = None, **env: str) -> tuple[Cluster, int]:
        """`python -m deploy.daphne_ws` on the embedded defaults (no Redis); `tls`: (chain, key) for its own TLS
        endpoint; `env` adds or overrides settings."""
        cluster = self._cluster(lambda tmp_path: embedded_env(tmp_path, **env))
        return cluster, cluster.start(tls=tls)

    def uvicorn(self, *args: str, **env: str) -> tuple[Cluster, int]:
        """uvicorn with deploy/uvicorn_ws.py (UVICORN, then `args`), with the suite's REDIS_URL if it has one."""
        cluster = self._cluster(lambda tmp_path: uvicorn_env(tmp_path, **env))
        port = free_port()
        log = open(cluster.tmp_path / f"daphne-{port}.log", "ab")  # Cluster.log_of reads this name
        proc = subprocess.Popen([sys.executable, *UVICORN, *args, "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=cluster.env, stdout=log, stderr=subprocess.STDOUT)
        cluster.procs[port] = proc
        wait_for_port(port, proc)
        return cluster, port

    def stop(self) -> None:
        for cluster in self.clusters:
            cluster.stop_all()
            drop_database(cluster.env["DATABASE_URL"])


def uvicorn_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    return {**os.environ, "DATABASE_URL": database_url_for(tmp_path), "DATA_DIR": str(tmp_path),
            "CHANNEL_PREFIX": prefix, "ENGINE_PREFIX": prefix, "THROTTLE_REGISTER": "1000/minute", "LOG_LEVEL": "INFO",
            "DB_CONN_MAX_AGE": "0", **extra}


@pytest.fixture
def servers(tmp_path_factory) -> Iterator[Servers]:
    started = Servers(tmp_path_factory)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory) -> Iterator[Servers]:
    started = Servers(tmp_path_factory)
    try:
        yield started
    finally:
        started.stop()
