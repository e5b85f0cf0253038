"""Every domain suite on every backend.

``BackendSuite`` gathers the domain suites; each backend's subclass adds only its ``driver``
fixture (and the event loops it runs on). No test branches on the backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

import pytest

from kvstore import Storage
from kvstore.drivers import Driver
from kvstore.upstash_server import UpstashServer
from tests.conformance import drivers
from tests.conformance.checkpoints_suite import CheckpointsSuite
from tests.conformance.driver_suite import DriverSuite
from tests.conformance.evals_suite import EvalsSuite
from tests.conformance.langgraph_items_suite import LangGraphItemsSuite
from tests.conformance.memory_pop_suite import MemoryPopSuite
from tests.conformance.memory_suite import MemorySuite
from tests.conformance.resources_suite import ResourceListingSuite
from tests.conformance.traces_suite import TracesSuite
from tests.conformance.workflows_suite import WorkflowsSuite

pytestmark = pytest.mark.anyio


class BackendSuite(
    DriverSuite,
    MemorySuite,
    MemoryPopSuite,
    ResourceListingSuite,
    WorkflowsSuite,
    EvalsSuite,
    TracesSuite,
    LangGraphItemsSuite,
    CheckpointsSuite,
    ABC,
):
    @pytest.fixture
    @abstractmethod
    async def driver(self) -> AsyncIterator[Driver]:
        yield  # type: ignore[misc]

    @pytest.fixture
    async def store(self, driver: Driver) -> AsyncIterator[Storage]:
        async with Storage(driver, namespace="conformance") as store:
            yield store


class TestMemory(BackendSuite):
    @pytest.fixture
    async def driver(self) -> AsyncIterator[Driver]:
        async with drivers.memory_driver() as driver:
            yield driver


class TestFakeRedis(BackendSuite):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def driver(self) -> AsyncIterator[Driver]:
        async with drivers.fakeredis_driver() as driver:
            yield driver


@pytest.mark.redis
class TestRedis(BackendSuite):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def driver(self, redis_server_url: str) -> AsyncIterator[Driver]:
        async with drivers.redis_driver(redis_server_url) as driver:
            yield driver


@pytest.mark.redis
@pytest.mark.cluster
class TestRedisCluster(BackendSuite):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def driver(self, cluster_nodes: list[tuple[str, int]]) -> AsyncIterator[Driver]:
        async with drivers.cluster_driver(cluster_nodes) as driver:
            yield driver


class TestUpstashOverMemory(BackendSuite):
    @pytest.fixture
    async def driver(self, upstash_memory_server: UpstashServer) -> AsyncIterator[Driver]:
        async with drivers.upstash_driver(upstash_memory_server) as driver:
            yield driver


@pytest.mark.redis
class TestUpstashOverRedis(BackendSuite):
    @pytest.fixture
    async def driver(self, upstash_redis_server: UpstashServer) -> AsyncIterator[Driver]:
        async with drivers.upstash_driver(upstash_redis_server) as driver:
            yield driver
