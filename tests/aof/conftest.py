"""Shared helpers of the append-only file tests: a fake clock and a dump of a driver's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kvstore.drivers import MemoryDriver

T0 = 1_750_000_000_000  # a fixed "now", in milliseconds


class Clock:
    """A clock the test moves by hand (milliseconds since the epoch)."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data.aof"


async def dump(driver: MemoryDriver) -> dict[bytes, Any]:
    """Every key with its type, its value as the read commands show it, and its PTTL."""
    keys: list[bytes] = []
    cursor = b"0"
    while True:
        [(cursor, found)] = await driver.execute([["SCAN", cursor, "COUNT", 1000]])
        keys += found
        if cursor == b"0":
            break
    state = {}
    for key in sorted(keys):
        [kind, ttl] = await driver.execute([["TYPE", key], ["PTTL", key]])
        read = {
            b"string": ["GET", key],
            b"hash": ["HGETALL", key],  # in field order, which a reload must keep
            b"set": ["SMEMBERS", key],
            b"zset": ["ZRANGE", key, 0, -1, "WITHSCORES"],
            b"stream": ["XRANGE", key, "-", "+"],
        }[kind]
        [value] = await driver.execute([read])
        if kind == b"set":
            value = sorted(value)
        state[key] = (kind, value, ttl)
    return state
