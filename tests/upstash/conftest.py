"""Fixtures for the Upstash tests: local servers (memory- or Redis-backed) and drivers.

The servers run in-process on ephemeral ports, each on its own thread and event loop, so
the drivers under test may run on asyncio or trio. One server per backing serves the whole
session (starting and stopping one costs a fifth of a second); each test gets it emptied,
with fresh counters and no planned faults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from kvstore.drivers._retry import RetryPolicy
from kvstore.drivers.upstash import UpstashDriver
from kvstore.upstash_server import UpstashServer
from tests.conftest import flush_db, redis_url_for_db

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

# This suite's own database on the server behind REDIS_URL, flushed before and after use.
UPSTASH_DB = 13

# Retries without real waiting: the tests count attempts, they never time them.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002)
# The client timeout of the tests that force one: ample for an answer on loopback.
TIMEOUT = 0.5
# A hang fault outlasts any client timeout; the server ends it when the client gives up.
HANG = 60.0


def reset(server: UpstashServer) -> None:
    """Empty the server's store and zero its counters and planned faults."""
    server.faults.clear()
    response = httpx.post(
        server.url, json=["FLUSHDB"], headers={"Authorization": f"Bearer {server.token}"}
    )
    response.raise_for_status()
    server.stats.reset()


@pytest.fixture(scope="session")
def _memory_server() -> Iterator[UpstashServer]:
    with UpstashServer() as server:
        yield server


@pytest.fixture(scope="session")
def _redis_server(redis_server_url: str) -> Iterator[UpstashServer]:
    with UpstashServer(backing=redis_url_for_db(UPSTASH_DB)) as server:
        yield server


@pytest.fixture
def server(_memory_server: UpstashServer) -> Iterator[UpstashServer]:
    """The local server on the memory backing (the default), empty."""
    reset(_memory_server)
    yield _memory_server
    _memory_server.faults.clear()


@pytest.fixture
def upstash_redis_url(redis_server_url: str) -> Iterator[str]:
    """The URL of this suite's Redis database, empty before and after the test."""
    url = redis_url_for_db(UPSTASH_DB)
    flush_db(url)
    yield url
    flush_db(url)


@pytest.fixture
def redis_backed_server(
    _redis_server: UpstashServer, upstash_redis_url: str
) -> Iterator[UpstashServer]:
    """The local server on real Redis (this suite's database), empty."""
    reset(_redis_server)
    yield _redis_server
    _redis_server.faults.clear()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def any_server(request: pytest.FixtureRequest) -> UpstashServer:
    """The local server on each backing in turn."""
    name = "server" if request.param == "memory" else "redis_backed_server"
    server: UpstashServer = request.getfixturevalue(name)
    return server


@pytest.fixture
async def driver(server: UpstashServer) -> AsyncIterator[UpstashDriver]:
    async with UpstashDriver(server.url, server.token, retry=FAST_RETRY) as d:
        yield d
