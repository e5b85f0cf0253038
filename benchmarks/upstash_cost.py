"""Section 3: what each operation costs on Upstash: HTTP requests and Redis commands.

Upstash bills per command and every HTTP request is a network round trip, so both matter.
Every public domain operation runs once through `UpstashDriver` against the local
Upstash-protocol server (`kvstore.upstash_server.UpstashServer`), which is backed by the
private Redis. Three numbers per operation:

* **requests**: HTTP requests the server received (its `stats.measure()`);
* **commands (top level)**: commands in those requests, as Upstash's REST endpoint sees
  them: a script call (`EVALSHA`) is one;
* **commands (server side)**: every command the Redis behind it ran, the commands inside
  scripts included (`INFO commandstats` deltas; `MULTI`/`EXEC` count too).

Each operation is warmed up first (so the `SCRIPT LOAD` that goes with a script's first
use, and the store's one-time layout check, are not counted: the first calls are shown
apart), then measured on its own. The dataset is stored beforehand through the domain
calls on `RedisDriver` (same Redis, same namespace).
"""

from __future__ import annotations

import itertools
from typing import Any

from benchmarks import _data
from benchmarks._env import Env, SkipSection, missing
from benchmarks._harness import Contender, Report, fmt_int, fmt_ratio, fmt_time, interleave
from benchmarks._workload import WORKFLOW, Dataset, operations, populate
from kvstore import Storage

NAME = "upstash"
TITLE = "3. Cost on Upstash: requests and commands per operation"

#: Mastra's `@mastra/upstash` 1.3.1, measured elsewhere at a local Upstash-protocol proxy:
#: (what was measured, requests, commands); None where the figure was not given.
MASTRA: dict[str, tuple[str, int | None, int]] = {
    "listThreads": ("listThreads, one resource with 1,000 threads stored", 2, 1_001),
    "listMessages": ("listMessages, last 20", 2, 1_023),
    "saveMessages": ("saveMessages of 2", 3, 10),
    "loadWorkflowSnapshot": ("loadWorkflowSnapshot", 3, 113),
    "listWorkflowRuns": ("listWorkflowRuns, one page with 200 runs stored", None, 201),
}
CHECKPOINTS = 100
#: Operations whose first call on a new Storage is shown (layout check and script load).
FIRST_CALLS = ("get_thread", "save_messages (2)", "list_messages (last 20)", "load_snapshot")


async def run(env: Env) -> Report:
    report = Report(NAME, TITLE, env.out)
    if note := missing("upstash_redis", "starlette", "uvicorn", "redis"):
        raise SkipSection(note)
    from kvstore.drivers.redis import RedisDriver
    from kvstore.drivers.upstash import UpstashDriver
    from kvstore.upstash_server import UpstashServer

    report.text(__doc__.split("\n\n", 1)[1])
    url = env.fresh_redis()
    counter = env.commands()
    size = Dataset.for_mode(env.mode.quick)
    report.text(
        f"Dataset: {size.threads:,} threads of one resource, a thread of {size.messages:,} "
        f"messages, {size.runs:,} workflow runs, {size.scores:,} scores, {size.traces:,} "
        "traces of 10 spans. Page sizes: 20."
    )
    async with RedisDriver.from_url(url) as loader:
        await populate(Storage(loader), size)
    rows: list[list[Any]] = []
    kv_cost: dict[str, tuple[int, int, int]] = {}
    async with UpstashServer(backing=url) as server:
        store = Storage(UpstashDriver(server.url, server.token), owns_driver=True)
        try:
            more: list[str] = []
            for op in operations(size):
                if op.prepare is not None:
                    await op.prepare(store)
                await op.call(store)  # warm-up: the script is cached from here on
                if op.prepare is not None:
                    await op.prepare(store)
                before = counter.total()
                with server.stats.measure() as usage:
                    await op.call(store)
                inside = counter.total() - before
                cost = (usage.total_requests, usage.total_commands, inside)
                if op.mastra:
                    kv_cost[op.mastra] = cost
                rows.append([f"{op.domain}.{op.name}", *map(fmt_int, cost)])
                if usage.total_requests != op.requests:
                    more.append(f"{op.domain}.{op.name} ({usage.total_requests})")
            two = [f"{op.domain}.{op.name}" for op in operations(size) if op.requests == 2]
            report.headline(
                "every domain operation is one HTTP request on Upstash",
                f"1 request each; 2 for {', '.join(two)}",
                "as documented"
                if not more
                else f"{len(rows) - len(more)} of {len(rows)} as documented; not: "
                + ", ".join(more),
                not more,
            )
            report.heading("kvstore, every domain operation")
            report.table(
                ["operation", "requests", "commands (top level)", "commands (server side)"], rows
            )
            await _first_calls(report, server, counter, size)
            _mastra_table(report, kv_cost, size)
            await _langgraph(report, env, server, store)
            await _langgraph_store(report, server, counter, store)
        finally:
            await store.aclose()
    return report


async def _first_calls(report: Report, server: Any, counter: Any, size: Dataset) -> None:
    """The first call of a new Storage: its layout check, and scripts the driver loads."""
    from kvstore.drivers.upstash import UpstashDriver

    report.heading("The first call of a new Storage")
    rows = []
    for op in operations(size):
        if op.name not in FIRST_CALLS or op.prepare is not None:
            continue
        store = Storage(UpstashDriver(server.url, server.token), owns_driver=True)
        try:
            before = counter.total()
            with server.stats.measure() as usage:
                await op.call(store)
            inside = counter.total() - before
        finally:
            await store.aclose()
        rows.append(
            [
                f"{op.domain}.{op.name}",
                *map(fmt_int, (usage.total_requests, usage.total_commands, inside)),
            ]
        )
    report.text(
        "Each row is the very first call of a new `Storage` on a new `UpstashDriver`. Before "
        "it, once per `Storage`, the store checks the namespace's layout record (`SET ... NX "
        "GET` and `EXISTS` of the layout-1 index keys, one request of two commands; see "
        "`kvstore.layout`). A script the driver has not sent yet travels with a `SCRIPT LOAD` "
        "of its source ahead of it in the same request (one more command). Every later call "
        "costs what the table above says."
    )
    report.table(["first call", "requests", "commands (top level)", "commands (server side)"], rows)


def _mastra_table(report: Report, kv: dict[str, tuple[int, int, int]], size: Dataset) -> None:
    report.heading("Side by side with Mastra (`@mastra/upstash` 1.3.1)")
    report.text(
        "Mastra's figures were **measured elsewhere**, at a local Upstash-protocol proxy, "
        "not in this run (Mastra is TypeScript); they are quoted from the Upstash issue. "
        f"kvstore's are from this run, with {size.threads:,} threads, {size.messages:,} "
        f"messages and {size.runs:,} runs stored: its costs do not depend on those numbers "
        "(see the scaling section), Mastra's grow with them."
    )
    rows = []
    for key, (what, requests, commands) in MASTRA.items():
        if key not in kv:
            continue
        kv_req, kv_top, kv_inside = kv[key]
        rows.append(
            [
                what,
                "—" if requests is None else fmt_int(requests),
                fmt_int(commands),
                fmt_int(kv_req),
                fmt_int(kv_top),
                fmt_int(kv_inside),
                fmt_ratio(commands / kv_inside),
            ]
        )
    report.table(
        [
            "operation",
            "Mastra requests",
            "Mastra commands",
            "kvstore requests",
            "kvstore commands (top level)",
            "kvstore commands (server side)",
            "Mastra / kvstore commands",
        ],
        rows,
    )
    for key, (what, requests, commands) in MASTRA.items():
        if key in kv:
            report.headline(
                f"Upstash: {what}",
                "context (Mastra measured elsewhere)",
                f"kvstore {_n(kv[key][0], 'request')}, {_n(kv[key][2], 'command')}; Mastra "
                + ("" if requests is None else f"{_n(requests, 'request')}, ")
                + f"{_n(commands, 'command')}",
                None,
            )


async def _langgraph(report: Report, env: Env, server: Any, store: Storage) -> None:
    """langgraph-checkpoint-upstash-redis against the same server: saves and loads."""
    report.heading("Workflow state: kvstore against langgraph-checkpoint-upstash-redis")
    if note := missing("langgraph.checkpoint.upstash_redis"):
        report.skip("langgraph-checkpoint-upstash-redis", note)
        return
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.upstash_redis.aio import AsyncUpstashRedisSaver
    from upstash_redis.asyncio import Redis as UpstashClient

    counter = env.commands()
    saver = AsyncUpstashRedisSaver(UpstashClient(url=server.url, token=server.token))
    snapshot = _data.snapshot(5_000)
    config: Any = {"configurable": {"thread_id": "bench-thread", "checkpoint_ns": ""}}
    versions = itertools.count(1)

    def checkpoint() -> Any:
        cp = empty_checkpoint()
        cp["channel_values"] = {"state": snapshot}
        cp["channel_versions"] = {"state": next(versions)}
        return cp

    async def lg_save() -> None:
        await saver.aput(config, checkpoint(), {"source": "loop", "step": 1}, {})

    async def lg_load() -> None:
        await saver.aget_tuple(config)

    async def kv_save() -> None:
        await store.workflows.persist_snapshot(WORKFLOW, "lg-compare", snapshot)

    async def kv_load() -> None:
        await store.workflows.load_snapshot(WORKFLOW, "lg-compare")

    try:
        for _ in range(CHECKPOINTS):
            await lg_save()
        await kv_save()
        rows = []
        for label, call in (
            ("langgraph aput (save a 5 KB checkpoint)", lg_save),
            ("langgraph aget_tuple (load the latest)", lg_load),
            ("kvstore persist_snapshot (5 KB, existing run)", kv_save),
            ("kvstore load_snapshot", kv_load),
        ):
            before = counter.total()
            with server.stats.measure() as usage:
                await call()
            rows.append(
                [
                    label,
                    fmt_int(usage.total_requests),
                    fmt_int(usage.total_commands),
                    fmt_int(counter.total() - before),
                ]
            )
        stats = {}
        for op, pair in (
            ("save", (("kvstore", kv_save), ("langgraph", lg_save))),
            ("load", (("kvstore", kv_load), ("langgraph", lg_load))),
        ):
            stats[op] = await interleave([Contender(n, c) for n, c in pair], env.mode.io)
    finally:
        await saver.client.close()
    report.text(
        f"The langgraph thread holds {CHECKPOINTS} checkpoints before measuring (a run of "
        f"{CHECKPOINTS} steps); `aget_tuple` lists every checkpoint id of the thread "
        "(`ZRANGEBYLEX - +`) to find the latest, so its reply grows with the run. LangGraph "
        "also calls `aput_writes` once per task per step, not counted here."
    )
    report.table(["call", "requests", "commands (top level)", "commands (server side)"], rows)
    lat_rows = []
    for op, s in stats.items():
        p50, p99 = s["langgraph"].ratio_to(s["kvstore"])
        lat_rows.append(
            [
                op,
                fmt_time(s["kvstore"].p50),
                fmt_time(s["langgraph"].p50),
                fmt_ratio(p50),
                fmt_ratio(p99),
            ]
        )
    report.text("Latency through the local server (HTTP on loopback), interleaved:")
    report.table(
        ["op", "kvstore p50", "langgraph p50", "langgraph / kvstore p50", "p99 ratio"], lat_rows
    )


#: Items the long-term store section stores, spread over this many namespaces.
STORE_ITEMS, STORE_NAMESPACES = 1_000, 10


async def _langgraph_store(report: Report, server: Any, counter: Any, store: Storage) -> None:
    """The long-term store (``store.langgraph_items.batch``, what ``KVStoreStore`` sends)."""
    from kvstore.records import GetItem, ListNamespaces, PutItem, SearchItems

    report.heading("LangGraph long-term store (KVStoreStore)")
    items = store.langgraph_items
    for first in range(0, STORE_ITEMS, 200):
        await items.batch(
            [
                PutItem(
                    namespace=("memories", f"user-{i % STORE_NAMESPACES}"),
                    key=f"item-{i}",
                    value={"kind": ("note", "fact")[i % 2], "topic": f"t{i % 5}", "i": i},
                )
                for i in range(first, first + 200)
            ]
        )
    user = ("memories", "user-1")
    new = [PutItem(namespace=("x",), key="k", value={}, ttl=5)]
    delete = [PutItem(namespace=("x",), key="k", value=None)]
    # (call, its operations, unmeasured operations before each run of it)
    calls: list[tuple[str, list[Any], list[Any]]] = [
        ("get", [GetItem(namespace=user, key="item-1")], []),
        (
            "put (existing item)",
            [PutItem(namespace=user, key="item-1", value={"kind": "note", "topic": "t1"})],
            [],
        ),
        ("put (new namespace, TTL)", new, delete),
        ("put (value None: delete)", delete, new),
        ("search (namespace, page of 10)", [SearchItems(namespace_prefix=user, limit=10)], []),
        (
            "search (prefix, filter, page of 10)",
            [SearchItems(namespace_prefix=("memories",), filter={"kind": "note"}, limit=10)],
            [],
        ),
        (
            "search (prefix, 2 filters, page of 10)",
            [
                SearchItems(
                    namespace_prefix=("memories",),
                    filter={"kind": "note", "topic": "t2"},
                    limit=10,
                )
            ],
            [],
        ),
        ("list_namespaces (page of 100)", [ListNamespaces()], []),
        (
            "batch: 2 gets, a put, a search",
            [
                GetItem(namespace=user, key="item-1"),
                GetItem(namespace=("memories", "user-2"), key="item-2"),
                PutItem(namespace=user, key="new", value={"kind": "fact"}),
                SearchItems(namespace_prefix=user, limit=10),
            ],
            [],
        ),
    ]
    rows = []
    for name, ops, prepare in calls:
        for _ in range(2):
            if prepare:
                await items.batch(prepare)
            await items.batch(ops)  # warm-up: the script is cached from here on
        if prepare:
            await items.batch(prepare)
        before = counter.total()
        with server.stats.measure() as usage:
            await items.batch(ops)
        inside = counter.total() - before
        cost = (usage.total_requests, usage.total_commands, inside)
        rows.append([name, *map(fmt_int, cost)])
    report.text(
        f'{STORE_ITEMS:,} items in {STORE_NAMESPACES} namespaces `("memories", user)`, one '
        "bucket (a single server). Each batch is one script call per bucket it touches."
    )
    report.table(["call", "requests", "commands (top level)", "commands (server side)"], rows)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
