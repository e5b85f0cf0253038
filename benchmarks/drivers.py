"""Driver micro-benchmark: one command per call, through each driver, side by side.

Contenders: :class:`~kvstore.drivers.MemoryDriver`; fakeredis through its own async
client (``await fake.get(...)``, how an application or a test suite calls it); the same
fakeredis behind ``RedisDriver`` (``RedisDriver(fakeredis.FakeAsyncRedis(protocol=2))``,
which skips most of redis-py's client layer); ``RedisDriver`` on the private Redis over
loopback; and bare ``redis.asyncio`` on the same server, the floor any Redis client pays.
Every driver call is ``driver.execute([command])``: one batch of one command, one round
trip.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from benchmarks._env import Env, missing
from benchmarks._harness import (
    TIMES,
    Contender,
    Report,
    Stats,
    bar_chart,
    fmt_int,
    fmt_ratio,
    fmt_time,
    interleave,
)
from kvstore.drivers.memory import MemoryDriver

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kvstore.drivers.base import Command, Driver

NAME = "drivers"
TITLE = "7. Drivers: GET, HSET, ZADD, last 20 of a sorted set, XADD"

TARGET = 30
VALUE = b"v" * 100
MEMORY, FAKE_CLIENT, FAKE, DRIVER, BARE = (
    "MemoryDriver",
    "fakeredis (its own client)",
    "fakeredis (RedisDriver)",
    "RedisDriver (loopback)",
    "bare redis.asyncio",
)


def _ops(zset_size: int) -> dict[str, Callable[[], Command]]:
    """Each op as a fresh command per call (members and ids that keep changing)."""
    counter = itertools.count()
    return {
        "GET": lambda: ("GET", "bench:string"),
        "HSET": lambda: ("HSET", "bench:hash", "field", VALUE),
        "ZADD": lambda: ("ZADD", "bench:zadd", next(counter), f"m{next(counter)}"),
        f"ZRANGE last 20 of {zset_size:,}": lambda: ("ZRANGE", "bench:zset", -20, -1),
        "XADD": lambda: ("XADD", "bench:stream", "*", "field", VALUE),
    }


def _bare(client: Any, op: str) -> Callable[[], Awaitable[Any]]:
    """The same op through redis.asyncio's own methods, as an application would call it."""
    counter = itertools.count()
    if op == "GET":
        return lambda: client.get("bench:string")
    if op == "HSET":
        return lambda: client.hset("bench:hash", "field", VALUE)
    if op == "ZADD":
        return lambda: client.zadd("bench:zadd", {f"m{next(counter)}": next(counter)})
    if op.startswith("ZRANGE"):
        return lambda: client.zrange("bench:zset", -20, -1)
    return lambda: client.xadd("bench:stream", {"field": VALUE})


async def _fill(driver: Driver, zset_size: int) -> None:
    await driver.execute([("DEL", "bench:zset", "bench:zadd", "bench:stream", "bench:hash")])
    await driver.execute([("SET", "bench:string", VALUE)])
    chunk = 10_000
    for start in range(0, zset_size, chunk):
        pairs: list[Any] = []
        for i in range(start, min(zset_size, start + chunk)):
            pairs += (i, f"member-{i:08d}")
        await driver.execute([("ZADD", "bench:zset", *pairs)])


def _against_fakeredis(report: Report, results: dict[str, dict[str, Stats]], baseline: str) -> None:
    """MemoryDriver's speed-up over one way of calling fakeredis, per op, and the target."""
    rows = []
    worst = float("inf")
    for op, stats in results.items():
        memory, fake = stats[MEMORY], stats[baseline]
        throughput = memory.ops_per_s / fake.ops_per_s
        worst = min(worst, throughput)
        p50, p99 = fake.p50 / memory.p50, fake.p99 / memory.p99
        rows.append([op, fmt_ratio(throughput), fmt_ratio(p50), fmt_ratio(p99)])
    report.text(f"Against {baseline}:")
    report.table(["op", f"throughput {TIMES}", f"p50 {TIMES}", f"p99 {TIMES}"], rows)
    report.headline(
        f"MemoryDriver throughput against {baseline}, every op",
        f"≥ {TARGET}{TIMES}",
        f"{fmt_ratio(worst)} on the slowest op",
        worst >= TARGET,
    )


def _call(driver: Driver, make: Callable[[], Command]) -> Callable[[], Awaitable[Any]]:
    execute = driver.execute
    return lambda: execute([make()])


async def run(env: Env) -> Report:
    report = Report(NAME, TITLE, env.out)
    report.text(__doc__.split("\n\n", 1)[1])
    zset_size = 10_000 if env.mode.quick else 100_000
    drivers: dict[str, Driver] = {MEMORY: MemoryDriver()}
    client = fake = None
    if note := missing("fakeredis", "lupa"):
        report.skip("fakeredis", note)
    else:
        import fakeredis

        from kvstore.drivers.redis import RedisDriver

        fake = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2)
        drivers[FAKE] = RedisDriver(fake, owns_client=True)
    if not missing("redis"):
        import redis.asyncio as aioredis

        from kvstore.drivers.redis import RedisDriver

        client = aioredis.Redis.from_url(env.fresh_redis(), protocol=2)
        drivers[DRIVER] = RedisDriver(client)
    try:
        for driver in drivers.values():
            await _fill(driver, zset_size)
        results: dict[str, dict[str, Stats]] = {}
        budget = env.mode.io
        for op, make in _ops(zset_size).items():
            contenders = [Contender(name, _call(d, make)) for name, d in drivers.items()]
            if fake is not None:
                contenders.append(Contender(FAKE_CLIENT, _bare(fake, op)))
            if client is not None:
                contenders.append(Contender(BARE, _bare(client, op)))
            results[op] = await interleave(contenders, budget)
    finally:
        for driver in drivers.values():
            await driver.aclose()
        if client is not None:
            await client.aclose()
    names = [*drivers, *([BARE] if client is not None else [])]
    if fake is not None:
        names.insert(1, FAKE_CLIENT)
    rows = []
    for op, stats in results.items():
        for name in names:
            s = stats[name]
            rows.append([op, name, fmt_time(s.p50), fmt_time(s.p99), fmt_int(s.ops_per_s)])
    report.heading("Per call")
    report.table(["op", "driver", "p50", "p99", "calls/s"], rows, left=2)
    if fake is not None:
        report.heading("MemoryDriver against fakeredis")
        for baseline in (FAKE_CLIENT, FAKE):
            _against_fakeredis(report, results, baseline)
    if BARE in names and DRIVER in names:
        report.heading("RedisDriver's own cost over bare redis.asyncio")
        report.table(
            ["op", "RedisDriver p50 / bare p50", "p99 / p99"],
            [
                [op, *map(fmt_ratio, stats[DRIVER].ratio_to(stats[BARE]))]
                for op, stats in results.items()
            ],
        )
    chart = "drivers.png"
    bar_chart(
        env.out / chart,
        title="calls per second, one command per call (higher is better)",
        groups=list(results),
        series={name: [results[op][name].ops_per_s for op in results] for name in names},
        ylabel="calls/s (log)",
        logy=True,
    )
    report.image(chart, "driver throughput")
    return report
