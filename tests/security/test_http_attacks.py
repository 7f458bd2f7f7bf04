"""Attacks on the HTTP side of a real server process (daphne as scripts/run starts it, and uvicorn): over-size bodies
with Content-Length and chunked, deep JSON, absurd pagination, long query strings and heads. Loopback only; each
attack is bounded in bytes and time. docs/security.md ("HTTP limits") lists the answers these tests expect."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.procs import ROOT, Cluster, drop_database, free_port, make_cluster, wait_for_port

pytestmark = [pytest.mark.multiprocess, pytest.mark.redis]

ATTACK_BYTES = 200 * 1024 * 1024
PIECE = b"x" * 65536
# What a client may get written before the answer or the close reaches it: the refusal comes with the headers (or
# once the limit is passed), then socket buffers on both sides and the server's bounded linger (1 MiB).
SENT_BOUND = 32 * 1024 * 1024
RSS_BOUND_KB = 8 * 1024
# Every kind of path: the API, a page's form post, the admin's login.
# The HTTP server's own limits (sizes, heads, nesting) do not depend on the database or Redis: the first pass
# (embedded defaults) covers them; pagination, which reaches the database, runs in both passes.
HTTP_SERVER_ONLY = pytest.mark.embedded_only
PATHS = ["/api/auth/register/", "/login/", "/admin/login/"]


@dataclass
class Server:
    cluster: Cluster
    port: int
    pid: int
    tmpdir: Path
    token: str


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(request, tmp_path_factory, real_redis_url):
    tmp = tmp_path_factory.mktemp(f"http-{request.param}")
    cluster = make_cluster(tmp, real_redis_url)
    tmpdir = tmp / "tmpdir"
    tmpdir.mkdir()
    cluster.env["TMPDIR"] = str(tmpdir)  # where Python (and Twisted, and Django) put temporary files
    try:
        if request.param == "daphne":
            port = cluster.start()
        else:
            port = free_port()
            log = open(tmp / f"uvicorn-{port}.log", "ab")
            cluster.procs[port] = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--lifespan", "off", "--no-access-log", "--host", "127.0.0.1",
                 "--port", str(port), "gameserver.asgi:application"],
                cwd=ROOT, env=cluster.env, stdout=log, stderr=subprocess.STDOUT,
            )
            wait_for_port(port, cluster.procs[port])
        token = cluster.register(port, "alice")
        yield Server(cluster, port, cluster.procs[port].pid, tmpdir, token)
    finally:
        cluster.stop_all()
        drop_database(cluster.env["DATABASE_URL"])


# --- measuring ----------------------------------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def temp_files_open(pid: int, tmpdir: Path) -> int:
    """Files the process holds open under its TMPDIR (Python's TemporaryFile unlinks them at once: only /proc shows them)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(tmpdir))
        except OSError:
            pass
    return count


@dataclass
class Outcome:
    status: int | None  # None: the connection ended without an answer
    sent: int
    seconds: float
    rss_growth_kb: int
    temp_files: int
    head: bytes = b""


def read_answer(sock: socket.socket, watch: callable, timeout: float = 30.0) -> bytes:
    """What the server answers, up to the end of its head, while `watch` samples the server; b"" if it closed."""
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        watch()
        if not select.select([sock], [], [], 0.05)[0]:
            continue
        try:
            more = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not more:
            break
        data += more
    return data


def status_of(head: bytes) -> int | None:
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else None


def upload(server: Server, path: str, *, chunked: bool, total: int = ATTACK_BYTES) -> Outcome:
    """POST `total` bytes, streamed, until the server answers or closes; measures the server meanwhile."""
    rss_before = rss_kb(server.pid)
    peak = [rss_before, 0]

    def watch() -> None:
        peak[0] = max(peak[0], rss_kb(server.pid))
        peak[1] = max(peak[1], temp_files_open(server.pid, server.tmpdir))

    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    frame = b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE
    start = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{length}\r\n\r\n".encode())
        try:
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(frame)
                sent += len(PIECE)
                if sent % (64 * len(PIECE)) == 0:
                    watch()
            if chunked and sent >= total:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        head = read_answer(sock, watch)
    seconds = time.monotonic() - start
    watch()
    return Outcome(status_of(head), sent, seconds, peak[0] - rss_before, peak[1], head)


def raw_request(server: Server, request: bytes) -> tuple[int | None, bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = read_answer(sock, lambda: None, timeout=10)
        if b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                more = sock.recv(65536)
                if not more:
                    break
                body += more
            return status_of(data), body
    return status_of(data), b""


def get(server: Server, target: str, headers: str = "") -> tuple[int | None, bytes]:
    return raw_request(
        server,
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {server.token}\r\n{headers}Connection: close\r\n\r\n".encode(),
    )


# --- bodies -------------------------------------------------------------------------------------------------------


@HTTP_SERVER_ONLY
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", PATHS)
def test_over_size_body_is_refused_before_it_is_read(server, path, chunked):
    outcome = upload(server, path, chunked=chunked)
    print(f"{path} chunked={chunked}: {outcome}")
    assert outcome.sent <= SENT_BOUND, f"the server read {outcome.sent} bytes before answering: {outcome}"
    # The answer is 413, or (a client still writing when the linger ends) the connection is cut.
    assert outcome.status in (413, None), outcome
    assert outcome.rss_growth_kb < RSS_BOUND_KB, outcome
    assert outcome.temp_files == 0, outcome


@HTTP_SERVER_ONLY
def test_refusal_is_read_by_a_client_that_sends_its_whole_over_size_body(server):
    # A client that writes all of a (moderately) over-size body before it reads must see the 413, not a reset.
    outcome = upload(server, "/api/auth/register/", chunked=False, total=128 * 1024)
    assert outcome.status == 413, outcome
    outcome = upload(server, "/api/auth/register/", chunked=True, total=128 * 1024)
    assert outcome.status == 413, outcome


def test_body_within_the_limit_is_served(server):
    body = b'{"username": "dave", "password": "' + b"x" * 60_000 + b'"}'
    status, answer = raw_request(
        server,
        b"POST /api/auth/register/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body),
    )
    assert status == 400 and b"validation_error" in answer, answer  # read and validated (the password is too long)


@HTTP_SERVER_ONLY
def test_deeply_nested_json_is_a_400(server):
    body = b"[" * 30_000 + b"]" * 30_000  # within MAX_REQUEST_BYTES
    status, answer = raw_request(
        server,
        b"POST /api/auth/register/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body),
    )
    assert status == 400 and b'"parse_error"' in answer, (status, answer[:200])


@HTTP_SERVER_ONLY
def test_nesting_of_100000_levels_is_refused_as_too_large(server):
    body = b"[" * 100_000 + b"]" * 100_000
    status, answer = raw_request(
        server,
        b"POST /api/auth/register/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body),
    )
    assert status == 413 and b'"request_too_large"' in answer, (status, answer[:200])


# --- query strings and heads ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["limit=1e20", "offset=99999999999999999999", "limit=-1", "offset=-5", "limit=0",
                                   "limit=abc", "limit=100000"])
@pytest.mark.parametrize("endpoint", ["/api/leaderboards/pong/", "/api/lobbies/", "/api/history/", "/api/matches/"])
def test_absurd_pagination_is_a_400(server, endpoint, query):
    status, answer = get(server, f"{endpoint}?{query}")
    assert status == 400 and b'"invalid_pagination"' in answer, (status, answer[:200])


def test_pagination_within_bounds_is_served(server):
    status, answer = get(server, "/api/leaderboards/pong/?limit=100&offset=1000000")
    assert status == 200, answer[:200]


@HTTP_SERVER_ONLY
@pytest.mark.parametrize("size", [10_000, 100_000])
def test_overlong_query_string_is_a_414(server, size):
    status, answer = get(server, "/api/games/?q=" + "a" * size)
    assert status == 414, (status, answer[:200])
    assert b'"query_too_long"' in answer


@HTTP_SERVER_ONLY
def test_overlong_query_string_on_a_page_is_a_414(server):
    status, answer = get(server, "/login/?next=" + "a" * 100_000)
    assert status == 414, (status, answer[:200])


@HTTP_SERVER_ONLY
@pytest.mark.parametrize("headers", [
    "X-Big: " + "a" * 20_000 + "\r\n",  # one header line over 16 KiB
    "".join(f"X-H{i}: {'a' * 100}\r\n" for i in range(200)),  # a head over 16 KiB
    "".join(f"X-H{i}: a\r\n" for i in range(600)),  # over 500 headers
], ids=["long-line", "large-head", "many-headers"])
def test_oversized_head_is_a_4xx(server, headers):
    status, answer = get(server, "/api/games/", headers)
    assert status is not None and 400 <= status < 500, (status, answer[:200])
