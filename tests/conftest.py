"""Shared fixtures: persona users, API clients, and access to the real Redis and daphne processes."""

from __future__ import annotations

import os

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clean_cache():
    # Login throttles and WS tickets live in the cache; each test starts without any.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_user(db):
    from gameserver.accounts.models import User

    def make(username: str, **extra):
        return User.objects.create_user(username=username, password=PASSWORD, **extra)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def carol(make_user):
    return make_user("carol")


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def api_as(db):
    """A client authenticated with the user's token, as a game client would be."""
    from rest_framework.authtoken.models import Token

    def client_for(user):
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        client.token = token.key
        return client

    return client_for


def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/1")


@pytest.fixture(scope="session")
def real_redis_url() -> str:
    """The real Redis for tests of the channel layer and of processes. In CI a missing Redis fails the test."""
    import redis

    url = redis_url()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.exceptions.RedisError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis at {url} is required in CI and is unreachable: {exc}")
        pytest.skip(f"Redis at {url} is unreachable: {exc}")
    return url


@pytest.fixture
def nginx_binary() -> str:
    """Debian's nginx, for the scale-out and TLS recipes' tests (scripts/test installs it). In CI a missing one fails."""
    import shutil

    path = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is required in CI (scripts/test installs it from Debian's packages)")
        pytest.skip("nginx is not installed")
    return path


@pytest.fixture
def cluster(tmp_path, real_redis_url):
    """Real server processes (tests/procs.py) sharing the real Redis; stopped, and their database dropped, after."""
    from tests.procs import drop_database, make_cluster

    cluster = make_cluster(tmp_path, real_redis_url)
    yield cluster
    cluster.stop_all()
    drop_database(cluster.env["DATABASE_URL"])


# The second pass of scripts/test (PostgreSQL and Redis) runs the tests that reach a database, Redis or a server
# process: a test of pure code (rules, codecs, the wire format) gains nothing from running again there.
SERVICE_MARKERS = ("django_db", "redis", "postgres", "multiprocess", "services_pass")
SERVICE_FIXTURES = {"db", "transactional_db", "live_server"}


def uses_services(item: pytest.Item) -> bool:
    if any(item.get_closest_marker(name) for name in SERVICE_MARKERS):
        return True
    return bool(SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("GS_TEST_PASS") != "services":
        return
    kept = [item for item in items if uses_services(item)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if not uses_services(item)])
        items[:] = kept
