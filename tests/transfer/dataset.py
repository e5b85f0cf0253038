"""A store's worth of every kind of record, with the awkward cases, and a way to compare
two stores record by record (and index by index)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from kvstore import (
    ListNamespaces,
    Message,
    PutItem,
    Score,
    SearchItems,
    Span,
    SpanEvent,
    SpanLink,
    SpanStatus,
    Storage,
    Thread,
)
from kvstore.transfer import KIND_NAMES
from kvstore.transfer._kinds import KINDS_BY_NAME

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)

#: Ids that would break a naive key schema or a line-based format.
WEIRD = ["a:b", "{tag}", "new\nline", "ünï ✓", "*", "x" * 300]
RESOURCES = ["alice", *WEIRD[:3]]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


MASTRA = {
    "format": 2,
    "parts": [
        {"type": "reasoning", "reasoning": "cold"},
        {
            "type": "tool-invocation",
            "toolInvocation": {
                "state": "result",
                "toolCallId": "c1",
                "toolName": "weather",
                "args": {"city": "Zürich"},
                "result": {"temp": 3.5, "ok": True, "list": [1, None, "x"]},
            },
        },
        {"type": "text", "text": "Take a jacket."},
    ],
}
OPENAI = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
}


async def fill(store: Storage, *, messages_per_thread: int = 9) -> None:
    """Write every kind of record to ``store``."""
    memory = store.memory
    for i, rid in enumerate(RESOURCES):
        await memory.update_resource(
            rid, working_memory=f"# {rid}\n- likes {i}", metadata={"i": i, "z": {"b": 1, "a": 2}}
        )
    threads = [f"thread-{w}" for w in WEIRD] + ["empty"]
    for i, tid in enumerate(threads):
        await memory.save_thread(
            Thread(
                id=tid,
                resource_id=RESOURCES[i % len(RESOURCES)],
                title=f"title {i}" if i % 2 else None,
                metadata={"n": i},
                created_at=at(i),
            )
        )
    for tid in threads[:-1]:
        # Equal timestamps, saved in several calls and out of id order: the order must
        # survive every copy.
        batch = [
            Message(
                id=f"{tid}/m{(n * 7) % messages_per_thread}",
                thread_id=tid,
                resource_id="alice",
                role=("user", "assistant", "tool", "system")[n % 4],
                content=(f"plain {n}", MASTRA, OPENAI)[n % 3],
                type="openai" if n % 3 == 2 else "v2",
                created_at=at(100 + n // 3),
                metadata={"n": n} if n % 2 else {},
            )
            for n in range(messages_per_thread)
        ]
        for start in range(0, len(batch), 4):
            await memory.save_messages(batch[start : start + 4])
    await memory.update_thread(threads[0], title="renamed", metadata={"extra": True})
    workflows = store.workflows
    for w in ("checkout", "wf:{x}"):
        for r in range(3):
            run_id = f"run-{r}" if r else "shared\nid"
            await workflows.persist_snapshot(
                w, run_id, {"step": 1}, resource_id="alice", status="running", created_at=at(r)
            )
            await workflows.persist_snapshot(w, run_id, {"step": 2, "w": w})
        await workflows.update_run(w, "run-1", status="success", result={"total": 42})
        await workflows.update_step_result(w, "run-1", "fetch", {"status": "success", "w": w})
        await workflows.update_run(w, "run-2", status="failed", error={"message": "boom"})
    evals = store.evals
    for n in range(6):
        await evals.save_score(
            Score(
                id=f"score-{WEIRD[n % len(WEIRD)]}-{n}",
                scorer_id=("relevance", "toxicity")[n % 2],
                score=n / 7,
                run_id="run-1",  # several scores of one run
                reason=f"because {n}",
                input={"q": n},
                output=["a", n],
                entity_type="agent",
                entity_id=WEIRD[n % 3],
                trace_id="trace-1" if n < 2 else None,
                span_id="root" if n < 2 else None,
                source=("live", "test")[n % 2],
                metadata={"k": n},
                created_at=at(n),
            )
        )
    spans = []
    for t in range(3):
        trace_id = f"trace-{t}" if t else "trace:{0}"
        spans += [
            Span(
                trace_id=trace_id,
                span_id="child",
                parent_span_id="root",
                name="llm call",
                start_time=at(200 + t + 0.1),
                end_time=at(200 + t + 0.5),
                kind="client",
                attributes={"model": "gpt", "tokens": 12},
                events=[SpanEvent(name="chunk", timestamp=at(200 + t + 0.2), attributes={"i": 1})],
                links=[SpanLink(trace_id="other", span_id="s", attributes={"why": "retry"})],
                status=SpanStatus(code="error", message="timeout") if t == 1 else SpanStatus(),
            ),
            Span(
                trace_id=trace_id,
                span_id="root",
                name="agent run",
                start_time=at(200 + t),
                end_time=at(200 + t + 1),
                scope="kvstore-tests",
                scope_version="1",
                attributes={"user": "alice"},
                resource={"service.name": "svc"},
                status=SpanStatus(code="ok"),
            ),
        ]
    await store.traces.save_spans(spans)
    await store.langgraph_items.batch(
        [
            PutItem(
                namespace=("memories", w),
                key=f"item-{n}-{w}",
                value={"text": f"fact {n}", "kind": ("note", "fact")[n % 2], "n": n},
                ttl=10_000_000 if n % 2 else None,
            )
            for n, w in enumerate(WEIRD)
        ]
    )
    binary = ("msgpack", bytes(range(256)))
    for t, thread in enumerate(["lg-1", *WEIRD[:3]]):
        for n in range(3 + t):
            ns = "" if n % 2 == 0 else f"child:{WEIRD[n % len(WEIRD)]}"
            await store.checkpoints.put(
                thread,
                ns,
                f"cp-{n:03d}",
                checkpoint=("json", b'{"n": %d}' % n),
                metadata=binary,
                versions={"a": f"{n // 2}", "b\x00": "1"},
                blobs=[("a", f"{n // 2}", ("json", b"%d" % n)), ("b\x00", "1", binary)],
                parent_id=f"cp-{n - 1:03d}" if n else None,
                run_id=f"run-{n % 2}" if t else None,
                filters={"source": ("input", "loop")[n % 2], "step": n, "long": "x" * 300},
            )
            await store.checkpoints.put_writes(
                thread, ns, f"cp-{n:03d}", "task", [(0, "ch", binary), (-3, "i", ("json", b"1"))]
            )


async def records(store: Storage) -> dict[str, list[Any]]:
    """Every record of every kind, in walk order."""
    out: dict[str, list[Any]] = {}
    for name in KIND_NAMES:
        out[name] = []
        async for step in KINDS_BY_NAME[name].walk(store, None, 50):
            out[name] += step.records
    return out


async def snapshot(store: Storage) -> dict[str, Any]:
    """What two equal stores agree on: every record, sorted by its id, each thread's
    messages in the thread's order, and what the listings (the indexes) return."""
    found = await records(store)
    memory = store.memory
    by_thread: dict[str, list[Message]] = {}
    for message in found["messages"]:
        by_thread.setdefault(message.thread_id, []).append(message)
    listings: dict[str, Any] = {
        f"threads of {rid}": (
            await memory.list_threads(rid, order_by="updated_at", per_page=100)
        ).items
        for rid in RESOURCES
    }
    for status in ("running", "success", "failed"):
        listings[f"runs {status}"] = (await store.workflows.list_runs(status=status)).items
    listings["runs of alice"] = (await store.workflows.list_runs(resource_id="alice")).items
    listings["scores of run-1"] = (await store.evals.list_scores(run_id="run-1")).items
    listings["scores of a span"] = (await store.evals.list_scores(span=("trace-1", "root"))).items
    listings["test scores"] = (await store.evals.list_scores(source="test")).items
    listings["traces"] = (await store.traces.list_traces()).items
    listings["store notes"] = await store.langgraph_items.batch(
        [SearchItems(namespace_prefix=("memories",), filter={"kind": "note"}, refresh_ttl=False)]
    )
    listings["store namespaces"] = await store.langgraph_items.batch([ListNamespaces()])
    for thread in ("lg-1", WEIRD[2]):
        for filters in ({"source": "loop"}, {"step": 2, "long": "x" * 300}):
            page = await store.checkpoints.list(thread, filters=filters)
            listings[f"checkpoints of {thread} {filters}"] = [
                msgspec.structs.replace(c, tokens={}) for c in page.items
            ]
    return {
        "resources": sorted(found["resources"], key=lambda r: r.id),
        "threads": sorted(found["threads"], key=lambda t: t.id),
        "messages": by_thread,
        "runs": sorted(found["runs"], key=lambda r: (r.workflow_name, r.run_id)),
        "scores": sorted(found["scores"], key=lambda s: s.id),
        "spans": sorted(found["spans"], key=lambda s: (s.trace_id, s.span_id)),
        "store_items": sorted(found["store_items"], key=lambda i: (i.namespace, i.key)),
        "checkpoints": sorted(
            found["checkpoints"], key=lambda c: (c.thread_id, c.namespace, c.checkpoint_id)
        ),
        "listings": listings,
    }
