"""Fixtures of the hardening tests: asyncio (RedisDriver needs it) and this suite's own
Redis database, emptied before and after each test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import flush_db, redis_url_for_db

HARDENING_DB = 14


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def hardening_redis_url(redis_server_url: str) -> Iterator[str]:
    """This suite's database on the server behind REDIS_URL, empty before and after."""
    url = redis_url_for_db(HARDENING_DB)
    flush_db(url)
    yield url
    flush_db(url)
