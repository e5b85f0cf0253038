"""How the conformance suites get a fresh, empty driver for each backend.

Each ``*_driver`` context manager yields a driver on an empty database and cleans up after.
The suites' subclasses call these from their one fixture; nothing else differs between them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from kvstore.drivers import Driver, MemoryDriver
from tests.conftest import CONFORMANCE_DB, flush_db, redis_url_for_db

if TYPE_CHECKING:
    from kvstore.upstash_server import UpstashServer


@contextlib.asynccontextmanager
async def memory_driver() -> AsyncIterator[Driver]:
    async with MemoryDriver() as driver:
        yield driver


@contextlib.asynccontextmanager
async def fakeredis_driver() -> AsyncIterator[Driver]:
    import fakeredis

    from kvstore.drivers.redis import RedisDriver

    async with RedisDriver(fakeredis.FakeAsyncRedis(protocol=2), owns_client=True) as driver:
        yield driver


@contextlib.asynccontextmanager
async def redis_driver(server_url: str) -> AsyncIterator[Driver]:
    del server_url  # the fixture only proves the server answers; the suite uses its own db
    from kvstore.drivers.redis import RedisDriver

    url = redis_url_for_db(CONFORMANCE_DB)
    flush_db(url)
    try:
        async with RedisDriver.from_url(url) as driver:
            yield driver
    finally:
        flush_db(url)


@contextlib.asynccontextmanager
async def cluster_driver(nodes: list[tuple[str, int]]) -> AsyncIterator[Driver]:
    from kvstore.drivers.redis import RedisDriver

    for host, port in nodes:
        flush_db(f"redis://{host}:{port}/0")
    url = "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in nodes)
    async with RedisDriver.from_url(url) as driver:
        yield driver


@contextlib.asynccontextmanager
async def upstash_driver(server: UpstashServer) -> AsyncIterator[Driver]:
    """An UpstashDriver on a local Upstash-protocol server whose store is emptied first.

    The servers live for the whole session (see ``tests/conftest.py``): starting one per test
    would cost more than most tests.
    """
    from kvstore.drivers.upstash import UpstashDriver

    async with UpstashDriver(server.url, server.token) as driver:
        await driver.execute([("FLUSHDB",)])
        yield driver
