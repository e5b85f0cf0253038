"""The domain operations the sections measure, and the data they run against.

:func:`populate` stores a dataset (a resource's threads, a long thread, workflow runs,
scores, traces) through the public domain calls; :func:`operations` lists every public
domain operation as an :class:`Op` that can be called again and again (ids that must be
fresh come from counters; what a delete removes is made by its ``prepare`` step, which is
not measured).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from msgspec.structs import replace

from benchmarks import _data
from benchmarks._env import PipelinedDriver
from kvstore import Include, MessagePatch, Resource, Score, SpanStatus, Storage, Thread

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    from kvstore.drivers.base import Driver

__all__ = ["RESOURCE", "Dataset", "Op", "bulk", "operations", "populate"]

RESOURCE = "user-1"
BIG_THREAD = "thread-big"
APPEND_THREAD = "thread-append"
WORKFLOW = "weather-workflow"
#: How long the benchmark's leases last: longer than any run of the benchmarks.
LEASE = timedelta(hours=1)
SCORER = "answer-relevancy"
SPANS_PER_TRACE = 10
#: Where the turns that operations append start: after every message a dataset holds.
APPENDED = _data.EPOCH + timedelta(days=400)
#: Resources stored besides RESOURCE, so that a page of resources is full.
RESOURCES = 50
#: The checkpoint thread the dataset holds, and how many checkpoints it has.
CHECKPOINT_THREAD = "lg-thread"
CHECKPOINTS = 100
CHANNELS = ("messages", "plan", "notes", "tool_calls", "scratch")


@dataclass(frozen=True, slots=True)
class Dataset:
    """How much is stored before operations are measured."""

    threads: int
    messages: int
    runs: int
    scores: int
    traces: int

    @classmethod
    def for_mode(cls, quick: bool) -> Dataset:
        if quick:
            return cls(threads=100, messages=200, runs=50, scores=100, traces=20)
        return cls(threads=1_000, messages=1_000, runs=200, scores=1_000, traces=100)


@dataclass(frozen=True, slots=True)
class Op:
    """One public domain operation, callable repeatedly on a store.

    Attributes:
        domain: ``memory``, ``workflows``, ``evals``, ``traces`` or ``checkpoints``.
        name: The call as a reader would write it.
        call: Runs the operation once on a store.
        prepare: Run (unmeasured) before each ``call``: makes what a delete removes.
        mastra: The Mastra operation this corresponds to, for the Upstash cost table.
        method: The domain method called, when the operation is not named after one that
            every kvstore version has (``available`` checks it).
        requests: The round trips the operation is documented to take (one, but for a
            few calls that read before they write).
    """

    domain: str
    name: str
    call: Callable[[Storage], Awaitable[Any]]
    prepare: Callable[[Storage], Awaitable[Any]] | None = None
    mastra: str | None = None
    method: str | None = None
    requests: int = 1

    def available(self, store: Storage) -> bool:
        """Whether this kvstore has the operation (an older checkout may lack it)."""
        domain = getattr(store, self.domain, None)
        return domain is not None and (self.method is None or hasattr(domain, self.method))


async def bulk(
    calls: Iterable[Callable[[Storage], Awaitable[Any]]],
    store: Storage,
    *,
    pipelined: Storage | None = None,
    chunk: int = 500,
) -> None:
    """Run domain calls: through ``pipelined`` (a store on a :class:`PipelinedDriver`),
    ``chunk`` at a time per round trip, or one after another on ``store``.

    The first call always goes through ``store`` alone, which loads its script.
    """
    iterator = iter(calls)
    first = next(iterator, None)
    if first is None:
        return
    await first(store)
    if pipelined is None:
        for call in iterator:
            await call(store)
        return
    while batch := list(itertools.islice(iterator, chunk)):
        await asyncio.gather(*(call(pipelined) for call in batch))


def pipelined_twin(store: Storage) -> Storage | None:
    """A store on the same namespace, codec and buckets that pipelines domain calls, or None
    on the memory driver, where a round trip costs nothing to share."""
    from kvstore.drivers.memory import MemoryDriver

    if isinstance(store.driver, MemoryDriver):
        return None
    return Storage(
        cast("Driver", PipelinedDriver(store.driver)), namespace=store.namespace, codec=store.codec
    )


async def populate(store: Storage, size: Dataset) -> None:
    """Store ``size``'s dataset through the domain calls (pipelined where the driver can)."""
    twin = pipelined_twin(store)
    memory = store.memory
    await bulk(
        (_save_thread(f"thread-{i:07d}", i) for i in range(size.threads)), store, pipelined=twin
    )
    await bulk((_save_resource(i) for i in range(RESOURCES)), store, pipelined=twin)
    for thread_id in (BIG_THREAD, APPEND_THREAD):
        # Metadata that two of the resource's threads share, for the metadata filter.
        await memory.save_thread(
            Thread(id=thread_id, resource_id=RESOURCE, metadata={"project": "demo"})
        )
    await save_messages(store, BIG_THREAD, 0, size.messages)
    snap = _data.snapshot(1_000)
    await bulk((_persist(f"run-{i:07d}", snap, i) for i in range(size.runs)), store, pipelined=twin)
    await bulk((_save_score(i) for i in range(size.scores)), store, pipelined=twin)
    for start in range(0, size.traces, 50):
        await store.traces.save_spans(
            span for t in range(start, min(size.traces, start + 50)) for span in trace(t)
        )
    if hasattr(store, "checkpoints"):
        await bulk(
            (_put_checkpoint(CHECKPOINT_THREAD, i) for i in range(CHECKPOINTS)),
            store,
            pipelined=twin,
        )


def checkpoint_id(i: int) -> str:
    """The id of checkpoint ``i``: ids sort in time order, as LangGraph's uuid6 do."""
    return f"1f0{i:013x}-0000-6000-8000-000000000000"


def _put_checkpoint(thread_id: str, i: int) -> Callable[[Storage], Awaitable[Any]]:
    """Step ``i`` of a graph of five channels (about 2 KB in all): one channel changes."""
    channel = CHANNELS[i % len(CHANNELS)]
    versions = {
        c: f"{(i - k) // len(CHANNELS) + 1:032}.0" for k, c in enumerate(CHANNELS) if k <= i
    }
    value = ("json", b'"%s"' % (b"x" * 380))
    return lambda s: s.checkpoints.put(
        thread_id,
        "",
        checkpoint_id(i),
        checkpoint=("json", b'{"v": 4, "versions_seen": {}}'),
        metadata=("json", b'{"source": "loop", "step": %d}' % i),
        versions=versions,
        blobs=[(channel, versions[channel], value)],
        parent_id=checkpoint_id(i - 1) if i else None,
        filters={"source": "loop" if i % 2 else "input", "step": i},
    )


async def save_messages(store: Storage, thread_id: str, start: int, stop: int) -> None:
    """Messages ``start`` to ``stop`` of a thread, 500 per call."""
    for first in range(start, stop, 500):
        await store.memory.save_messages(
            _data.message(i, thread_id) for i in range(first, min(stop, first + 500))
        )


def trace(t: int, spans: int = SPANS_PER_TRACE) -> list[Any]:
    """Trace ``t``: a root span and ``spans - 1`` children."""
    root = _data.span(t * spans, t)
    children = [_data.span(t * spans + k, t, parent=root.span_id) for k in range(1, spans)]
    return [root, *children]


def _save_thread(thread_id: str, i: int) -> Callable[[Storage], Awaitable[Any]]:
    at = _data.EPOCH + timedelta(seconds=i)
    thread = Thread(id=thread_id, resource_id=RESOURCE, title=f"Chat {i}", created_at=at)
    return lambda s: s.memory.save_thread(thread)


def _save_resource(i: int) -> Callable[[Storage], Awaitable[Any]]:
    at = _data.EPOCH + timedelta(seconds=i)
    resource = Resource(
        id=f"user-{i + 2:07d}", working_memory=f"# User {i}\n- city: Zürich", created_at=at
    )
    return lambda s: s.memory.save_resource(resource)


def _persist(run_id: str, snap: Any, i: int) -> Callable[[Storage], Awaitable[Any]]:
    at = _data.EPOCH + timedelta(seconds=i)
    return lambda s: s.workflows.persist_snapshot(
        WORKFLOW, run_id, snap, resource_id=RESOURCE, status="success", created_at=at
    )


def _save_score(i: int) -> Callable[[Storage], Awaitable[Any]]:
    record = _data.score(i)
    return lambda s: s.evals.save_score(record)


def operations(size: Dataset) -> list[Op]:
    """Every public domain operation, against the dataset :func:`populate` stores."""
    n = itertools.count(10_000_000)
    snap5k = _data.snapshot(5_000)
    last_ids = [_data.message(i).id for i in range(max(0, size.messages - 20), size.messages)]
    window = (
        _data.EPOCH + timedelta(milliseconds=10 * SPANS_PER_TRACE * (size.traces // 2)),
        _data.EPOCH + timedelta(milliseconds=10 * SPANS_PER_TRACE * (size.traces // 2 + 30)),
    )

    lease: dict[str, int] = {}

    async def fresh_run(s: Storage) -> None:
        # A run without a lease, so that every claim takes a new token.
        await s.workflows.delete_run(WORKFLOW, "leased")
        await s.workflows.persist_snapshot(WORKFLOW, "leased", {"a": 1})

    async def claimed_run(s: Storage) -> None:
        await fresh_run(s)
        lease["token"] = await s.workflows.claim_run(WORKFLOW, "leased", "worker", LEASE)

    def new_checkpoint(s: Storage) -> Awaitable[Any]:
        return _put_checkpoint(CHECKPOINT_THREAD, CHECKPOINTS + next(n))(s)

    def victim_thread(s: Storage) -> Awaitable[Any]:
        return s.memory.save_thread(Thread(id="victim", resource_id=RESOURCE))

    async def victim_thread_with_messages(s: Storage) -> None:
        await victim_thread(s)
        await s.memory.save_messages(_data.message_pair(0, "victim"))

    async def victim_messages(s: Storage) -> None:
        await s.memory.save_messages(_data.message_pair(0, APPEND_THREAD))

    async def mover(s: Storage) -> None:
        await s.memory.save_thread(Thread(id="mover", resource_id=RESOURCE))
        await s.memory.save_messages(_data.message_pair(0, "mover"))

    async def small_resource(s: Storage) -> None:
        for thread_id in ("small-1", "small-2"):
            await s.memory.save_thread(Thread(id=thread_id, resource_id="small"))
            await s.memory.save_messages(_data.message_pair(0, thread_id))

    # Records are built once; a timed call only gives them fresh ids.
    user, answer = _data.message_pair(0, APPEND_THREAD)
    score = _data.score(0)
    spans = trace(0)

    def pair(s: Storage) -> Awaitable[Any]:
        # A new turn, later than every message before it, as in a conversation: appended
        # messages never share a timestamp with one another or with the delete's victims.
        i = next(n)
        at = APPENDED + timedelta(microseconds=2 * i)
        return s.memory.save_messages(
            [
                replace(user, id=f"{user.id}-{i}", created_at=at),
                replace(answer, id=f"{answer.id}-{i}", created_at=at + timedelta(microseconds=1)),
            ]
        )

    def new_trace(s: Storage) -> Awaitable[Any]:
        trace_id = f"{next(n):032x}"
        return s.traces.save_spans([replace(span, trace_id=trace_id) for span in spans])

    return [
        Op(
            "memory",
            "save_thread (new)",
            lambda s: s.memory.save_thread(Thread(id=f"t{next(n)}", resource_id=RESOURCE)),
        ),
        Op("memory", "get_thread", lambda s: s.memory.get_thread("thread-0000001")),
        Op(
            "memory",
            "list_threads (page of 20)",
            lambda s: s.memory.list_threads(RESOURCE, per_page=20),
            mastra="listThreads",
        ),
        # Issue 12's listings, moves and clones; ``method`` names the call that arrived with
        # them, which older checkouts lack.
        Op(
            "memory",
            "list_threads (namespace, page of 20)",
            lambda s: s.memory.list_threads(per_page=20),
            method="list_messages_merged",
        ),
        Op(
            "memory",
            "list_threads (metadata filter)",
            lambda s: s.memory.list_threads(RESOURCE, metadata={"project": "demo"}),
            method="list_messages_merged",
        ),
        Op(
            "memory",
            "move_thread (2 messages)",
            lambda s: s.memory.move_thread("mover", "user-2"),
            prepare=mover,
            method="move_thread",
        ),
        Op(
            "memory",
            "clone_thread (last 20 messages)",
            lambda s: s.memory.clone_thread(BIG_THREAD, f"clone-{next(n)}", message_limit=20),
            method="clone_thread",
            requests=2,
        ),
        Op(
            "memory",
            "list_messages_merged (2 threads, page of 20)",
            lambda s: s.memory.list_messages_merged(
                thread_ids=[BIG_THREAD, APPEND_THREAD], per_page=20
            ),
            method="list_messages_merged",
        ),
        Op(
            "memory",
            "list_messages_merged (resource of 2 threads)",
            lambda s: s.memory.list_messages_merged(
                resource_id="small", per_page=20, direction="desc"
            ),
            prepare=small_resource,
            method="list_messages_merged",
            requests=2,
        ),
        Op(
            "memory",
            "update_thread (title)",
            lambda s: s.memory.update_thread("thread-0000001", title=f"renamed {next(n)}"),
        ),
        Op(
            "memory",
            "delete_thread (2 messages)",
            lambda s: s.memory.delete_thread("victim"),
            prepare=victim_thread_with_messages,
        ),
        Op("memory", "save_messages (2)", pair, mastra="saveMessages"),
        Op(
            "memory",
            "list_messages (last 20)",
            lambda s: s.memory.list_messages(BIG_THREAD, last=20),
            mastra="listMessages",
        ),
        Op(
            "memory",
            "list_messages (page 3 of 40)",
            lambda s: s.memory.list_messages(BIG_THREAD, page=3, per_page=40),
        ),
        Op(
            "memory",
            "list_messages (last 20 + include)",
            lambda s: s.memory.list_messages(
                BIG_THREAD,
                last=20,
                include=[Include(message_id=_data.message(5).id, before=2, after=2)],
            ),
            requests=2,
        ),
        Op(
            "memory",
            "get_messages (20 ids)",
            lambda s: s.memory.get_messages(last_ids),
            requests=2,
        ),
        Op(
            "memory",
            "update_messages (1)",
            lambda s: s.memory.update_messages(
                [MessagePatch(id=last_ids[-1], metadata={"seen": next(n)})]
            ),
            requests=2,
        ),
        Op(
            "memory",
            "delete_messages (2)",
            lambda s: s.memory.delete_messages([f"{APPEND_THREAD}-u0", f"{APPEND_THREAD}-a0"]),
            prepare=victim_messages,
            requests=2,
        ),
        Op(
            "memory",
            "save_resource",
            lambda s: s.memory.save_resource(
                Resource(id=RESOURCE, working_memory="# User\n- name: Alice\n- city: Zürich")
            ),
        ),
        Op("memory", "get_resource", lambda s: s.memory.get_resource(RESOURCE)),
        Op(
            "memory",
            "list_resources (page of 20)",
            lambda s: s.memory.list_resources(per_page=20),
            method="list_resources",
        ),
        Op(
            "memory",
            "update_resource",
            lambda s: s.memory.update_resource(
                RESOURCE, working_memory=f"# User\n- visits: {next(n)}"
            ),
        ),
        Op(
            "workflows",
            "persist_snapshot (new run, 5 KB)",
            lambda s: s.workflows.persist_snapshot(
                WORKFLOW, f"r{next(n)}", snap5k, resource_id=RESOURCE, status="running"
            ),
        ),
        Op(
            "workflows",
            "persist_snapshot (existing run, 5 KB)",
            lambda s: s.workflows.persist_snapshot(WORKFLOW, "run-0000001", snap5k),
            mastra="persistWorkflowSnapshot",
        ),
        Op(
            "workflows",
            "load_snapshot",
            lambda s: s.workflows.load_snapshot(WORKFLOW, "run-0000001"),
            mastra="loadWorkflowSnapshot",
        ),
        Op(
            "workflows",
            "get_run (with workflow name)",
            lambda s: s.workflows.get_run("run-0000001", WORKFLOW),
        ),
        Op("workflows", "get_run (run id only)", lambda s: s.workflows.get_run("run-0000001")),
        Op(
            "workflows",
            "list_runs (page of 20)",
            lambda s: s.workflows.list_runs(WORKFLOW, per_page=20),
            mastra="listWorkflowRuns",
        ),
        Op(
            "workflows",
            "update_run (status)",
            lambda s: s.workflows.update_run(WORKFLOW, "run-0000002", status="success"),
        ),
        Op(
            "workflows",
            "delete_run",
            lambda s: s.workflows.delete_run(WORKFLOW, "victim"),
            prepare=lambda s: s.workflows.persist_snapshot(WORKFLOW, "victim", {"a": 1}),
        ),
        Op(
            "workflows",
            "list_runs (page of 20, with snapshots)",
            lambda s: s.workflows.list_runs(WORKFLOW, per_page=20, with_snapshot=True),
            method="delete_runs",  # with_snapshot came with it
        ),
        Op(
            "workflows",
            "update_step_result",
            lambda s: s.workflows.update_step_result(
                WORKFLOW, "run-0000003", "fetch", {"status": "success", "output": next(n)}
            ),
            method="update_step_result",
        ),
        Op(
            "workflows",
            "claim_run",
            lambda s: s.workflows.claim_run(WORKFLOW, "leased", "worker", LEASE),
            prepare=fresh_run,
            method="claim_run",
        ),
        Op(
            "workflows",
            "renew_run",
            lambda s: s.workflows.renew_run(WORKFLOW, "leased", lease["token"], LEASE),
            prepare=claimed_run,
            method="renew_run",
        ),
        Op(
            "workflows",
            "release_run",
            lambda s: s.workflows.release_run(WORKFLOW, "leased", lease["token"]),
            prepare=claimed_run,
            method="release_run",
        ),
        Op(
            "workflows",
            "delete_runs (1 run)",
            lambda s: s.workflows.delete_runs(older_than=_data.EPOCH, workflow_name="retired"),
            prepare=lambda s: s.workflows.persist_snapshot(
                "retired", "old", {"a": 1}, created_at=_data.EPOCH - timedelta(days=1)
            ),
            method="delete_runs",
        ),
        Op(
            "evals",
            "save_score (new)",
            lambda s: s.evals.save_score(replace(score, id=f"score-new-{next(n)}")),
        ),
        Op("evals", "get_score", lambda s: s.evals.get_score(_data.score(1).id)),
        Op(
            "evals",
            "list_scores (scorer, page of 20)",
            lambda s: s.evals.list_scores(scorer_id=SCORER, per_page=20),
        ),
        Op("evals", "list_scores (run id)", lambda s: s.evals.list_scores(run_id="run-1")),
        # The filters came with score_stats: a checkout that has it has them.
        Op(
            "evals",
            "list_scores (scorer, time window)",
            lambda s: s.evals.list_scores(
                scorer_id=SCORER,
                from_date=_data.EPOCH + timedelta(seconds=100),
                to_date=_data.EPOCH + timedelta(seconds=400),
                per_page=20,
            ),
            method="score_stats",
        ),
        Op(
            "evals",
            "list_scores (scorer, score range)",
            lambda s: s.evals.list_scores(scorer_id=SCORER, min_score=0.8, per_page=20),
            method="score_stats",
        ),
        Op(
            "evals",
            "score_stats (24 hours)",
            lambda s: s.evals.score_stats(
                SCORER, from_date=_data.EPOCH, to_date=_data.EPOCH + timedelta(hours=23)
            ),
            method="score_stats",
        ),
        Op(
            "evals",
            "score_stats (30 days)",
            lambda s: s.evals.score_stats(
                SCORER,
                from_date=_data.EPOCH,
                to_date=_data.EPOCH + timedelta(days=29),
                bucket="day",
            ),
            method="score_stats",
        ),
        Op(
            "evals",
            "delete_score",
            lambda s: s.evals.delete_score("victim"),
            prepare=lambda s: s.evals.save_score(Score(id="victim", scorer_id=SCORER, score=1.0)),
        ),
        Op("traces", "save_spans (trace of 10)", new_trace),
        Op("traces", "get_trace (10 spans)", lambda s: s.traces.get_trace(f"{1:032x}")),
        Op("traces", "list_traces (page of 20)", lambda s: s.traces.list_traces(per_page=20)),
        Op(
            "traces",
            "list_traces (time window)",
            lambda s: s.traces.list_traces(from_date=window[0], to_date=window[1], per_page=20),
        ),
        Op(
            "checkpoints",
            "put (1 of 5 channels changed)",
            new_checkpoint,
            method="put",
        ),
        Op(
            "checkpoints",
            "put_writes (2)",
            lambda s: s.checkpoints.put_writes(
                CHECKPOINT_THREAD,
                "",
                checkpoint_id(CHECKPOINTS - 1),
                f"task-{next(n)}",
                [(0, "messages", ("json", b'"hi"')), (1, "plan", ("json", b'"go"'))],
            ),
            method="put_writes",
        ),
        Op(
            "checkpoints",
            "get (the latest)",
            lambda s: s.checkpoints.get(CHECKPOINT_THREAD),
            method="get",
        ),
        Op(
            "checkpoints",
            "list (page of 10)",
            lambda s: s.checkpoints.list(CHECKPOINT_THREAD, limit=10),
            method="list",
        ),
        Op(
            "checkpoints",
            "list (metadata filter, page of 10)",
            lambda s: s.checkpoints.list(CHECKPOINT_THREAD, filters={"source": "loop"}, limit=10),
            method="list",
        ),
        Op(
            "checkpoints",
            "delete_thread (3 checkpoints)",
            lambda s: s.checkpoints.delete_thread("lg-victim"),
            prepare=_checkpoint_victim,
            method="delete_thread",
        ),
        Op(
            "traces",
            "get_trace (10 spans, light)",
            lambda s: s.traces.get_trace(f"{1:032x}", with_attributes=False),
        ),
        Op("traces", "get_span", lambda s: s.traces.get_span(f"{1:032x}", f"{12:016x}")),
        Op("traces", "get_root_span", lambda s: s.traces.get_root_span(f"{1:032x}")),
        Op(
            "traces",
            "update_span (end, status)",
            lambda s: s.traces.update_span(
                f"{2:032x}", f"{23:016x}", end_time=_data.EPOCH, status=SpanStatus(code="ok")
            ),
        ),
        Op(
            "traces",
            "list_traces (has_error, page of 20)",
            lambda s: s.traces.list_traces(has_error=True, per_page=20),
        ),
        Op(
            "traces",
            "list_traces (status, time window)",
            lambda s: s.traces.list_traces(
                status="ok", from_date=window[0], to_date=window[1], per_page=20
            ),
        ),
        Op(
            "traces",
            "delete_traces (1 of 10 spans)",
            lambda s: s.traces.delete_traces([f"{999_999:032x}"]),
            prepare=lambda s: s.traces.save_spans(trace(999_999)),
        ),
    ]


async def _checkpoint_victim(store: Storage) -> None:
    for i in range(3):
        await _put_checkpoint("lg-victim", i)(store)


def repeatable(ops: Sequence[Op]) -> list[Op]:
    """The operations that can be timed in a loop (no unmeasured step before each call)."""
    return [op for op in ops if op.prepare is None]
