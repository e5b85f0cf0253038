"""The backends transfers are tested between, each a fixture yielding a :class:`Backend`.

Each test works in a namespace of its own, so the servers are shared by the module and
emptied only before and after it. The Redis databases used here belong to this suite.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvstore import Storage
from kvstore.drivers import Driver, MemoryDriver
from tests.conftest import flush_db, redis_url_for_db

#: The plain-Redis side of the pairs, and the Redis behind the local Upstash server.
TRANSFER_DB = 15
TRANSFER_UPSTASH_DB = 10

BACKENDS = ["memory", "memory_file", "redis", "cluster", "upstash_memory", "upstash_redis"]


@dataclass
class Backend:
    """A place to keep a namespace's records.

    Attributes:
        name: The backend's name in test ids.
        url: Its storage URL, for the command line; None for an in-process driver.
        driver: A driver shared by the test (None: open a new one from ``url`` each time).
    """

    name: str
    url: str | None
    driver: Driver | None = None

    @contextlib.asynccontextmanager
    async def open(self, namespace: str) -> AsyncIterator[Storage]:
        """A store on this backend (the same data every time)."""
        if self.driver is not None:
            async with Storage(self.driver, namespace=namespace, owns_driver=False) as store:
                yield store
        else:
            assert self.url is not None
            async with Storage.from_url(self.url, namespace=namespace) as store:
                yield store


@pytest.fixture
def anyio_backend() -> str:
    # redis-py's asyncio client runs on asyncio only.
    return "asyncio"


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses."""
    return f"xfer-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def memory_backend() -> Backend:
    return Backend("memory", None, MemoryDriver())


@pytest.fixture
def memory_file_backend(tmp_path: Path) -> Backend:
    return Backend("memory_file", f"memory://{tmp_path / 'data.aof'}")


@contextlib.contextmanager
def _flushed(*urls: str) -> Iterator[None]:
    for url in urls:
        flush_db(url)
    try:
        yield
    finally:
        for url in urls:
            flush_db(url)


@pytest.fixture(scope="module")
def redis_backend(redis_server_url: str) -> Iterator[Backend]:
    url = redis_url_for_db(TRANSFER_DB)
    with _flushed(url):
        yield Backend("redis", url)


@pytest.fixture(scope="module")
def cluster_backend(cluster_nodes: list[tuple[str, int]]) -> Iterator[Backend]:
    with _flushed(*(f"redis://{h}:{p}/0" for h, p in cluster_nodes)):
        seeds = ",".join(f"{h}:{p}" for h, p in cluster_nodes)
        yield Backend("cluster", f"redis+cluster://{seeds}")


@pytest.fixture(scope="module")
def upstash_memory_backend() -> Iterator[Backend]:
    from kvstore.upstash_server import UpstashServer

    with UpstashServer() as server:
        yield Backend("upstash_memory", server.driver_url)


@pytest.fixture(scope="module")
def upstash_redis_backend(redis_server_url: str) -> Iterator[Backend]:
    from kvstore.upstash_server import UpstashServer

    url = redis_url_for_db(TRANSFER_UPSTASH_DB)
    with _flushed(url), UpstashServer(backing=url) as server:
        yield Backend("upstash_redis", server.driver_url)


@pytest.fixture
def backend_named(request: pytest.FixtureRequest) -> Callable[[str], Backend]:
    """Get a backend by name (its fixture is set up, or skips, when asked for)."""

    def get(name: str) -> Backend:
        backend = request.getfixturevalue(f"{name}_backend")
        assert isinstance(backend, Backend)
        return backend

    return get
