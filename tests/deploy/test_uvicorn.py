"""uvicorn, the documented faster alternative to daphne (docs/scale-out.md): a match plays over it as over daphne."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.games.test_multiprocess import Player
from tests.procs import ROOT, Cluster, database_url_for, drop_database, free_port, wait_for_port

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow, pytest.mark.timeout(90)]

# The command docs/scale-out.md gives, on a loopback port.
UVICORN = ["-m", "uvicorn", "--ws", "deploy.uvicorn_ws:WebSocketProtocol", "--ws-per-message-deflate", "false", "--ws-max-size", "65536",
           "--lifespan", "off", "--no-access-log", "gameserver.asgi:application"]


@pytest.fixture
def uvicorn_port(tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": database_url_for(tmp_path), "DATA_DIR": str(tmp_path), "CHANNEL_PREFIX": prefix,
           "ENGINE_PREFIX": prefix, "THROTTLE_REGISTER": "1000/minute", "LOG_LEVEL": "INFO", "DB_CONN_MAX_AGE": "0"}
    cluster = Cluster(env=env, tmp_path=tmp_path)
    cluster.manage("migrate", "--noinput")
    port = free_port()
    log = open(tmp_path / f"daphne-{port}.log", "ab")  # Cluster.log_of reads this name
    proc = subprocess.Popen([sys.executable, *UVICORN, "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    cluster.procs[port] = proc
    try:
        wait_for_port(port, proc)
        yield cluster, port
    finally:
        cluster.stop_all()
        drop_database(env["DATABASE_URL"])


async def test_a_match_plays_over_uvicorn_with_the_same_protocol(uvicorn_port):
    cluster, port = uvicorn_port
    tokens = {name: cluster.register(port, name) for name in ("alice", "bob")}
    status, match = cluster.http(port, "POST", "/api/matches/", {"game": "pong", "players": ["alice", "bob"]}, token=tokens["alice"])
    assert status == 201, match
    alice, bob = Player(port, match["id"], tokens["alice"]), Player(port, match["id"], tokens["bob"])
    await alice.connect()
    await bob.connect()
    _, welcome = await alice.wait_for(lambda m: m["type"] == "welcome", timeout=5)
    assert welcome["seat"] == 0 and welcome["encoding"] == "json"
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["phase"] == "running", timeout=15)
    await alice.ws.send(json.dumps({"type": "input", "seq": 7, "input": {"dy": 1}}))
    await alice.wait_for(lambda m: m["type"] == "snapshot" and m["acks"][0] == 7, timeout=5)
    assert alice.ws.subprotocol == "gs.v1.json"

    async with connect(f"ws://127.0.0.1:{port}/ws/matches/{match['id']}/", origin="http://127.0.0.1",
                       additional_headers={"Authorization": "Token nope"}) as ws:
        await ws.wait_closed()
        assert ws.close_code == 4001
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"ws://127.0.0.1:{port}/ws/matches/{match['id']}/", origin="http://evil.example",
                      additional_headers={"Authorization": f"Token {tokens['alice']}"})
    assert refused.value.response.status_code == 403
    await alice.ws.close()
    await bob.ws.close()
