"""Fixtures of the flags tests that start live servers (see tests/flags/live.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.flags.live import LiveServer, RedisServer, running_gunicorn, running_redis


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A Redis of the test's own (needs redis-server on PATH: scripts/test.sh installs it)."""
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
def gunicorn_server(transactional_db, redis_server, tmp_path) -> Iterator[LiveServer]:
    from django.db import connection

    database_url = "postgres://{USER}:{PASSWORD}@{HOST}:{PORT}/{NAME}".format(
        **connection.settings_dict
    )
    with running_gunicorn(database_url, redis_server.url, tmp_path) as server:
        yield server
