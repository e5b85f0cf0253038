"""The memory driver's streams: generated ids, approximate trimming, scale."""

from __future__ import annotations

import pytest

from kvstore.drivers.memory import MemoryDriver
from kvstore.errors import BatchError

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


async def test_generated_ids_follow_the_clock_and_never_go_back() -> None:
    clock = Clock()
    driver = MemoryDriver(clock=clock)
    same_ms = await driver.execute([("XADD", "s", "*", "f", "v")] * 3)
    assert same_ms == [b"1000-0", b"1000-1", b"1000-2"]
    clock.now = 999  # the clock steps back: ids keep counting from the last one
    assert await driver.execute([("XADD", "s", "*", "f", "v")]) == [b"1000-3"]
    clock.now = 1_005
    assert await driver.execute([("XADD", "s", "*", "f", "v")]) == [b"1005-0"]
    assert await driver.execute(
        [("XADD", "s", "1005-*", "f", "v"), ("XADD", "s", "2000-*", "f", "v")]
    ) == [
        b"1005-1",
        b"2000-0",
    ]


async def test_approximate_trimming_trims_exactly_up_to_the_limit() -> None:
    driver = MemoryDriver()
    await driver.execute([("XADD", "s", f"{i}-1", "n", i) for i in range(1, 101)])
    replies = await driver.execute(
        [
            ("XTRIM", "s", "MAXLEN", "~", 90),
            ("XTRIM", "s", "MAXLEN", "~", 0, "LIMIT", 5),
            ("XLEN", "s"),
            ("XTRIM", "s", "MINID", "~", "50", "LIMIT", 0),  # 0: no limit
            ("XRANGE", "s", "-", "+", "COUNT", 1),
            ("XADD", "s", "MAXLEN", "~", 10, "*", "n", "x"),
            ("XLEN", "s"),
        ]
    )
    assert replies[:4] == [10, 5, 85, 34]  # MINID 50 takes 16-1 to 49-1
    assert replies[4] == [[b"50-1", [b"n", b"50"]]]
    assert replies[6] == 10


async def test_a_drained_stream_stays_and_remembers_its_last_id() -> None:
    driver = MemoryDriver()
    await driver.execute([("XADD", "s", "5-5", "f", "v"), ("XDEL", "s", "5-5")])
    assert await driver.execute([("EXISTS", "s"), ("TYPE", "s"), ("XLEN", "s")]) == [
        1,
        b"stream",
        0,
    ]
    with pytest.raises(BatchError, match="equal or smaller than the target stream top item"):
        await driver.execute([("XADD", "s", "5-5", "f", "v")])


async def test_large_stream_ranges() -> None:
    driver = MemoryDriver()
    n = 100_000
    await driver.execute([("XADD", "s", f"{i}-0", "n", i) for i in range(1, n + 1)])
    replies = await driver.execute(
        [
            ("XLEN", "s"),
            ("XRANGE", "s", "-", "+", "COUNT", 2),
            ("XREVRANGE", "s", "+", "-", "COUNT", 2),
            ("XRANGE", "s", "(50000", "50002"),
            ("XTRIM", "s", "MINID", 90_001),
            ("XRANGE", "s", "-", "+", "COUNT", 1),
        ]
    )
    assert replies == [
        n,
        [[b"1-0", [b"n", b"1"]], [b"2-0", [b"n", b"2"]]],
        [[b"%d-0" % n, [b"n", b"%d" % n]], [b"%d-0" % (n - 1), [b"n", b"%d" % (n - 1)]]],
        [[b"50001-0", [b"n", b"50001"]], [b"50002-0", [b"n", b"50002"]]],
        90_000,
        [[b"90001-0", [b"n", b"90001"]]],
    ]
