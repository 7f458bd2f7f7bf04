"""Settings from the environment: embedded defaults, production refusals, bad values failing loudly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROD_KEY = "k3Jx9-vQ2mZ7_pL4wR8tY1uN6cB0hG5fD3sA9eX2jK7qW4zV8yT1rM6nP0oI5uE"


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "GAMESERVER_ENV", "ALLOWED_HOSTS"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_production_without_secret_key_refuses_to_start(tmp_path):
    result = manage("check", GAMESERVER_ENV="production", ALLOWED_HOSTS="game.example.com", DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production_without_allowed_hosts_refuses_to_start(tmp_path):
    result = manage("check", GAMESERVER_ENV="production", SECRET_KEY=PROD_KEY, DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr


def test_check_deploy_passes_in_production_mode(tmp_path):
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        GAMESERVER_ENV="production", SECRET_KEY=PROD_KEY, ALLOWED_HOSTS="game.example.com", DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "env, message",
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/0", "ENGINE_REDIS_URLS": "redis://a:6379/0,http://b"}, "ENGINE_REDIS_URLS='http://b'"),
        ({"ENGINE_REDIS_URLS": "redis://a:6379/0"}, "ENGINE_REDIS_URLS needs REDIS_URL"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/0", "ENGINE_REDIS_URLS": " , "}, "ENGINE_REDIS_URLS must name at least one"),
        ({"ENGINE_JOURNAL": "sometimes"}, "ENGINE_JOURNAL='sometimes' is not a boolean"),
        ({"DATABASE_URL": "mysqlx://nope"}, "DATABASE_URL"),
        ({"MAX_REQUEST_BYTES": "lots"}, "MAX_REQUEST_BYTES='lots' is not an integer"),
        ({"GAMESERVER_ENV": "staging"}, "GAMESERVER_ENV"),
        ({"GAMESERVER_ENV": "production", "DEBUG": "true", "SECRET_KEY": PROD_KEY}, "DEBUG must be off"),
    ],
)
def test_bad_values_fail_at_start_up(tmp_path, env, message):
    result = manage("check", DATA_DIR=str(tmp_path), **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_embedded_defaults_need_nothing_set(tmp_path):
    result = manage("check", DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "secret_key").exists()


def test_debug_is_off_by_default(tmp_path):
    result = manage("shell", "-c", "from django.conf import settings; print('DEBUG is', settings.DEBUG)", DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "DEBUG is False" in result.stdout.splitlines()


def test_production_refuses_a_short_metrics_token(tmp_path):
    result = manage("check", GAMESERVER_ENV="production", SECRET_KEY=PROD_KEY, ALLOWED_HOSTS="game.example.com",
                    DATA_DIR=str(tmp_path), METRICS_TOKEN="short")
    assert result.returncode != 0
    assert "METRICS_TOKEN must be at least 32 characters" in result.stderr


def test_an_unknown_log_format_fails_loudly(tmp_path):
    result = manage("check", DATA_DIR=str(tmp_path), LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT" in result.stderr


SQLITE_WRITERS = """
import threading, time
import django
django.setup()
from django.core.management import call_command
from django.db import OperationalError, connection, transaction
from django.contrib.auth import get_user_model

call_command("migrate", verbosity=0)
User = get_user_model()
User.objects.create(username="shared")
stop = time.monotonic() + 2
done, errors = [0, 0], []

def write():  # a sweep: one UPDATE after another
    while time.monotonic() < stop:
        with transaction.atomic():
            User.objects.filter(username="shared").update(first_name=str(time.monotonic()))
        done[0] += 1
    connection.close()

def read_then_write():  # an invitation's accept: reads the rows, then updates one
    while time.monotonic() < stop:
        try:
            with transaction.atomic():
                list(User.objects.filter(username="shared"))
                time.sleep(0.001)
                User.objects.filter(username="shared").update(last_name="x")
            done[1] += 1
        except OperationalError as exc:
            errors.append(str(exc))
    connection.close()

threads = [threading.Thread(target=write), threading.Thread(target=read_then_write)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(done[0], done[1], len(errors), errors[:1])
"""


@pytest.mark.parametrize("url", ["", "sqlite:///{tmp}/other.sqlite3"])
def test_sqlite_transactions_wait_for_a_concurrent_writer_instead_of_failing(tmp_path, url):
    """SQLite's default deferred transactions fail at once with "database is locked" when another connection writes
    between their read and their write (seen: an invitation's accept answered 500 during a match sweep)."""
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env = {**clean, "DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "gameserver.settings"}
    if url:
        env["DATABASE_URL"] = url.format(tmp=tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", SQLITE_WRITERS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    writes, accepts, failures, first = result.stdout.split(maxsplit=3)
    assert int(failures) == 0, first
    assert int(writes) > 0 and int(accepts) > 0, result.stdout
