"""Fixtures for the cost tests: a Storage on a private Redis server, and a counter of the
commands that server ran (no other test or process talks to it, so counts are exact).

Counts are those of warm calls: the store's layout is checked (its first call's extra round
trip, see :mod:`kvstore.layout`) before a test starts, and the ``SCRIPT LOAD`` a driver sends
with a script's first use on a server is not counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from kvstore import Storage
from tests.conftest import flush_db
from tests.support.commandstats import script_loads, total_calls

CountCommands = Callable[[Awaitable[Any]], Awaitable[int]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis_store(private_redis_url: str) -> AsyncIterator[Storage]:
    flush_db(private_redis_url)
    async with Storage.from_url(private_redis_url, namespace="cost") as store:
        await store.keys()  # the layout check: a first call's extra round trip
        yield store
    flush_db(private_redis_url)


@pytest.fixture
def count_commands(private_redis_url: str) -> CountCommands:
    """``await count_commands(coro)``: how many commands the server ran for ``coro``,
    counting the commands scripts run and the EVALSHA itself, not a first use's
    ``SCRIPT LOAD``."""

    async def count(call: Awaitable[Any]) -> int:
        before = total_calls(private_redis_url) - script_loads(private_redis_url)
        await call
        return total_calls(private_redis_url) - script_loads(private_redis_url) - before

    return count
