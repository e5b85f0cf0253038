"""The workflows, evals and traces domains' cost on a real server.

Counts include the commands scripts run and the ``EVALSHA`` itself, on warm calls (see
``conftest``); each must be the same whether hundreds or thousands of records are stored
(both sizes fill every page, so the pages compared hold as many records). The expected
figures are layout 2's, on one bucket: a listing is one script that reads its page with one
``ZRANGE`` and the page's records with one ``HMGET`` per hash, so it also costs the same
whatever the page size and the filters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from msgspec.structs import replace

from kvstore import Score, Span, SpanEvent, SpanStatus, Storage, TraceRetention
from tests.cost.conftest import CountCommands

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SIZES = (300, 2_000)


#: EVALSHA, ZLEXCOUNT (the total), ZLEXCOUNT (the rank the prefix starts at), ZRANGE (the
#: page), HMGET (the page's records).
LISTING = 5


async def _measure(
    count_commands: CountCommands, *calls: Callable[[], Awaitable[Any]]
) -> tuple[int, ...]:
    return tuple([await count_commands(call()) for call in calls])


async def _fill_runs(store: Storage, upto: int) -> None:
    have = (await store.workflows.list_runs(per_page=1)).total
    for i in range(have, upto):
        await store.workflows.persist_snapshot(
            f"wf{i % 3}",
            f"run-{i}",
            {"step": i},
            resource_id=f"user-{i % 7}",
            status=("running", "suspended")[i % 2],
            created_at=T0 + timedelta(seconds=i),
        )


HOUR = timedelta(hours=1)


async def _old_runs(wf: Any, workflow: str, count: int) -> None:
    """``count`` runs of ``workflow``, created before every other run."""
    for i in range(count):
        await wf.persist_snapshot(
            workflow, f"old-{i}", {}, status="x", created_at=T0 - timedelta(days=1)
        )


async def test_workflow_calls_cost_is_flat(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    wf = redis_store.workflows
    costs: list[tuple[int, ...]] = []
    for token, stored in enumerate(SIZES, 1):  # each claim takes the bucket's next token
        await _fill_runs(redis_store, stored)
        costs.append(
            await _measure(
                count_commands,
                lambda: wf.list_runs(per_page=20),
                lambda: wf.list_runs("wf1", resource_id="user-1", status="suspended", per_page=5),
                lambda: wf.load_snapshot("wf1", "run-1"),
                lambda: wf.get_run("run-1"),
                lambda: wf.get_run("run-1", "wf1"),
                lambda: wf.persist_snapshot("wf1", "run-1", {"step": "again"}),
                lambda r=f"new-{stored}": wf.persist_snapshot("wf1", r, {"step": 0}),
                lambda r=f"new-{stored}": wf.update_run("wf1", r, status="done"),
                lambda r=f"new-{stored}": wf.update_run("wf1", r, status="done"),
                lambda r=f"new-{stored}": wf.delete_run("wf1", r),
                lambda: wf.export_runs(count=50),
                lambda: wf.list_runs(per_page=20, with_snapshot=True),
                lambda r=f"new-{stored}": wf.persist_snapshot("wf1", r, {"step": 0}),
                lambda r=f"new-{stored}": wf.update_step_result("wf1", r, "a", {"out": 1}),
                lambda r=f"new-{stored}": wf.update_step_result("wf1", r, "b", 2, status="ok"),
                lambda r=f"new-{stored}": wf.claim_run("wf1", r, "w", timedelta(minutes=1)),
                lambda r=f"new-{stored}", t=token: wf.renew_run("wf1", r, t, HOUR),
                lambda r=f"new-{stored}", t=token: wf.persist_snapshot(
                    "wf1", r, {"step": 1}, fencing_token=t
                ),
                lambda r=f"new-{stored}", t=token: wf.release_run("wf1", r, t),
                lambda: wf.delete_runs(older_than=T0),  # nothing that old
                lambda w=f"old-{stored}": _old_runs(wf, w, 3),
                lambda w=f"old-{stored}": wf.delete_runs(older_than=T0, workflow_name=w),
            )
        )
    assert costs[0] == costs[1]
    assert costs[0] == (
        LISTING,  # summaries: the page's run records only
        LISTING,
        1,  # HGET of the snapshot
        7,  # by run id alone: the ``i`` prefix of the run index finds its workflow
        3,  # HGET of the run, of its snapshot and of its step results
        4,
        6,  # a new run also drops a lease left by a deleted run of its name
        7,  # the status changes: its index entries move, in the same script
        5,  # the same status again: nothing moves
        7,  # the run, its snapshot, its step results, its index entries and its lease
        LISTING + 3,  # two HMGETs more, and one ZLEXCOUNT per bucket for the walk's total
        LISTING + 2,  # with snapshots: one HMGET more for them, one for the step results
        6,
        5,  # the run record and the step results, each read and written
        7,  # and the status's index entries moved
        5,  # claim: GET the lease, HEXISTS the run, INCR the bucket's token, SET the lease
        3,  # renew: GET and PEXPIRE
        5,  # a fenced write: GET the lease too
        3,  # release: GET and DEL
        2,  # delete_runs with nothing to delete: the slice's ZRANGE
        18,  # (three runs to delete)
        2 + 3 * 5,  # each run: HGET, ZREM of its entries, HDEL of its three fields
    )


async def test_eval_calls_cost_is_flat(redis_store: Storage, count_commands: CountCommands) -> None:
    evals = redis_store.evals
    costs: list[tuple[int, ...]] = []
    saved = 0
    for stored in SIZES:
        for i in range(saved, stored):
            await evals.save_score(
                Score(
                    scorer_id=f"scorer-{i % 3}",
                    score=i / stored,
                    run_id=f"run-{i % 50}",
                    entity_type="agent",
                    entity_id=f"agent-{i % 4}",
                    trace_id=f"trace-{i}",
                    span_id="span",
                    metadata={"judge": f"j{i % 2}"},
                    created_at=T0 + timedelta(seconds=i),
                )
            )
        saved = stored
        new = Score(id=f"new-{stored}", scorer_id="s", score=1, run_id="r", entity_type="a")
        costs.append(
            await _measure(
                count_commands,
                lambda: evals.list_scores(per_page=20),
                lambda: evals.list_scores(
                    scorer_id="scorer-1", entity=("agent", "agent-1"), source="live"
                ),
                lambda: evals.list_scores(run_id="run-3", per_page=5),
                lambda: evals.list_scores(span=("trace-3", "span"), per_page=5),
                lambda: evals.get_score("trace-3"),
                lambda new=new: evals.save_score(new),
                lambda new=new: evals.save_score(new),
                lambda new=new: evals.delete_score(new.id),
                lambda: evals.export_scores(count=50),
                lambda: evals.list_scores(
                    scorer_id="scorer-1",
                    from_date=T0 + timedelta(seconds=100),
                    to_date=T0 + timedelta(seconds=250),
                ),
                lambda: evals.list_scores(run_id="run-3", from_date=T0, per_page=5),
                lambda: evals.list_scores(scorer_id="scorer-1", min_score=0.05, max_score=0.1),
                lambda: evals.list_scores(entity=("agent", "agent-2"), min_score=0.1),
                lambda: evals.list_scores(scorer_id="scorer-2", metadata={"judge": "j1"}),
                lambda: evals.score_stats(
                    "scorer-1", from_date=T0, to_date=T0 + timedelta(hours=23)
                ),
                lambda: evals.score_stats(
                    "scorer-1", from_date=T0, to_date=T0 + timedelta(days=6), bucket="day"
                ),
            )
        )
    assert costs[0] == costs[1]
    assert costs[0] == (
        LISTING,
        LISTING,
        LISTING,
        LISTING,
        1,
        # EVALSHA, HGET, ZADD (index entries), HSET (the record), and per period (hour and
        # day): ZADD (its values), HGET and HSET (its count and sum).
        10,
        17,  # a replace: the old entries, values and sums go first (ZREM, ZREM, HGET, HSET)
        10,
        LISTING + 1,
        LISTING,  # a time window is one range of the index, like any filter
        LISTING,
        LISTING,  # a score range too, of the index by value
        LISTING,
        LISTING,  # and metadata, of its entries by key and value
        2 + 2 * 24,  # EVALSHA, HMGET (the sums), per hour two ZRANGEs (lowest, highest)
        2 + 2 * 7,
    )


def _trace(trace_id: str, start: datetime, spans: int) -> list[Span]:
    root = f"{trace_id}-root"
    return [
        Span(
            trace_id=trace_id,
            span_id=root if n == 0 else f"{trace_id}-{n}",
            parent_span_id=None if n == 0 else root,
            name="agent.run" if n == 0 else "tool.call",
            start_time=start + timedelta(milliseconds=n),
            attributes={"user.id": f"user-{n % 3}"},
        )
        for n in range(spans)
    ]


async def test_trace_calls_cost_is_flat(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    traces = redis_store.traces
    costs: list[tuple[int, ...]] = []
    saved = 0
    for stored in SIZES:
        for first in range(saved, stored, 100):
            batch = [
                span
                for i in range(first, min(stored, first + 100))
                for span in _trace(f"t{i}", T0 + timedelta(seconds=i), 3)
            ]
            await traces.save_spans(batch)
        saved = stored
        costs.append(
            await _measure(
                count_commands,
                lambda: traces.list_traces(per_page=20),
                lambda: traces.list_traces(
                    name="agent.run",
                    attributes={"user.id": "user-0"},
                    from_date=T0,
                    to_date=T0 + timedelta(days=1),
                    per_page=5,
                ),
                lambda: traces.list_traces(from_date=T0, to_date=T0 + timedelta(days=1)),
                lambda: traces.get_trace("t3"),
                lambda t=f"new-{stored}": traces.save_spans(_trace(t, T0, 10)),
                lambda t=f"new-{stored}": traces.delete_traces([t]),
            )
        )
    assert costs[0] == costs[1]
    assert costs[0] == (
        LISTING,
        LISTING,
        LISTING,
        1,  # XRANGE of the trace's own stream
        19,  # EVALSHA, per span an XADD, per trace HGET, HMGET, HSET, HLEN, ZADD, HSET, then
        # HINCRBY and ZRANGE (the bucket's total and oldest trace, for retention)
        7,
    )


async def test_save_spans_cost_does_not_grow_with_a_full_stream(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    # Retention in steady state: each save trims as many spans as it adds.
    traces = Storage(
        redis_store.driver,
        namespace=redis_store.namespace,
        trace_retention=TraceRetention(max_spans=300),
    ).traces
    now = datetime.now(UTC)
    costs = []
    for i in range(400):
        cost = await count_commands(traces.save_spans(_trace(f"t{i}", now, 3)))
        if i in (150, 399):
            costs.append(cost)
    assert costs[0] == costs[1]
    # 3 spans in, 3 spans out (a whole older trace), whatever the stream holds.
    assert costs[1] == 22


def _running_trace(i: int) -> list[Span]:
    """A trace with every filter value set on its root, its child still running."""
    root = Span(
        trace_id=f"run-{i}",
        span_id="root",
        name="agent.run",
        start_time=T0 + timedelta(seconds=i),
        end_time=T0 + timedelta(seconds=i + 1),
        status=SpanStatus(code=("ok", "error")[i % 2]),
        attributes={"user.id": f"user-{i % 3}", "thread.id": "th", "tags": ["a", "b"]},
        resource={"service.name": "svc", "deployment.environment.name": "prod"},
    )
    child = Span(
        trace_id=f"run-{i}",
        span_id="tool",
        parent_span_id="root",
        name="tool.call",
        start_time=T0 + timedelta(seconds=i),
    )
    return [root, child]


async def test_span_lifecycle_reads_and_filters_cost_is_flat(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    traces = redis_store.traces
    window: dict[str, Any] = {"from_date": T0, "to_date": T0 + timedelta(days=1)}
    costs: list[tuple[int, ...]] = []
    saved = 0
    for stored in SIZES:
        for first in range(saved, stored, 100):
            await traces.save_spans(
                [s for i in range(first, min(stored, first + 100)) for s in _running_trace(i)]
            )
        saved = stored
        new = f"new-{stored}"
        costs.append(
            await _measure(
                count_commands,
                lambda: traces.get_span("run-3", "tool"),
                lambda: traces.get_root_span("run-3"),
                lambda: traces.get_trace("run-3", with_attributes=False),
                lambda t=new, n=stored: traces.save_spans(
                    [replace(s, trace_id=t) for s in _running_trace(n)]
                ),
                lambda t=new: traces.update_span(
                    t, "tool", events=[SpanEvent(name="e", timestamp=T0)]
                ),
                lambda t=new: traces.update_span(t, "tool", end_time=T0, status={"code": "error"}),
                lambda t=new: traces.update_span(
                    t, "root", status={"code": "ok"}, attributes={"k": 1}
                ),
                lambda: traces.list_traces(status="error", **window),
                lambda: traces.list_traces(has_error=True, **window),
                lambda: traces.list_traces(user_id="user-1", name="agent.run", **window),
                lambda: traces.list_traces(tag="a", **window),
                lambda: traces.list_traces(environment="prod", **window),
                lambda: traces.list_traces(service="svc", **window),
            )
        )
    assert costs[0] == costs[1]
    assert costs[0] == (
        3,  # EVALSHA, HGET (the span's stream id), XRANGE of that one entry
        4,  # the same and the HGET of the summary naming the root
        1,  # XRANGE of the trace's own stream
        11,
        8,  # EVALSHA, HGET, XRANGE, HGET (summary), XDEL, XADD, HSET (span id), HSET (summary)
        10,  # the same, and ZREM + ZADD: the trace now has an error
        10,  # the root's status and attributes move its index entries: ZREM + ZADD
        *[LISTING] * 6,
    )
