"""Studio: server time per page, a small store against a large one, side by side.

Two stores on the memory driver (no network between the studio and the data, so what is
timed is the studio's own work and the store calls it makes): a **small** one (a thread of
1,000 messages, 500 runs, 500 scores, 500 traces of 10 spans: just enough to fill every
page, filtered ones included, so that both stores render as much) and a **large** one (a
thread of 10^5 messages, 10^4 runs, 10^4 scores, 10^4 traces of 10 spans; 5,000 messages
and 2,500 of the others in `--quick` mode). Each page is requested in-process through the
studio's ASGI app (httpx's ASGI transport) from both stores, interleaved in rounds; the
time is the whole request handled by the app: the store calls, the rendering, the
response. A page that reads
only what it shows takes the same time on both: the ratio large / small stays near 1.
The same pages through a real Redis are in the second table (their store calls are then
round trips on loopback), when `redis-server` is there.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from benchmarks._env import Env, SkipSection, missing
from benchmarks._harness import TIMES, Contender, Report, fmt_ratio, fmt_time, interleave
from kvstore import Message, Resource, Score, Span, SpanStatus, Storage, Thread, WorkflowRun

if TYPE_CHECKING:
    import httpx

NAME = "studio"
TITLE = "9. Studio: server time per page, small store vs large store"

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BIG_THREAD = "big"
RESOURCE = "user-0"
SPANS_PER_TRACE = 10
#: Small enough to be small, large enough to fill every page the studio shows (25 rows of
#: any filtered listing, a chart of 200 scores), so both stores render the same amount.
SMALL = {"messages": 1_000, "runs": 500, "traces": 500}

#: The pages measured, one of each kind (ids that :func:`fill_large` makes).
PAGES = [
    "/",
    f"/resource?id={RESOURCE}",
    f"/thread?id={BIG_THREAD}",
    f"/thread?id={BIG_THREAD}&page=1",
    "/runs",
    "/runs?workflow=wf-1&status=suspended",
    "/run?workflow=wf-0&id=run-000000",
    "/scores",
    "/scores?scorer=relevancy&source=live",
    "/score?id=score-000000",
    "/traces",
    "/traces?name=agent.generate&attr=user.id%3Duser-1",
    "/trace?id=trace-000000",
]


async def fill_large(store: Storage, *, messages: int, runs: int, traces: int) -> None:
    """A store to browse: a resource with a thread of ``messages`` messages and
    ``runs // 10`` more threads; ``runs`` resources, runs and scores; ``traces`` traces of
    10 spans. Written through the public batch calls (``save_messages``, ``restore_*``,
    ``save_spans``)."""
    memory = store.memory
    await memory.restore_resources(
        Resource(id=f"user-{i}", working_memory=f"# user {i}", created_at=T0 + timedelta(i))
        for i in range(max(1, runs))
    )
    await memory.restore_threads(
        [
            Thread(id=BIG_THREAD, resource_id=RESOURCE, title="A long thread", created_at=T0),
            *(
                Thread(id=f"thread-{i}", resource_id=RESOURCE, created_at=T0)
                for i in range(runs // 10)
            ),
        ]
    )
    for start in range(0, messages, 1000):
        await memory.restore_messages(
            Message(
                id=f"m{i:07}",
                thread_id=BIG_THREAD,
                role="user" if i % 2 else "assistant",
                content=_content(i),
                created_at=T0 + timedelta(milliseconds=i),
            )
            for i in range(start, min(messages, start + 1000))
        )
    snapshot = {
        "context": {f"step-{s}": {"status": "success", "output": "x" * 60} for s in range(8)}
    }
    statuses = ("success", "suspended", "failed", "running")
    for start in range(0, runs, 1000):
        chunk = range(start, min(runs, start + 1000))
        await store.workflows.restore_runs(
            WorkflowRun(
                workflow_name=f"wf-{i % 3}",
                run_id=f"run-{i:06}",
                snapshot=snapshot,
                version=3,
                created_at=T0 + timedelta(seconds=i),
                updated_at=T0 + timedelta(seconds=i),
                resource_id=f"user-{i % 4}",
                status=statuses[i % 4],
            )
            for i in chunk
        )
        await store.evals.restore_scores(
            Score(
                id=f"score-{i:06}",
                scorer_id=("relevancy", "accuracy")[i % 2],
                score=(i * 37 % 100) / 100,
                reason="The answer covers the question." * 3,
                input={"question": "What's the weather?"},
                output={"text": "Sunny."},
                entity_type="agent",
                entity_id="weather-agent",
                source="live" if i % 5 else "test",
                created_at=T0 + timedelta(seconds=i),
            )
            for i in chunk
        )
    for start in range(0, traces, 100):
        await store.traces.save_spans(
            span for t in range(start, min(traces, start + 100)) for span in _trace(t)
        )


def _content(i: int) -> Any:
    if i % 4 == 3:
        return {
            "format": 2,
            "parts": [
                {"type": "reasoning", "reasoning": "Look it up."},
                {
                    "type": "tool-invocation",
                    "toolInvocation": {
                        "state": "result",
                        "toolCallId": f"c{i}",
                        "toolName": "lookup",
                        "args": {"q": i},
                        "result": {"ok": True, "value": i},
                    },
                },
                {"type": "text", "text": f"Here is answer {i}."},
            ],
        }
    return f"Message {i}: " + "lorem ipsum dolor sit amet " * 4


def _trace(t: int) -> list[Span]:
    start = T0 + timedelta(seconds=t)
    spans = [
        Span(
            trace_id=f"trace-{t:06}",
            span_id="s0",
            name="agent.generate",
            start_time=start,
            end_time=start + timedelta(milliseconds=900),
            attributes={"user.id": f"user-{t % 2}"},
            scope="bench",
        )
    ]
    for s in range(1, SPANS_PER_TRACE):
        spans.append(
            Span(
                trace_id=f"trace-{t:06}",
                span_id=f"s{s}",
                parent_span_id="s0" if s < 4 else f"s{s % 4 or 1}",
                name=f"step-{s}",
                start_time=start + timedelta(milliseconds=s * 80),
                end_time=start + timedelta(milliseconds=s * 80 + 60),
                status=SpanStatus(code="error") if s == 7 else SpanStatus(),
                attributes={"n": s},
            )
        )
    return spans


async def run(env: Env) -> Report:
    if note := missing("starlette", "jinja2", "httpx"):
        raise SkipSection(note)
    import httpx

    from kvstore.studio import create_app

    report = Report(NAME, TITLE, env.out)
    report.text(__doc__.split("\n\n", 1)[1])
    large = {"messages": 5_000, "runs": 2_500, "traces": 2_500}
    if not env.mode.quick:
        large = {"messages": 100_000, "runs": 10_000, "traces": 10_000}
    built = time.perf_counter()
    small_store, large_store = Storage(), Storage()
    await fill_large(small_store, **SMALL)
    await fill_large(large_store, **large)
    report.text(
        f"Sizes: small {_sizes(SMALL)}; large {_sizes(large)} "
        f"(built in {time.perf_counter() - built:.0f} s)."
    )
    rows, worst = await _measure(env, httpx, create_app, small_store, large_store)
    report.table(["page", "small p50", "large p50", "large / small (p50)", "p99 ratio"], rows)
    report.headline(
        "server time per page, large store / small store (every page)",
        f"≤ 1.5{TIMES}",
        f"{fmt_ratio(worst)} at worst",
        worst <= 1.5,
    )
    try:
        url = env.fresh_redis()
    except SkipSection as exc:
        report.skip("the pages over Redis", str(exc))
        return report
    async with (
        Storage.from_url(url, namespace="small") as small_redis,
        Storage.from_url(url, namespace="large") as large_redis,
    ):
        await fill_large(small_redis, **SMALL)
        await fill_large(large_redis, **large)
        report.heading("The same pages over Redis")
        report.text(
            "The same sizes in two namespaces of a private redis-server on loopback: each "
            "store call is now a round trip."
        )
        rows, worst = await _measure(env, httpx, create_app, small_redis, large_redis)
        report.table(["page", "small p50", "large p50", "large / small (p50)", "p99 ratio"], rows)
        report.headline(
            "server time per page over Redis, large / small (every page)",
            f"≤ 1.5{TIMES}",
            f"{fmt_ratio(worst)} at worst",
            worst <= 1.5,
        )
    return report


def _sizes(sizes: dict[str, int]) -> str:
    return (
        f"a thread of {sizes['messages']:,} messages, {sizes['runs']:,} runs and scores, "
        f"{sizes['traces']:,} traces"
    )


async def _measure(
    env: Env, httpx: Any, create_app: Any, small: Storage, large: Storage
) -> tuple[list[list[str]], float]:
    """Each page from both stores, interleaved: the table rows and the worst p50 ratio."""
    clients: list[httpx.AsyncClient] = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(store)), base_url="http://127.0.0.1"
        )
        for store in (small, large)
    ]
    rows = []
    worst = 0.0
    try:
        for path in PAGES:
            contenders = []
            for label, client in zip(("small", "large"), clients, strict=True):

                async def get(client: httpx.AsyncClient = client, path: str = path) -> None:
                    response = await client.get(path)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path}: HTTP {response.status_code}")

                contenders.append(Contender(label, get))
            stats = await interleave(contenders, env.mode.io)
            p50, p99 = stats["large"].ratio_to(stats["small"])
            worst = max(worst, p50)
            rows.append(
                [
                    f"`{path}`",
                    fmt_time(stats["small"].p50),
                    fmt_time(stats["large"].p50),
                    fmt_ratio(p50),
                    fmt_ratio(p99),
                ]
            )
    finally:
        for client in clients:
            await client.aclose()
    return rows, worst
