"""Section 14: LangGraph checkpointers: KVStoreSaver against its peers, side by side.

`kvstore.integrations.langgraph.KVStoreSaver` on `RedisDriver`, langgraph-checkpoint-plainredis's
`AsyncRedisSaver` (the two share one `redis.asyncio` client, RESP2, to the run's private
Redis), LangGraph's own `AsyncPostgresSaver` (at 127.0.0.1:5432, trust auth, database
`test`, when one answers there) and, through the local Upstash-protocol server backed by the
same Redis, langgraph-checkpoint-upstash-redis's `AsyncUpstashRedisSaver` against
KVStoreSaver on `UpstashDriver`. All are timed in the same rounds, interleaved, with a bare
`GET` of a 2 KB value: the baseline of every ratio.

The workload is what a graph writes: a checkpoint of five channels (about 2 KB of values in
all), of which each step changes one, so `aput` stores one new channel value and refers to
the other four. Every saver's thread holds 100 checkpoints before timing starts:

* **aput**: the next step's checkpoint (its metadata: source, step, parents);
* **aget_tuple**: the latest checkpoint of the thread, with its values and pending writes;
* **alist(limit=10)**: the newest ten checkpoints.

Then KVStoreSaver alone: its commands, round trips and latency as the thread grows from 10
to 10,000 checkpoints (1,000 in `--quick` mode).
"""

from __future__ import annotations

import contextlib
import itertools
from typing import TYPE_CHECKING, Any

from benchmarks._env import Env, SkipSection, missing
from benchmarks._harness import Contender, Report, Stats, fmt_int, fmt_ratio, fmt_time, interleave
from kvstore import Storage
from kvstore.drivers.base import Driver

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from kvstore.drivers.base import Command, Reply

NAME = "langgraph"
TITLE = "14. LangGraph checkpointers: KVStoreSaver against its peers"

BASELINE = "redis.asyncio GET (2 KB)"
KV = "kvstore KVStoreSaver (Redis)"
PLAIN = "langgraph-checkpoint-plainredis"
POSTGRES = "AsyncPostgresSaver"
KV_UPSTASH = "kvstore KVStoreSaver (Upstash)"
UPSTASH = "langgraph-checkpoint-upstash-redis"
APUT, GET, LIST = "aput", "aget_tuple", "alist(limit=10)"
OPS = (APUT, GET, LIST)
TARGETS = {APUT: 1.5, GET: 1.5, LIST: 3.0}
PRIOR = 100
CHANNELS = ("messages", "plan", "notes", "tool_calls", "scratch")
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


class Graph:
    """A graph's thread on one saver: each step changes one of five channels."""

    def __init__(self, saver: Any, thread_id: str) -> None:
        self.saver = saver
        self.thread = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        self.config: dict[str, Any] = dict(self.thread)
        self.versions: dict[str, Any] = {}
        self.values: dict[str, Any] = {
            c: {"channel": c, "text": "x" * 360, "step": 0} for c in CHANNELS
        }
        self.steps = itertools.count()
        self.count = 0

    async def step(self) -> None:
        from langgraph.checkpoint.base import empty_checkpoint
        from langgraph.checkpoint.base.id import uuid6

        n = next(self.steps)
        changed = CHANNELS if n == 0 else (CHANNELS[n % len(CHANNELS)],)
        for channel in changed:
            self.versions[channel] = self.saver.get_next_version(self.versions.get(channel), None)
            self.values[channel] = {**self.values[channel], "step": n}
        checkpoint = {
            **empty_checkpoint(),
            "id": str(uuid6(clock_seq=n)),
            "channel_values": dict(self.values),
            "channel_versions": dict(self.versions),
        }
        metadata = {"source": "loop", "step": n, "parents": {}}
        self.config = await self.saver.aput(
            self.config, checkpoint, metadata, {c: self.versions[c] for c in changed}
        )
        self.count += 1

    async def latest(self) -> Any:
        return await self.saver.aget_tuple(self.thread)

    async def page(self) -> int:
        return len([t async for t in self.saver.alist(self.thread, limit=10)])

    def calls(self) -> dict[str, Callable[[], Awaitable[Any]]]:
        return {APUT: self.step, GET: self.latest, LIST: self.page}


@contextlib.asynccontextmanager
async def _postgres() -> AsyncIterator[Any]:
    """LangGraph's AsyncPostgresSaver on its own tables, or None when Postgres is not here."""
    if missing("langgraph.checkpoint.postgres", "psycopg"):
        yield None
        return
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    try:
        manager = AsyncPostgresSaver.from_conn_string(POSTGRES_URL)
        saver = await manager.__aenter__()
    except Exception:  # any failure to connect means: no Postgres here
        yield None
        return
    try:
        await saver.setup()
        yield saver
    finally:
        await manager.__aexit__(None, None, None)


async def run(env: Env) -> Report:
    report = Report(NAME, TITLE, env.out)
    if note := missing("redis", "langgraph.checkpoint.base"):
        raise SkipSection(note)
    import redis.asyncio as aioredis

    from kvstore.drivers.redis import RedisDriver
    from kvstore.integrations.langgraph import KVStoreSaver

    report.text(__doc__.split("\n\n", 1)[1])
    url = env.fresh_redis()
    client = aioredis.Redis.from_url(url, protocol=2)
    results: dict[str, dict[str, Stats]] = {}
    upstash_rows: list[list[Any]] = []
    skipped: list[tuple[str, str]] = []
    try:
        await client.set("bench:get", b"v" * 2048)
        store = Storage(RedisDriver(client), namespace="lg")
        graphs: dict[str, Graph] = {KV: Graph(KVStoreSaver(store), "bench-kv")}
        if note := missing("langgraph_checkpoint_plainredis"):
            skipped.append((PLAIN, note))
        else:
            from langgraph_checkpoint_plainredis import AsyncRedisSaver

            graphs[PLAIN] = Graph(AsyncRedisSaver(client, prefix="plain"), "bench-plain")
        async with contextlib.AsyncExitStack() as stack:
            postgres = await stack.enter_async_context(_postgres())
            if postgres is None:
                skipped.append((POSTGRES, f"no Postgres answers at {POSTGRES_URL}"))
            else:
                await postgres.adelete_thread("bench-postgres")
                graphs[POSTGRES] = Graph(postgres, "bench-postgres")
            server = await stack.enter_async_context(_upstash_server(url, skipped))
            if server is not None:
                from kvstore.drivers.upstash import UpstashDriver

                kv_upstash = Storage(UpstashDriver(server.url, server.token), namespace="lgu")
                stack.push_async_callback(kv_upstash.aclose)
                graphs[KV_UPSTASH] = Graph(KVStoreSaver(kv_upstash), "bench-kv-upstash")
                if note := missing("langgraph.checkpoint.upstash_redis"):
                    skipped.append((UPSTASH, note))
                else:
                    from langgraph.checkpoint.upstash_redis.aio import AsyncUpstashRedisSaver
                    from upstash_redis.asyncio import Redis as UpstashClient

                    peer = AsyncUpstashRedisSaver(UpstashClient(url=server.url, token=server.token))
                    stack.push_async_callback(peer.client.close)
                    graphs[UPSTASH] = Graph(peer, "bench-upstash")
            for graph in graphs.values():
                for _ in range(PRIOR):
                    await graph.step()
            baseline = Contender(BASELINE, lambda: client.get("bench:get"))
            for op in OPS:
                contenders = [baseline] + [
                    Contender(name, graph.calls()[op]) for name, graph in graphs.items()
                ]
                results[op] = await interleave(contenders, env.mode.io)
            if server is not None:
                for name in (KV_UPSTASH, UPSTASH):
                    if name in graphs:
                        upstash_rows.append([name, *await _requests(server, graphs[name])])
        flat = await _flatness(env, report, store, KVStoreSaver)
    finally:
        await client.aclose()

    names = [
        BASELINE,
        *[n for n in (KV, PLAIN, POSTGRES, KV_UPSTASH, UPSTASH) if n in results[APUT]],
    ]
    report.heading(
        f"p50 and p99 as a ratio to a bare GET of 2 KB in the same rounds, threads of "
        f"{PRIOR} checkpoints and more (the GET row: its own p50 and p99)"
    )
    rows = []
    for name in names:
        row = [name]
        for op in OPS:
            s, base = results[op][name], results[op][BASELINE]
            p50, p99 = s.ratio_to(base)
            tail = fmt_time(s.p99) if name == BASELINE else fmt_ratio(p99)
            row += [f"**{fmt_ratio(p50)}** ({fmt_time(s.p50)})", tail]
        rows.append(row)
    report.table(["contender", *[x for op in OPS for x in (f"{op} p50", "p99")]], rows)
    for what, why in skipped:
        report.skip(what, why)
    report.text(
        "Samples per contender: "
        + ", ".join(f"{op}: {results[op][KV].n}" for op in OPS)
        + ". The Upstash rows go through HTTP on loopback to the local server: compare them "
        "with each other, not with the GET."
    )
    if upstash_rows:
        report.heading("Requests per call on Upstash (the local server counts them)")
        report.table(["saver", *OPS], upstash_rows)
    for op in OPS:
        kv = results[op][KV].p50 / results[op][BASELINE].p50
        report.headline(
            f"KVStoreSaver {op} on RedisDriver",
            f"at most {TARGETS[op]} times a GET of 2 KB (p50)",
            f"{fmt_ratio(kv)}",
            kv <= TARGETS[op],
        )
    report.headline(*flat)
    return report


class _Counting(Driver):
    """Passes every request to ``inner`` and counts the round trips."""

    def __init__(self, inner: Driver) -> None:
        self.inner = inner
        self.round_trips = 0

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        self.round_trips += 1
        return await self.inner.execute(commands, atomic=atomic, idempotent=idempotent)


@contextlib.asynccontextmanager
async def _upstash_server(url: str, skipped: list[tuple[str, str]]) -> AsyncIterator[Any]:
    if note := missing("upstash_redis", "starlette", "uvicorn"):
        skipped.append((KV_UPSTASH, note))
        skipped.append((UPSTASH, note))
        yield None
        return
    from kvstore.upstash_server import UpstashServer

    async with UpstashServer(backing=url) as server:
        yield server


async def _requests(server: Any, graph: Graph) -> list[str]:
    out = []
    for op in OPS:
        with server.stats.measure() as usage:
            await graph.calls()[op]()
        out.append(fmt_int(usage.total_requests))
    return out


async def _flatness(
    env: Env, report: Report, store: Storage, saver_class: Any
) -> tuple[str, str, str, bool]:
    """KVStoreSaver's commands, round trips and p50 as its thread grows."""
    counting = _Counting(store.driver)
    counted = Storage(counting, namespace="lg")
    await counted.keys()
    graph = Graph(saver_class(counted), "bench-growing")
    counter = env.commands()
    sizes = [10, 1_000] if env.mode.quick else [10, 100, 1_000, 10_000]
    rows = []
    p50s: dict[int, dict[str, float]] = {}
    one_trip = True
    for size in sizes:
        while graph.count < size:
            await graph.step()
        commands, trips = [], []
        for op in OPS:
            before, trips_before = counter.total(), counting.round_trips
            await graph.calls()[op]()
            commands.append(counter.total() - before)
            trips.append(counting.round_trips - trips_before)
        one_trip &= all(t == 1 for t in trips)
        stats = await interleave([Contender(op, graph.calls()[op]) for op in OPS], env.mode.io)
        p50s[size] = {op: stats[op].p50 for op in OPS}
        rows.append(
            [f"{size:,}", *[f"{c} / {t}" for c, t in zip(commands, trips, strict=True)],
             *[fmt_time(p50s[size][op]) for op in OPS]]
        )  # fmt: skip
    report.heading("KVStoreSaver as its thread grows (commands / round trips per call, p50)")
    report.table(
        ["checkpoints", *[f"{op} cmds / trips" for op in OPS], *[f"{op} p50" for op in OPS]],
        rows,
    )
    spread = max(p50s[sizes[-1]][op] / p50s[sizes[0]][op] for op in OPS)
    same = len({tuple(r[1:4]) for r in rows}) == 1
    return (
        f"KVStoreSaver flat from {sizes[0]:,} to {sizes[-1]:,} checkpoints in a thread",
        "same commands, one round trip per call",
        f"commands {'the same' if same else 'differ'}; "
        f"{'one round trip each' if one_trip else 'more round trips'}; "
        f"p50 at most {fmt_ratio(spread)} the smallest thread's",
        same and one_trip,
    )
