"""The pages: each reads only what it shows, through the public API, and renders it.

Every handler makes a fixed number of store calls, each a page or one record, so a page
costs the same on a store of ten records and on one of millions (the thread page of a
10^5-message thread reads its 50 messages; the overview reads counts from the listings'
totals). No handler writes.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import anyio
import msgspec
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kvstore.studio import _render as render

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

    from kvstore.records import Message, Page
    from kvstore.storage import Storage
    from kvstore.studio._store import StoreSource

__all__ = ["BadRequestError", "NotFoundPageError", "Pages"]

HERE = Path(__file__).parent
PER_PAGE = 25
MESSAGES_PER_PAGE = 50
CHART_POINTS = 200
STATUSES = ("running", "suspended", "waiting", "pending", "success", "failed", "canceled")


class NotFoundPageError(Exception):
    """Answer 404 with this message."""


class BadRequestError(Exception):
    """Answer 400 with this message."""


def link(path: str, **params: Any) -> str:
    """``path`` with the non-empty ``params`` as its query string."""
    query = {k: str(v) for k, v in params.items() if v is not None and v != ""}
    return f"{path}?{urlencode(query)}" if query else path


async def gather(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run store calls concurrently; their results in order."""
    results: list[Any] = [None] * len(calls)

    async def one(i: int, call: Callable[[], Awaitable[Any]]) -> None:
        results[i] = await call()

    try:
        async with anyio.create_task_group() as group:
            for i, call in enumerate(calls):
                group.start_soon(one, i, call)
    except BaseExceptionGroup as group:
        # The page fails as the first call failed (a KVStoreError picks the error page).
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return results


@dataclass(frozen=True, slots=True)
class Pager:
    """Links to the neighbouring pages of a listing, numbered from 0."""

    page: int
    pages: int
    total: int
    newer: str | None = None
    older: str | None = None
    first: str | None = None
    last: str | None = None


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals |= {
        "link": link,
        "statuses": STATUSES,
        "score_link": lambda score: link("/score", id=score.id),
    }
    env.filters |= {
        "when": render.when,
        "duration": render.duration,
        "json_tree": render.json_tree,
        "json_text": render.json_text,
        "short": render.short,
        "first_line": lambda text: (text or "").strip().splitlines()[0] if text else "",
        "score": lambda value: f"{value:.3g}",
        "pct": lambda value: f"{value:.4f}%",
    }
    return env


class Pages:
    """The handlers, sharing the store and the templates."""

    def __init__(self, source: StoreSource) -> None:
        self.source = source
        self.env = _environment()

    def html(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        page = self.env.get_template(template).render(
            store_label=self.source.label, namespace=self.source.namespace, **context
        )
        return HTMLResponse(page, status_code=status)

    async def store(self) -> Storage:
        return await self.source.get()

    # -- overview -----------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        store = await self.store()
        page = _int(request, "page", 0)
        resources, threads, runs, scores, traces = await gather(
            lambda: store.memory.list_resources(page=page, per_page=PER_PAGE),
            lambda: store.memory.export_threads(count=1),
            lambda: store.workflows.list_runs(per_page=5),
            lambda: store.evals.list_scores(per_page=5),
            lambda: store.traces.list_traces(per_page=5),
        )
        counts = [
            ("resources", resources.total, None),
            ("threads", threads.total, None),
            ("runs", runs.total, "/runs"),
            ("scores", scores.total, "/scores"),
            ("traces", traces.total, "/traces"),
        ]
        return self.html(
            "overview.html",
            title="Overview",
            nav="overview",
            counts=counts,
            resources=resources,
            pager=_pager(resources, lambda p: link("/", page=p or None)),
            runs=runs,
            scores=scores,
            traces=traces,
        )

    async def go(self, request: Request) -> Response:
        """Open whatever has this id: a thread, trace, run, score or resource."""
        query = request.query_params.get("q", "")
        if not query.strip():
            return RedirectResponse("/", status_code=303)
        store = await self.store()
        thread, spans, run, score, resource, threads = await gather(
            lambda: store.memory.get_thread(query),
            lambda: store.traces.get_trace(query),
            lambda: store.workflows.get_run(query),
            lambda: store.evals.get_score(query),
            lambda: store.memory.get_resource(query),
            lambda: store.memory.list_threads(query, per_page=1),
        )
        if thread is not None:
            target = link("/thread", id=query)
        elif spans:
            target = link("/trace", id=query)
        elif run is not None:
            target = link("/run", workflow=run.workflow_name, id=run.run_id)
        elif score is not None:
            target = link("/score", id=query)
        elif resource is not None or threads.total:
            target = link("/resource", id=query)
        else:
            raise NotFoundPageError(
                f"Nothing has the id {query!r}: no thread, trace, run, score or resource."
            )
        return RedirectResponse(target, status_code=303)

    # -- memory ---------------------------------------------------------------------------------

    async def resource(self, request: Request) -> Response:
        resource_id = _required(request, "id")
        page = _int(request, "page", 0)
        store = await self.store()
        resource, threads, runs = await gather(
            lambda: store.memory.get_resource(resource_id),
            lambda: store.memory.list_threads(
                resource_id, page=page, per_page=PER_PAGE, order_by="updated_at"
            ),
            lambda: store.workflows.list_runs(resource_id=resource_id, per_page=5),
        )
        if resource is None and threads.total == 0 and runs.total == 0:
            raise NotFoundPageError(f"No resource {resource_id!r}: no record, thread or run.")
        counts = await store.memory.count_messages([t.id for t in threads.items])
        return self.html(
            "resource.html",
            title=f"Resource {resource_id}",
            nav="overview",
            resource_id=resource_id,
            resource=resource,
            threads=threads,
            message_counts=dict(zip([t.id for t in threads.items], counts, strict=True)),
            pager=_pager(threads, lambda p: link("/resource", id=resource_id, page=p or None)),
            runs=runs,
        )

    async def thread(self, request: Request) -> Response:
        """A thread as a chat; ``page`` counts back from the newest messages (0)."""
        thread_id = _required(request, "id")
        back = _int(request, "page", 0)
        per_page = _int(request, "per_page", MESSAGES_PER_PAGE, high=200, low=1)
        store = await self.store()
        memory = store.memory
        messages: list[Message]
        if back == 0:
            thread, listing = await gather(
                lambda: memory.get_thread(thread_id),
                lambda: memory.list_messages(thread_id, last=per_page),
            )
            total, messages = listing.total, listing.items
        else:
            thread, (total,) = await gather(
                lambda: memory.get_thread(thread_id),
                lambda: memory.count_messages([thread_id]),
            )
            messages = await _window(store, thread_id, total, back, per_page)
        if thread is None:
            raise NotFoundPageError(f"No thread {thread_id!r}.")
        pages = max(1, math.ceil(total / per_page))
        size = per_page if per_page != MESSAGES_PER_PAGE else None

        def at(p: int) -> str:
            return link("/thread", id=thread_id, page=p or None, per_page=size)

        pager = Pager(
            page=back,
            pages=pages,
            total=total,
            newer=at(back - 1) if back > 0 else None,
            older=at(back + 1) if back + 1 < pages else None,
            first=at(0) if back > 0 else None,
            last=at(pages - 1) if back + 1 < pages else None,
        )
        names = render.tool_names(messages)
        return self.html(
            "thread.html",
            title=thread.title or f"Thread {thread_id}",
            nav="overview",
            thread=thread,
            views=[render.message_view(m, names) for m in messages],
            pager=pager,
            first_index=max(0, total - (back + 1) * per_page),
        )

    # -- workflows ------------------------------------------------------------------------------

    async def runs(self, request: Request) -> Response:
        workflow = _text(request, "workflow")
        status = _text(request, "status")
        resource = _text(request, "resource")
        page = _int(request, "page", 0)
        store = await self.store()
        listing = await store.workflows.list_runs(
            workflow, resource_id=resource, status=status, page=page, per_page=PER_PAGE
        )
        filters = {"workflow": workflow, "status": status, "resource": resource}
        return self.html(
            "runs.html",
            title="Runs",
            nav="runs",
            runs=listing,
            filters=filters,
            pager=_pager(listing, lambda p: link("/runs", **filters, page=p or None)),
        )

    async def run(self, request: Request) -> Response:
        run_id = _required(request, "id")
        workflow = _text(request, "workflow")
        store = await self.store()
        found = await store.workflows.get_run(run_id, workflow)
        if found is None:
            where = f" of workflow {workflow!r}" if workflow else ""
            raise NotFoundPageError(f"No run {run_id!r}{where}.")
        return self.html(
            "run.html",
            title=f"Run {run_id}",
            nav="runs",
            run=found,
            steps=_steps(found.snapshot, found.steps),
        )

    async def run_json(self, request: Request) -> Response:
        """The whole run as JSON: what the snapshot tree shows, unabridged."""
        run_id = _required(request, "id")
        store = await self.store()
        found = await store.workflows.get_run(run_id, _text(request, "workflow"))
        if found is None:
            raise NotFoundPageError(f"No run {run_id!r}.")
        return Response(msgspec.json.encode(found), media_type="application/json")

    # -- evals ------------------------------------------------------------------------------------

    async def scores(self, request: Request) -> Response:
        filters = {
            "scorer": _text(request, "scorer"),
            "entity_type": _text(request, "entity_type"),
            "entity_id": _text(request, "entity_id"),
            "source": _text(request, "source"),
            "run": _text(request, "run"),
            "trace": _text(request, "trace"),
            "span": _text(request, "span"),
            "since": _text(request, "since"),
            "until": _text(request, "until"),
            "min": _text(request, "min"),
            "max": _text(request, "max"),
        }
        page = _int(request, "page", 0)
        now = datetime.now(UTC)
        entity = None
        if filters["entity_type"] or filters["entity_id"]:
            if not (filters["entity_type"] and filters["entity_id"]):
                raise BadRequestError("An entity filter needs both its type and its id.")
            entity = (filters["entity_type"], filters["entity_id"])
        span = None
        if filters["trace"] or filters["span"]:
            if not (filters["trace"] and filters["span"]):
                raise BadRequestError("A span filter needs both the trace id and the span id.")
            span = (filters["trace"], filters["span"])
        if filters["source"] not in (None, "live", "test"):
            raise BadRequestError("The source is 'live' or 'test'.")
        arguments: dict[str, Any] = {
            "scorer_id": filters["scorer"],
            "run_id": filters["run"],
            "entity": entity,
            "span": span,
            "source": filters["source"],
            "from_date": _moment(filters["since"], "since", now) if filters["since"] else None,
            "to_date": _moment(filters["until"], "until", now) if filters["until"] else None,
            "min_score": _number(filters["min"], "min"),
            "max_score": _number(filters["max"], "max"),
        }
        store = await self.store()
        listing, plotted = await gather(
            lambda: store.evals.list_scores(**arguments, page=page, per_page=PER_PAGE),
            lambda: store.evals.list_scores(**arguments, per_page=CHART_POINTS),
        )
        return self.html(
            "scores.html",
            title="Scores",
            nav="scores",
            scores=listing,
            filters=filters,
            chart=render.chart(plotted.items),
            plotted=len(plotted.items),
            pager=_pager(listing, lambda p: link("/scores", **filters, page=p or None)),
        )

    async def score(self, request: Request) -> Response:
        score_id = _required(request, "id")
        store = await self.store()
        found = await store.evals.get_score(score_id)
        if found is None:
            raise NotFoundPageError(f"No score {score_id!r}.")
        return self.html("score.html", title=f"Score {score_id}", nav="scores", score=found)

    # -- traces -----------------------------------------------------------------------------------

    async def traces(self, request: Request) -> Response:
        filters = {
            "name": _text(request, "name"),
            "attr": _text(request, "attr"),
            "since": _text(request, "since"),
            "until": _text(request, "until"),
        }
        page = _int(request, "page", 0)
        now = datetime.now(UTC)
        attributes = _attribute(filters["attr"]) if filters["attr"] else None
        since = _moment(filters["since"], "since", now) if filters["since"] else None
        until = _moment(filters["until"], "until", now) if filters["until"] else None
        store = await self.store()
        listing = await store.traces.list_traces(
            name=filters["name"],
            attributes=attributes,
            from_date=since,
            to_date=until,
            page=page,
            per_page=PER_PAGE,
        )
        return self.html(
            "traces.html",
            title="Traces",
            nav="traces",
            traces=listing,
            filters=filters,
            pager=_pager(listing, lambda p: link("/traces", **filters, page=p or None)),
        )

    async def trace(self, request: Request) -> Response:
        trace_id = _required(request, "id")
        store = await self.store()
        spans = await store.traces.get_trace(trace_id)
        if not spans:
            raise NotFoundPageError(f"No trace {trace_id!r}.")
        layout = render.waterfall(spans)
        chosen = request.query_params.get("span")
        selected = next((b for b in layout.bars if b.span.span_id == chosen), None)
        root = next((b for b in layout.bars if b.depth == 0), layout.bars[0])
        return self.html(
            "trace.html",
            title=f"Trace {root.span.name}",
            nav="traces",
            trace_id=trace_id,
            layout=layout,
            root=root.span,
            selected=selected,
        )


# -- arguments --------------------------------------------------------------------------------


def _text(request: Request, name: str) -> str | None:
    """A query parameter, None when absent or empty."""
    value = request.query_params.get(name)
    return value if value else None


def _required(request: Request, name: str) -> str:
    value = _text(request, name)
    if value is None:
        raise BadRequestError(f"The address lacks its {name!r} parameter.")
    return value


def _int(request: Request, name: str, default: int, *, low: int = 0, high: int = 10**9) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"{name!r} must be a whole number, not {raw!r}.") from None
    if not low <= value <= high:
        raise BadRequestError(f"{name!r} must be from {low} to {high}.")
    return value


_AGE = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>s|m|h|d|w)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _number(value: str | None, name: str) -> float | None:
    """A number given in the address, or None."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise BadRequestError(f"{name!r} must be a number, not {value!r}.") from None


def _moment(value: str, name: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC unless it says otherwise) or an age: ``15m``, ``2h``, ``7d``."""
    match = _AGE.fullmatch(value.strip())
    if match:
        return now - timedelta(**{_UNITS[match["unit"]]: float(match["n"])})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadRequestError(
            f"{name!r} is neither an ISO 8601 time nor an age such as 15m, 2h or 7d: {value!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _attribute(value: str) -> dict[str, Any]:
    """``key=value``: the value is a number or boolean when written as JSON, else text
    (quote it to search for the text ``"42"``)."""
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise BadRequestError("The attribute filter reads key=value, e.g. user.id=alice.")
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw
    if not isinstance(parsed, str | int | float | bool):
        parsed = raw
    return {key.strip(): parsed}


# -- helpers ------------------------------------------------------------------------------------


def _pager(listing: Page[Any], at: Callable[[int], str]) -> Pager:
    pages = max(1, math.ceil(listing.total / listing.per_page))
    return Pager(
        page=listing.page,
        pages=pages,
        total=listing.total,
        newer=at(listing.page - 1) if listing.page > 0 else None,
        older=at(listing.page + 1) if listing.has_more else None,
        first=at(0) if listing.page > 1 else None,
        last=at(pages - 1) if listing.page + 2 < pages else None,
    )


async def _window(
    store: Storage, thread_id: str, total: int, back: int, per_page: int
) -> list[Message]:
    """The messages ``back`` pages before the newest: ranks ``[total - (back + 1) * n,
    total - back * n)``, read as the one or two pages of size n that cover them."""
    end = total - back * per_page
    if end <= 0:
        return []
    start = max(0, end - per_page)
    first, last = start // per_page, (end - 1) // per_page
    pages = await gather(
        *(
            lambda p=p: store.memory.list_messages(thread_id, page=p, per_page=per_page)
            for p in range(first, last + 1)
        )
    )
    messages = [m for listing in pages for m in listing.items]
    offset = first * per_page
    return messages[start - offset : end - offset]


def _steps(snapshot: Any, results: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """A workflow run's steps and their status, when its snapshot keeps them as Mastra does
    (``context: {step: {status, ...}}``) or its step results do (``update_step_result``,
    which win): what the run page lists above the tree."""
    context = snapshot.get("context") if isinstance(snapshot, dict) else None
    merged = {**(context if isinstance(context, dict) else {}), **results}
    steps = []
    for name, step in merged.items():
        if isinstance(step, dict) and isinstance(step.get("status"), str):
            detail = step.get("suspendPayload") or step.get("error") or None
            steps.append((str(name), step["status"], detail))
    return steps
