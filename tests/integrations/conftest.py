"""Backends for the integration tests: each test gets an empty store on every backend.

A :class:`Backend` opens stores on one body of data: on the memory driver they share one
driver; on the AOF file, Redis, the cluster and Upstash each store is a new client of the
same data, as a new process would make (the AOF file allows one open store at a time).
The frameworks under test run on asyncio only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kvstore import Storage
from kvstore.drivers import MemoryDriver
from tests.conftest import flush_db, redis_url_for_db

if TYPE_CHECKING:
    from kvstore.upstash_server import UpstashServer

# The integration tests' own database on the server behind REDIS_URL.
INTEGRATIONS_DB = 14

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("aof", id="aof"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("cluster", id="cluster", marks=[pytest.mark.redis, pytest.mark.cluster]),
    pytest.param("upstash", id="upstash"),
]


@dataclass
class Backend:
    """Where a test's data lives, and how to open a store on it.

    Attributes:
        name: The backend's name (``memory``, ``aof``, ``redis``, ``cluster``, ``upstash``).
        url: A URL that reaches the same data from another process, or None (memory).
    """

    name: str
    url: str | None
    _open: Callable[[], Storage]

    @contextlib.asynccontextmanager
    async def store(self) -> AsyncIterator[Storage]:
        """A new store on this backend's data, closed at the end."""
        store = self._open()
        try:
            yield store
        finally:
            await store.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name: str = request.param
    if name == "memory":
        driver = MemoryDriver()
        yield Backend(name, None, lambda: Storage(driver))
    elif name == "aof":
        url = f"memory://{tmp_path / 'data.aof'}"
        yield Backend(name, url, lambda: Storage.from_url(url))
    elif name == "redis":
        request.getfixturevalue("redis_server_url")
        url = redis_url_for_db(INTEGRATIONS_DB)
        flush_db(url)
        yield Backend(name, url, lambda: Storage.from_url(url))
        flush_db(url)
    elif name == "cluster":
        nodes: list[tuple[str, int]] = request.getfixturevalue("cluster_nodes")
        for host, port in nodes:
            flush_db(f"redis://{host}:{port}/0")
        url = "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in nodes)
        yield Backend(name, url, lambda: Storage.from_url(url))
    else:
        assert name == "upstash"
        server: UpstashServer = request.getfixturevalue("upstash_memory_server")
        _flush_upstash(server)
        yield Backend(name, server.driver_url, lambda: Storage.from_url(server.driver_url))


def _flush_upstash(server: UpstashServer) -> None:
    import httpx

    response = httpx.post(
        server.url, json=["FLUSHDB"], headers={"Authorization": f"Bearer {server.token}"}
    )
    response.raise_for_status()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Storage]:
    """An empty store on the test's backend."""
    async with backend.store() as store:
        yield store
