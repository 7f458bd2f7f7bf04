"""Browser tests: a real daphne server behind a cuttable TCP proxy, and headless Chromium (Debian's package)
driven by Playwright. scripts/test installs both."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import Cluster, database_url_for, drop_database

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the server byte for byte, and can cut the connections whose request contains
    every given needle (a path, a session cookie): a real dropped socket (the browser sees 1006), not a close. It can
    also hold what the server sends on such connections (an outage with the socket still open) until released."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.links: list[tuple[bytes, socket.socket, socket.socket]] = []
        self.refusing: tuple[bytes, ...] = ()
        self.holding: tuple[bytes, ...] = ()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self, *needles: bytes) -> int:
        """Drop every live connection whose request has all the needles; returns how many were cut."""
        with self.lock:
            doomed = [link for link in self.links if all(n in link[0] for n in needles)]
            self.links = [link for link in self.links if link not in doomed]
        for _, client, upstream in doomed:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
        self.cuts += len(doomed)
        return len(doomed)

    def refuse(self, *needles: bytes) -> None:
        """Until called again without needles, new connections with all of them are dropped at their request."""
        self.refusing = needles

    def hold(self, *needles: bytes) -> None:
        """Until called again without needles, the server's bytes to connections with all of them wait here."""
        self.holding = needles

    def close(self) -> None:
        self.listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            first = client.recv(65536)
            refusing = self.refusing
            if not first or (refusing and all(n in first for n in refusing)):
                client.close()
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            upstream.sendall(first)
        except OSError:
            client.close()
            return
        with self.lock:
            self.links.append((first, client, upstream))
        threading.Thread(target=self._pump, args=(upstream, client, first), daemon=True).start()
        self._pump(client, upstream)

    def _pump(self, source: socket.socket, target: socket.socket, request: bytes | None = None) -> None:
        try:
            while data := source.recv(65536):
                while request is not None and self.holding and all(n in request for n in self.holding):
                    time.sleep(0.02)
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[Cluster, CuttableProxy]]:
    """One daphne process on the embedded channel layer and matchmaker (no REDIS_URL), with its own database."""
    tmp_path = tmp_path_factory.mktemp("browser")
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(
        DATABASE_URL=database_url_for(tmp_path),
        DATA_DIR=str(tmp_path),
        THROTTLE_REGISTER="1000/minute",
        DB_CONN_MAX_AGE="0",
        LOG_LEVEL="WARNING",
        # A ticket left behind stops searching sooner than the default 5 s: the queue journeys wait for it.
        MATCHMAKING_AWAY_SECONDS="3",
    )
    cluster = Cluster(env=env, tmp_path=tmp_path)
    cluster.migrate()
    port = cluster.start()
    proxy = CuttableProxy(port)
    yield cluster, proxy
    proxy.close()
    cluster.stop_all()
    drop_database(env["DATABASE_URL"])


@pytest.fixture(scope="module")
def base_url(server) -> str:
    return f"http://127.0.0.1:{server[1].port}"


@pytest.fixture(scope="module")
def proxy(server) -> CuttableProxy:
    return server[1]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Chromium is required in CI and {CHROMIUM} is missing (scripts/test installs it)")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def new_device(browser, base_url):
    """Pages in separate browser contexts (separate cookies, so separate logged-in players), each with Playwright's
    context options for a device: a phone's viewport and touch, say (tests/browser/test_pages_on_phones.py)."""
    contexts = []

    def make(device: dict):
        context = browser.new_context(base_url=base_url, **device)
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def new_page(new_device):
    """Pages in separate browser contexts on a desktop-sized screen."""
    return lambda: new_device({"viewport": {"width": 1100, "height": 760}})


@pytest.fixture
def username():
    def make(prefix: str) -> str:
        return f"{prefix}{uuid.uuid4().hex[:6]}"

    return make


def shot(page, name: str) -> None:
    """Save a screenshot for the docs when GS_SCREENSHOTS names a folder (docs/screenshots); a no-op otherwise."""
    folder = os.environ.get("GS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))
