"""The browser tests' latency proxy (tests/browser/latency.py): delays each way by the latency give or take the
jitter, keeps the bytes' order, and closes cleanly."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.browser.latency import LatencyProxy


@pytest.fixture
def echo_port():
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(65536), b"")], daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def round_trips(proxy: LatencyProxy, count: int) -> list[float]:
    times = []
    with socket.create_connection(("127.0.0.1", proxy.port)) as conn:
        for n in range(count):
            started = time.monotonic()
            message = f"{n:06d}".encode()
            conn.sendall(message)
            got = b""
            while len(got) < len(message):
                got += conn.recv(64)
            assert got == message
            times.append((time.monotonic() - started) * 1000)
    return times


@pytest.mark.flaky(reruns=1)  # timed on a machine that may be busy: a late wake-up of the event loop adds to a delay
def test_each_way_is_delayed_by_the_latency_give_or_take_the_jitter(echo_port):
    proxy = LatencyProxy(echo_port, delay_ms=30, jitter_ms=10)
    try:
        times = round_trips(proxy, 30)
    finally:
        proxy.close()
    assert min(times) >= 40 - 1  # two ways of at least 20 ms
    assert max(times) < 80 + 25  # two ways of at most 40 ms, and some scheduling
    assert max(times) - min(times) > 5  # jittered, not constant


def test_a_burst_arrives_whole_and_in_order(echo_port):
    proxy = LatencyProxy(echo_port, delay_ms=5, jitter_ms=5)
    payload = bytes(range(256)) * 4000
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as conn:
            sender = threading.Thread(target=lambda: [conn.sendall(payload[i : i + 1000]) for i in range(0, len(payload), 1000)])
            sender.start()
            got = bytearray()
            while len(got) < len(payload):
                got += conn.recv(65536)
            sender.join()
        assert bytes(got) == payload
    finally:
        proxy.close()


def test_a_jitter_larger_than_the_latency_is_refused():
    with pytest.raises(ValueError):
        LatencyProxy(1, delay_ms=10, jitter_ms=20)
