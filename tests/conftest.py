"""Shared fixtures.

Tests that need a real Redis take the ``redis_url`` fixture. Without a reachable server they
skip, unless ``KVSTORE_REQUIRE_REDIS=1`` is set (as CI does), in which case they fail.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kvstore.upstash_server import UpstashServer

REQUIRE_REDIS = os.environ.get("KVSTORE_REQUIRE_REDIS") == "1"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# Each suite owns one database number of the server behind REDIS_URL and flushes it before
# and after use, so tests never touch database 0 or each other's data.
DIFFERENTIAL_DB = 11
CONFORMANCE_DB = 12


def redis_url_for_db(db: int) -> str:
    """REDIS_URL with its database number replaced by ``db``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(REDIS_URL)
    return urlunsplit(parts._replace(path=f"/{db}"))


def _unreachable(reason: str) -> None:
    if REQUIRE_REDIS:
        pytest.fail(f"KVSTORE_REQUIRE_REDIS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def flush_db(url: str) -> None:
    """Empty the database at ``url`` with a short-lived synchronous client."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """REDIS_URL, after checking that a server answers there."""
    try:
        import redis
    except ImportError:
        _unreachable("redis-py is not installed")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unreachable(f"no Redis server answers at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def differential_redis_url(redis_server_url: str) -> Iterator[str]:
    """A URL of the differential suite's own database, empty before and after the test."""
    url = redis_url_for_db(DIFFERENTIAL_DB)
    flush_db(url)
    yield url
    flush_db(url)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def cluster_nodes() -> Iterator[list[tuple[str, int]]]:
    """A 3-master Redis Cluster on loopback ports, started once per test session."""
    from tests.support.servers import redis_cluster

    with contextlib.ExitStack() as stack:
        try:
            nodes = stack.enter_context(redis_cluster())
        except RuntimeError as exc:
            _unreachable(f"cannot start a Redis Cluster: {exc}")
        yield nodes


@pytest.fixture(scope="session")
def private_redis_url() -> Iterator[str]:
    """A Redis server of this test session's own, for tests that read server-wide counters."""
    from tests.support.servers import redis_server

    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(redis_server())
        except RuntimeError as exc:
            _unreachable(f"cannot start a private Redis server: {exc}")
        yield url


@pytest.fixture(scope="session")
def upstash_memory_server() -> Iterator[UpstashServer]:
    """A local Upstash-protocol server backed by the memory driver, for the whole session."""
    from kvstore.upstash_server import UpstashServer

    with UpstashServer() as server:
        yield server


@pytest.fixture(scope="session")
def upstash_redis_server(redis_server_url: str) -> Iterator[UpstashServer]:
    """A local Upstash-protocol server backed by the real Redis (the conformance database)."""
    from kvstore.upstash_server import UpstashServer

    url = redis_url_for_db(CONFORMANCE_DB)
    flush_db(url)
    with UpstashServer(backing=url) as server:
        yield server
    flush_db(url)
