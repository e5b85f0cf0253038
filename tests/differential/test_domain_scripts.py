"""Every domain script, run by the memory driver's Lua and by real Redis on the same inputs.

A workload drives the public API (every domain, every call that runs a script, on one
bucket and on several) over a memory driver that records each batch it is sent: the
domain scripts' ``EVALSHA`` commands with the very keys and arguments the domains built,
and the plain commands around them. The recording is then replayed, batch by batch, on a
fresh memory driver and on a real Redis server: every reply must be the same, and so must
the whole keyspace after each step of the workload. A test also checks that the workload
runs every script kvstore registers, so a new script cannot escape the comparison.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

import kvstore
from kvstore import (
    DateRange,
    Include,
    Message,
    MessagePatch,
    Resource,
    Score,
    Span,
    SpanEvent,
    SpanStatus,
    Storage,
    Thread,
    TraceRetention,
    WorkflowRun,
)
from kvstore.domains import langgraph_items
from kvstore.domains._lua import PRELUDE
from kvstore.drivers import Driver, MemoryDriver
from kvstore.drivers.base import _REGISTRY, Command, Reply
from kvstore.drivers.redis import RedisDriver
from kvstore.errors import (
    BatchError,
    CommandError,
    ConflictError,
    NotFoundError,
    TransactionAbortedError,
)
from kvstore.records import GetItem, ListNamespaces, PutItem, SearchItems
from tests.conftest import flush_db
from tests.differential.machine import normalise
from tests.transfer.dataset import WEIRD, fill

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def domain_scripts() -> dict[str, str]:
    """The scripts the domains registered (sha -> name); tests register scripts of their
    own, which do not start with the domains' prelude."""
    assert kvstore.__all__
    return {sha: s.name for sha, s in _REGISTRY.items() if s.lua.startswith(PRELUDE)}


class Recorder(Driver):
    """A memory driver that keeps every batch it runs, with its atomicity."""

    def __init__(self) -> None:
        self.inner = MemoryDriver()
        self.batches: list[tuple[list[Command], bool]] = []

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        self.batches.append((list(commands), atomic))
        return await self.inner.execute(commands, atomic=atomic)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def _memory_calls(store: Storage) -> None:
    memory = store.memory
    await memory.save_resource(Resource(id="alice", working_memory="w", metadata={"a": 1}))
    await memory.update_resource("alice", working_memory="w2", metadata={"b": 2})
    await memory.update_resource("bob", metadata={"new": True})
    for i, tid in enumerate(["t1", "t2", *WEIRD[:3]]):
        await memory.save_thread(
            Thread(id=tid, resource_id="alice" if i % 2 else "bob", created_at=_at(i))
        )
    await memory.save_thread(Thread(id="t2", resource_id="carol", title="moved"))
    await memory.update_thread("t1", title="renamed", metadata={"k": [1, 2]})
    batch = [
        Message(
            id=f"m{i}",
            thread_id="t1" if i < 6 else "t2",
            role="user" if i % 2 else "assistant",
            content={"text": f"hello {i}", "n": i},
            created_at=_at(100 + i // 2),  # equal timestamps in pairs
        )
        for i in range(10)
    ]
    await memory.save_messages(batch)
    await memory.save_messages([Message(id="m1", thread_id="t2", role="user", content="moved")])
    await memory.save_messages([batch[2]])  # saved again, unchanged
    await memory.update_messages([MessagePatch(id="m3", content="edited", metadata={"x": 1})])
    with pytest.raises(NotFoundError):
        await memory.update_messages([MessagePatch(id="m5", content="x"), MessagePatch(id="no")])
    await memory.list_messages("t1", last=3, include=[Include(message_id="m7", before=1, after=1)])
    await memory.list_messages("t1", page=0, per_page=2, date_range=DateRange(start=_at(101)))
    await memory.list_threads("alice", order_by="updated_at", direction="asc")
    await memory.get_messages(["m1", "m4", "nope"])
    await memory.delete_messages(["m4", "m8", "nope"])
    await memory.pop_message("t1")
    await memory.pop_message("nope")
    await memory.delete_thread(WEIRD[0])
    await memory.export_threads(count=2)
    await memory.export_resources(count=2)
    await memory.restore_threads([Thread(id="restored", resource_id="dora", title="r")])
    await memory.restore_messages(
        [Message(id="rm", thread_id="restored", role="user", content="r", created_at=_at(5))]
    )
    await memory.restore_resources([Resource(id="dora", working_memory="restored")])
    # Issue 12: metadata filters, moves, clones.
    await memory.save_thread(
        Thread(id="meta", resource_id="erin", metadata={"p": "x", "n": 1, "deep": [1]})
    )
    await memory.update_thread("meta", metadata={"n": None, "q": True})
    await memory.update_thread("t2", metadata={"p": "x"})
    await memory.list_threads(metadata={"p": "x", "q": True}, order_by="updated_at")
    await memory.list_threads("erin", metadata={"p": "x"})
    await memory.move_thread("t1", "erin")
    await memory.clone_thread("t1", "cloned", title="c", message_limit=2)
    await memory.clone_thread("t2", WEIRD[3], resource_id="erin", message_ids=["m1", "m9"])
    await memory.list_messages_merged(resource_id="erin", direction="desc")


async def _workflow_calls(store: Storage) -> None:
    wf = store.workflows
    for i in range(6):
        await wf.persist_snapshot(
            f"wf{i % 2}",
            f"run-{i}",
            {"step": i},
            resource_id=f"user-{i % 3}",
            status=("running", "suspended")[i % 2],
            created_at=_at(i),
        )
    version = await wf.persist_snapshot("wf0", "run-0", {"step": "again"}, status="suspended")
    with pytest.raises(ConflictError):
        await wf.persist_snapshot("wf0", "run-0", {}, expected_version=version + 5)
    await wf.update_run("wf1", "run-1", status="done", result={"ok": True})
    await wf.update_run("wf1", "run-1", error={"message": "late"}, expected_version=None)
    await wf.list_runs("wf1", status="done")
    await wf.list_runs(resource_id="user-0", from_date=_at(0), to_date=_at(3))
    await wf.get_run("run-2")
    await wf.update_step_result("wf1", "run-1", "fetch", {"ok": 1}, status="running")
    await wf.update_step_result("wf1", "run-1", "a.b", [2])
    with pytest.raises(NotFoundError):
        await wf.update_step_result("wf1", "missing", "fetch", 1)
    await wf.list_runs("wf1", with_snapshot=True)
    hour = timedelta(hours=1)
    token = await wf.claim_run("wf1", "run-1", "worker-a", hour)
    assert await wf.claim_run("wf1", "run-1", "worker-a", hour) == token
    with pytest.raises(ConflictError):
        await wf.claim_run("wf1", "run-1", "worker-b", hour)
    with pytest.raises(NotFoundError):
        await wf.claim_run("wf1", "missing", "worker-b", hour)
    await wf.renew_run("wf1", "run-1", token, hour)
    await wf.update_run("wf1", "run-1", status="leased", fencing_token=token)
    with pytest.raises(ConflictError):
        await wf.persist_snapshot("wf1", "run-1", {}, fencing_token=token + 1)
    assert await wf.release_run("wf1", "run-1", token) is True
    with pytest.raises(ConflictError):
        await wf.renew_run("wf1", "run-1", token, hour)
    await wf.claim_run("wf0", "run-2", "worker-b", hour)
    await wf.delete_run("wf0", "run-2")
    await wf.persist_snapshot("wf0", "run-2", {"again": True}, created_at=_at(2))
    await wf.delete_runs(older_than=_at(2), workflow_name="wf0")
    await wf.delete_runs(older_than=_at(4), status="suspended")
    await wf.delete_run("wf0", "run-4")
    await wf.export_runs(count=2)
    await wf.restore_runs(
        [
            WorkflowRun(
                workflow_name="wf9",
                run_id="restored",
                snapshot={"s": 1},
                version=7,
                status="done",
                created_at=_at(50),
                updated_at=_at(51),
                steps={"s": {"out": 1}},
            )
        ]
    )


async def _eval_calls(store: Storage) -> None:
    evals = store.evals
    for i in range(6):
        await evals.save_score(
            Score(
                id=f"s{i}",
                scorer_id=f"scorer-{i % 2}",
                score=i / 3,
                run_id=f"run-{i % 2}",
                entity_type="agent",
                entity_id=f"a{i % 3}",
                trace_id="trace-1",
                span_id=f"span-{i % 2}",
                source=("live", "test")[i % 2],
                created_at=_at(i),
            )
        )
    await evals.save_score(Score(id="s1", scorer_id="other", score=0.5, run_id="run-9"))
    # Sums whose partials cancel and underflow; -0.0 next to 0.0.
    for i, value in enumerate([1e16, 1.0, -1e16, 0.1, 5e-324, -0.0, 0.0]):
        await evals.save_score(
            Score(id=f"v{i}", scorer_id="scorer-0", score=value, created_at=_at(i * 1200))
        )
    await evals.save_score(
        Score(
            id="m1",
            scorer_id="scorer-0",
            score=0.5,
            metadata={"model": "gpt-4o", "n": 1, "": WEIRD[1], WEIRD[2]: True, "x": {"y": 1}},
            created_at=_at(5),
        )
    )
    await evals.save_score(
        Score(id="m1", scorer_id="scorer-1", score=0.5, metadata={"model": "b"}, created_at=_at(6))
    )
    await evals.list_scores(metadata={"model": "b"}, scorer_id="scorer-1", from_date=_at(0))
    await evals.delete_score("v0")
    await evals.save_score(Score(id="v1", scorer_id="scorer-0", score=-3.5, created_at=_at(2)))
    await evals.score_stats("scorer-0", from_date=_at(0), to_date=_at(9000))
    await evals.score_stats("scorer-0", from_date=_at(0), to_date=_at(9000), bucket="day")
    await evals.list_scores(scorer_id="scorer-0", from_date=_at(1), to_date=_at(60))
    await evals.list_scores(min_score=0.0, max_score=1, source="live", per_page=3)
    await evals.list_scores(scorer_id="scorer-0", entity=("agent", "a0"), source="live")
    await evals.list_scores(run_id="run-1")
    await evals.list_scores(span=("trace-1", "span-0"))
    await evals.delete_score("s2")
    await evals.delete_score("nope")
    await evals.export_scores(count=2)
    await evals.restore_scores([Score(id="r", scorer_id="x", score=1, created_at=_at(9))])


def _spans(trace_id: str, start: datetime, count: int) -> list[Span]:
    root = f"{trace_id}-root"
    return [
        Span(
            trace_id=trace_id,
            span_id=root if n == 0 else f"{trace_id}-{n}",
            parent_span_id=None if n == 0 else root,
            name="agent.run" if n == 0 else "tool.call",
            scope="tests",
            start_time=start + timedelta(milliseconds=n),
            end_time=start + timedelta(milliseconds=n + 5),
            attributes={"user.id": f"user-{n % 2}", "n": n},
        )
        for n in range(count)
    ]


async def _trace_calls(store: Storage) -> None:
    traces = store.traces
    # Children before their parents, as exporters deliver them.
    await traces.save_spans(list(reversed(_spans("tr-1", _at(0), 4))))
    await traces.save_spans(_spans("tr-2", _at(10), 3) + _spans(WEIRD[1], _at(20), 2))
    await traces.save_spans(_spans("tr-1", _at(0), 6)[4:])  # the rest of a trace
    await traces.list_traces(name="agent.run", attributes={"user.id": "user-0"})
    await traces.list_traces(from_date=_at(5), to_date=_at(30))
    await traces.get_trace("tr-1")
    await traces.get_span("tr-1", "tr-1-2")
    await traces.get_root_span("tr-1")
    await traces.get_root_span("nope")
    await traces.update_span(
        "tr-1",
        "tr-1-root",
        name="agent.done",
        end_time=_at(9),
        status=SpanStatus(code="error"),
        attributes={"user.id": "user-9", "tags": ["a"]},
        events=[SpanEvent(name="e", timestamp=_at(1))],
    )
    await traces.update_span("tr-1", "tr-1-2", events=[SpanEvent(name="e", timestamp=_at(2))])
    await traces.update_span("tr-1", "nope", end_time=_at(9))
    await traces.list_traces(has_error=True)
    await traces.export_spans(count=3)
    await traces.delete_traces(["tr-2", "nope"])
    await traces.apply_retention()


async def _retention_calls(store: Storage) -> None:
    traces = store.traces
    for i in range(6):
        await traces.save_spans(_spans(f"old-{i}", _at(i), 2))
    await traces.apply_retention()


async def _langgraph_items_calls(store: Storage) -> None:
    items = store.langgraph_items
    clock = [_at(0)]
    real_now = langgraph_items.utc_now
    langgraph_items.utc_now = lambda: clock[0]  # time moves without waiting
    try:
        await items.batch(
            [
                PutItem(namespace=("m", w), key=f"k{i}", value={"kind": i % 2, "w": w}, ttl=1)
                for i, w in enumerate(WEIRD[:4])
            ]
            + [PutItem(namespace=("m",), key="long", value={"text": "x" * 100, "n": 1.0})]
        )
        await items.batch(
            [
                GetItem(namespace=("m", WEIRD[0]), key="k0"),
                SearchItems(namespace_prefix=("m",), filter={"kind": 1, "w": WEIRD[1]}),
                ListNamespaces(prefix=("m",), max_depth=2),
                ListNamespaces(suffix=(WEIRD[2],)),
                PutItem(namespace=("m",), key="long", value={"text": "y", "n": 2}),
                PutItem(namespace=("m", WEIRD[3]), key="k3", value=None),
            ]
        )
        chunk = await items.export_items(count=10)
        await items.restore_items(chunk.items)  # times as exported
        clock[0] = _at(120)  # the TTL items expire: the next calls purge them
        await items.batch([SearchItems(namespace_prefix=(), limit=5), ListNamespaces()])
    finally:
        langgraph_items.utc_now = real_now


async def _checkpoint_calls(store: Storage) -> None:
    cps = store.checkpoints
    binary = ("msgpack", bytes(range(256)))
    for thread in ["lg-1", WEIRD[1], WEIRD[2]]:
        parent = None
        for n, ns in enumerate(["", "child:1", "", "a\x00b", ""]):
            cid = f"cp-{n:02d}"
            await cps.put(
                thread,
                ns,
                cid,
                checkpoint=("json", b'{"n": %d}' % n),
                metadata=binary,
                versions={"a": f"{n}", "b": "1", "c\x00": "1"},
                blobs=[("a", f"{n}", ("json", b"%d" % n))]
                + ([("b", "1", binary)] if n < 2 else []),
                parent_id=parent,
                run_id=f"run-{n % 2}",
                filters={"source": "loop" if n % 2 else "input", "step": n, "big": "x" * 300},
            )
            parent = cid
            await cps.put_writes(thread, ns, cid, "task", [(0, "ch", binary), (-3, "i", binary)])
            await cps.put_writes(
                thread, ns, cid, "task", [(0, "ch", ("json", b"2")), (-3, "i", binary)]
            )
    await cps.put("lg-1", "", "cp-02", checkpoint=("json", b"{}"), metadata=binary, versions={})
    await cps.get("lg-1")
    await cps.get(WEIRD[1], "child:1", "cp-01")
    await cps.get("lg-1", "", "nope")
    await cps.list("lg-1", limit=2)
    await cps.list("lg-1", "", before="cp-04", filters={"source": "input", "step": 4.0})
    await cps.list(WEIRD[2], filters={"big": "x" * 300}, limit=1)
    await cps.list(WEIRD[2], checkpoint_id="cp-01")
    await cps.threads(count=2)
    exported = await cps.export_checkpoints(WEIRD[1], count=2)
    await cps.export_checkpoints(WEIRD[1], cursor=exported.cursor, count=10)
    await cps.count_checkpoints(["lg-1", WEIRD[1], "nope"])
    await cps.restore_checkpoints(
        [msgspec.structs.replace(c, thread_id="lg-restored") for c in exported.items]
    )
    await cps.copy_thread("lg-1", "lg-copy")
    await cps.delete_runs(["run-1", "nope"])
    await cps.prune([WEIRD[1], "nope"])
    await cps.prune([WEIRD[2]], keep_latest=False)
    await cps.delete_thread("lg-copy")


Step = Callable[[Storage], Awaitable[None]]
STEPS: list[tuple[str, Step]] = [
    ("memory", _memory_calls),
    ("workflows", _workflow_calls),
    ("evals", _eval_calls),
    ("traces", _trace_calls),
    ("langgraph items", _langgraph_items_calls),
    ("checkpoints", _checkpoint_calls),
    ("every kind, awkward ids", fill),
]


async def _record() -> list[tuple[str, list[tuple[list[Command], bool]]]]:
    """The batches of each step of the workload, on one bucket and on four."""
    recorder = Recorder()
    recorded = []
    for buckets in (1, 4):
        store = Storage(recorder, namespace=f"b{buckets}", buckets=buckets)
        limited = Storage(
            recorder,
            namespace=f"r{buckets}",
            buckets=buckets,
            trace_retention=TraceRetention(max_spans=5, max_age=timedelta(days=3650)),
        )
        for name, step in [*STEPS, ("retention", _retention_calls)]:
            start = len(recorder.batches)
            await step(limited if name == "retention" else store)
            recorded.append((f"{name} on {buckets} bucket(s)", recorder.batches[start:]))
    return recorded


def _scripts_in(batches: Sequence[tuple[list[Command], bool]]) -> set[str]:
    return {
        str(command[1])
        for commands, _ in batches
        for command in commands
        if str(command[0]).upper() == "EVALSHA"
    }


async def test_the_workload_runs_every_domain_script() -> None:
    run = _scripts_in([batch for _, batches in await _record() for batch in batches])
    missing = {name for sha, name in domain_scripts().items() if sha not in run}
    assert not missing, f"add calls that run these scripts to the workload: {missing}"


async def _dump(driver: Driver) -> dict[bytes, object]:
    """Every key with its type and its whole value (and whether it expires)."""
    cursor: Reply = b"0"
    keys: list[bytes] = []
    while True:
        cursor, page = (await driver.execute([("SCAN", cursor, "COUNT", 1000)]))[0]  # type: ignore[misc]
        keys += page  # type: ignore[arg-type]
        if cursor == b"0":
            break
    dump: dict[bytes, object] = {}
    for key in sorted(keys):
        (kind,) = await driver.execute([("TYPE", key)])
        reads: dict[bytes, Command] = {
            b"string": ("GET", key),
            b"hash": ("HGETALL", key),
            b"zset": ("ZRANGE", key, 0, -1, "WITHSCORES"),
            b"set": ("SMEMBERS", key),
            b"stream": ("XRANGE", key, "-", "+"),
        }
        value, ttl = await driver.execute([reads[kind], ("PTTL", key)])  # type: ignore[index]
        if kind == b"hash":
            value = sorted(zip(value[::2], value[1::2], strict=True))  # type: ignore[index]
        elif kind == b"set":
            value = sorted(value)  # type: ignore[arg-type]
        dump[key] = (kind, value, ttl != -1)  # type: ignore[operator]
    return dump


async def _outcome(driver: Driver, commands: list[Command], atomic: bool) -> object:
    """What a batch led to: its replies, or the error and every reply (as the machine's)."""
    try:
        replies: Sequence[Reply | CommandError] = await driver.execute(commands, atomic=atomic)
        kind = "ok"
    except TransactionAbortedError as exc:
        replies, kind = exc.results, "aborted"
    except BatchError as exc:
        replies, kind = exc.results, "failed"
    return kind, [normalise(c, r) for c, r in zip(commands, replies, strict=True)]  # type: ignore[arg-type]


@pytest.fixture
async def redis(differential_redis_url: str) -> AsyncIterator[Driver]:
    import redis as redis_py

    # This test compares scripts, not script loading: load them all first.
    client = redis_py.Redis.from_url(differential_redis_url)
    try:
        for script in _REGISTRY.values():
            client.script_load(script.lua)
    finally:
        client.close()
    driver = RedisDriver.from_url(differential_redis_url)
    try:
        yield driver
    finally:
        await driver.aclose()
        flush_db(differential_redis_url)


@pytest.mark.redis
async def test_domain_scripts_do_on_memory_what_they_do_on_redis(redis: Driver) -> None:
    memory = MemoryDriver()
    for step, batches in await _record():
        for commands, atomic in batches:
            expected = await _outcome(redis, commands, atomic)
            actual = await _outcome(memory, commands, atomic)
            assert actual == expected, f"\nstep: {step}\ncommands: {commands!r}"
        assert await _dump(memory) == await _dump(redis), f"after {step}"
