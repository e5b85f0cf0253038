"""The workflows, evals and traces domains' cost on a real server.

Each listing must run at most ``page size + 5`` commands, counting those inside scripts and
the EVALSHA itself, and single-record calls a small constant; either figure must be the
same whether hundreds or thousands of records are stored (both sizes fill every page, so
the pages compared hold as many records). Each call runs once before it is measured, so
that loading its script (NOSCRIPT, then EVAL) is not counted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kvstore import Score, Span, Storage, TraceRetention
from tests.cost.conftest import CountCommands

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SIZES = (300, 2_000)


async def _measure(
    count_commands: CountCommands, *calls: Callable[[], Awaitable[Any]]
) -> tuple[int, ...]:
    costs = []
    for call in calls:
        await call()  # loads the script
        costs.append(await count_commands(call()))
    return tuple(costs)


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


async def test_workflow_calls_cost_is_flat(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    wf = redis_store.workflows
    costs: list[tuple[int, ...]] = []
    for stored in SIZES:
        await _fill_runs(redis_store, stored)
        costs.append(
            await _measure(
                count_commands,
                lambda: wf.list_runs(per_page=20),
                lambda: wf.list_runs("wf1", resource_id="user-1", status="suspended", per_page=5),
                lambda: wf.load_snapshot("wf1", "run-1"),
                lambda: wf.get_run("run-1"),
                lambda: wf.persist_snapshot("wf1", "run-1", {"step": "again"}),
            )
        )
    assert costs[0] == costs[1]
    listing, filtered, load, get, persist = costs[0]
    assert listing <= 20 + 5
    assert filtered <= 5 + 5
    assert (load, get) == (1, 3)
    assert persist <= 5
    # A status change moves the run between index sets: bounded by the number of sets.
    moved = await count_commands(wf.update_run("wf1", "run-1", status="done"))
    assert moved <= 2 * 8 + 5


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
                    created_at=T0 + timedelta(seconds=i),
                )
            )
        saved = stored
        costs.append(
            await _measure(
                count_commands,
                lambda: evals.list_scores(per_page=20),
                lambda: evals.list_scores(
                    scorer_id="scorer-1", entity=("agent", "agent-1"), source="live"
                ),
                lambda: evals.list_scores(run_id="run-3", per_page=5),
            )
        )
    assert costs[0] == costs[1]
    listing, filtered, by_run = costs[0]
    assert listing <= 20 + 5
    assert filtered <= 20 + 5
    assert by_run <= 5 + 5
    new = Score(id="new", scorer_id="s", score=1, run_id="r", entity_type="a", entity_id="b")
    assert await count_commands(evals.save_score(new)) <= 10 + 5


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
                lambda: traces.get_trace("t3"),
            )
        )
    assert costs[0] == costs[1]
    listing, filtered, trace = costs[0]
    assert listing <= 20 + 5
    assert filtered <= 5 + 5
    assert trace == 1 + 1 + 3  # EVALSHA, the trace's span map, one XRANGE per span


async def test_save_spans_cost_does_not_grow_with_a_full_stream(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    # Retention in steady state: each save trims as many spans as it adds.
    traces = Storage(
        redis_store.driver,
        namespace=redis_store.keys.namespace,
        trace_retention=TraceRetention(max_spans=300),
    ).traces
    now = datetime.now(UTC)
    costs = []
    for i in range(400):
        cost = await count_commands(traces.save_spans(_trace(f"t{i}", now, 3)))
        if i in (150, 399):
            costs.append(cost)
    assert costs[0] == costs[1]
    # 3 spans in, 3 spans out (a whole older trace), by the cost table in domains.traces:
    # EVALSHA, 3 per span, 2 for the clock, at most 7 per trace plus its 4 index entries
    # (name and one attribute, with and without each other), 3 for MAXLEN retention, 2 per
    # span trimmed, and 3 plus its 4 index entries for the trace that lost its last span.
    assert costs[1] <= 1 + 3 * 3 + 2 + (7 + 4) + 3 + 2 * 3 + (3 + 4)
