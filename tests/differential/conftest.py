"""Fixtures of the differential suite: the portal that drives the async drivers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    """An event loop in a thread, for the synchronous hypothesis tests to call drivers on.

    It runs asyncio because redis-py's client does; MemoryDriver's trio support is covered
    by tests/unit.
    """
    with start_blocking_portal("asyncio") as portal:
        yield portal
