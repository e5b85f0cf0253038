"""Inspection: ``threads``, ``messages``, ``runs``, ``scores``, ``score-stats``, ``traces``,
``trace``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import click

from kvstore.cli._common import CLIError, open_store, out, resolve_url, run, store_options
from kvstore.cli._render import content, json_lines, show, span_tree, table, when

if TYPE_CHECKING:
    from kvstore.records import ScoreSource

__all__ = ["COMMANDS"]

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
_limit_option = click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="Rows to show."
)
_page_option = click.option(
    "--page", default=0, show_default=True, type=click.IntRange(0), help="Page, from 0."
)
_AGO = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>s|m|h|d|w)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, *, now: datetime | None = None) -> datetime:
    """A time given as ISO 8601 (UTC when it has no offset) or as an age: ``90s``, ``15m``,
    ``2h``, ``7d``, ``1w``.

    Raises:
        click.BadParameter: neither.
    """
    match = _AGO.fullmatch(value.strip())
    if match:
        age = timedelta(**{_UNITS[match["unit"]]: float(match["n"])})
        return (now or datetime.now(UTC)) - age
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an ISO 8601 time nor an age such as 15m, 2h or 7d"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_metadata(values: tuple[str, ...]) -> dict[str, Any]:
    """``--metadata KEY=VALUE`` options as a filter: a VALUE that reads as JSON (``1``,
    ``true``, ``null``, ``"1"``) is that value, any other is the text itself.

    Raises:
        click.BadParameter: an option without ``=``.
    """
    wanted: dict[str, Any] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r}: expected KEY=VALUE", param_hint="--metadata")
        try:
            wanted[key] = json.loads(text)
        except ValueError:
            wanted[key] = text
    return wanted


@click.command()
@click.argument("resource", required=False)
@store_options
@_limit_option
@_page_option
@click.option(
    "--order-by",
    type=click.Choice(["updated", "created"]),
    default="updated",
    show_default=True,
    help="Newest first by last activity or by creation.",
)
@click.option(
    "--metadata",
    "metadata",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only threads whose metadata has KEY equal to VALUE (JSON, or else text); "
    "repeat to require several.",
)
@_json_option
def threads(
    *,
    resource: str | None,
    url: str | None,
    namespace: str,
    limit: int,
    page: int,
    order_by: Literal["updated", "created"],
    metadata: tuple[str, ...],
    as_json: bool,
) -> None:
    """List a resource's (a user's) threads, or every thread, most recent first."""
    store_url = resolve_url(url)
    wanted = parse_metadata(metadata)

    async def main() -> None:
        async with open_store(store_url, namespace) as store:
            listing = await store.memory.list_threads(
                resource,
                page=page,
                per_page=limit,
                order_by="updated_at" if order_by == "updated" else "created_at",
                metadata=wanted or None,
            )
        if as_json:
            json_lines(listing.items)
            return
        rows = [
            (t.id, t.title, when(t.created_at), when(t.updated_at), t.metadata or None)
            for t in listing.items
        ]
        shown = f"{len(rows)} of {listing.total}"
        owner = "every thread" if resource is None else f"threads of {resource!r}"
        title = f"{owner}{f' with {wanted}' if wanted else ''} ({shown})"
        show(out, title, table(["id", "title", "created", "updated", "metadata"], rows))

    run(main)


@click.command()
@click.argument("thread")
@store_options
@click.option(
    "--last",
    default=20,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Show the newest N messages.",
)
@click.option("--all", "everything", is_flag=True, help="Show every message, oldest first.")
@_json_option
def messages(
    *, thread: str, url: str | None, namespace: str, last: int, everything: bool, as_json: bool
) -> None:
    """Show a thread's messages, oldest first."""
    store_url = resolve_url(url)

    async def main() -> None:
        async with open_store(store_url, namespace) as store:
            found = await store.memory.get_thread(thread)
            if found is None:
                raise CLIError(f"no thread {thread!r} in namespace {namespace!r}")
            if everything:
                # Streamed chunk by chunk: a thread may be long.
                items = []
                cursor = None
                while True:
                    chunk = await store.memory.export_messages(thread, cursor=cursor, count=500)
                    if as_json:
                        json_lines(chunk.items)
                    else:
                        items += chunk.items
                    cursor = chunk.cursor
                    if cursor is None:
                        break
                total = len(items)
            else:
                listing = await store.memory.list_messages(thread, last=last)
                items, total = listing.items, listing.total
        if as_json:
            if not everything:
                json_lines(items)
            return
        rows = [(when(m.created_at), m.role, content(m.content), m.id) for m in items]
        title = f"thread {thread!r}: {found.title or ''} ({len(rows)} of {total} messages)"
        show(out, title, table(["time", "role", "content", "id"], rows))

    run(main)


@click.command()
@store_options
@click.option("--workflow", "-w", help="Only this workflow's runs.")
@click.option("--status", "-s", help="Only runs with this status.")
@click.option("--resource", "-r", help="Only this resource's runs.")
@click.option(
    "--older-than",
    metavar="WHEN",
    help="Only runs created before: 7d, 2h, or ISO 8601.",
)
@click.option(
    "--delete",
    is_flag=True,
    help="Delete the runs --older-than selects (with --workflow, --status) instead of listing.",
)
@_limit_option
@_page_option
@_json_option
def runs(
    *,
    url: str | None,
    namespace: str,
    workflow: str | None,
    status: str | None,
    resource: str | None,
    older_than: str | None,
    delete: bool,
    limit: int,
    page: int,
    as_json: bool,
) -> None:
    """List workflow runs, newest first; or delete old ones."""
    store_url = resolve_url(url)
    cutoff = None if older_than is None else parse_when(older_than)
    if delete and cutoff is None:
        raise click.UsageError("--delete needs --older-than")
    if delete and resource is not None:
        raise click.UsageError("--delete takes --workflow and --status, not --resource")

    async def main() -> None:
        async with open_store(store_url, namespace) as store:
            if delete:
                assert cutoff is not None
                deleted = await store.workflows.delete_runs(
                    older_than=cutoff, workflow_name=workflow, status=status
                )
                out.print(f"deleted {deleted} runs created before {when(cutoff)}")
                return
            listing = await store.workflows.list_runs(
                workflow,
                status=status,
                resource_id=resource,
                # Strictly before, as delete_runs counts: to_date is inclusive.
                to_date=None if cutoff is None else cutoff - timedelta(microseconds=1),
                page=page,
                per_page=limit,
            )
        if as_json:
            json_lines(listing.items)
            return
        rows = [
            (r.workflow_name, r.run_id, r.status, r.version, when(r.created_at), when(r.updated_at))
            for r in listing.items
        ]
        columns = ["workflow", "run", "status", "version", "created", "updated"]
        show(out, f"runs ({len(rows)} of {listing.total})", table(columns, rows))

    run(main)


def _entity(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    kind, sep, id_ = value.partition(":")
    if not (sep and kind and id_):
        raise click.BadParameter(f"expected TYPE:ID, such as agent:weather, not {value!r}")
    return kind, id_


@click.command()
@store_options
@click.option("--scorer", help="Only this scorer's scores.")
@click.option("--run", "run_id", help="Only the scores of this run (not combinable).")
@click.option("--entity", metavar="TYPE:ID", help="Only scores of this entity.")
@click.option("--source", type=click.Choice(["live", "test"]), help="Only live or test scores.")
@click.option("--since", metavar="WHEN", help="Only scores made since: 2h, 7d, or ISO 8601.")
@click.option("--until", metavar="WHEN", help="Only scores made until then.")
@click.option("--min", "min_score", type=float, help="Only scores of at least this; highest first.")
@click.option("--max", "max_score", type=float, help="Only scores of at most this; highest first.")
@click.option(
    "--meta",
    metavar="KEY=VALUE",
    help="Only scores whose metadata has KEY equal to VALUE (read as JSON if it is: 1, true).",
)
@_limit_option
@_page_option
@_json_option
def scores(
    *,
    url: str | None,
    namespace: str,
    scorer: str | None,
    run_id: str | None,
    entity: str | None,
    source: ScoreSource | None,
    since: str | None,
    until: str | None,
    min_score: float | None,
    max_score: float | None,
    meta: str | None,
    limit: int,
    page: int,
    as_json: bool,
) -> None:
    """List eval scores, newest first (by score with --min or --max).

    A time window does not combine with --min or --max; --run and --meta combine with a
    time window (and --meta with --scorer) only.
    """
    store_url = resolve_url(url)
    pair = _entity(entity)
    from_date = None if since is None else parse_when(since)
    to_date = None if until is None else parse_when(until)
    metadata = _meta(meta)

    async def main() -> None:
        async with open_store(store_url, namespace) as store:
            listing = await store.evals.list_scores(
                scorer_id=scorer,
                run_id=run_id,
                entity=pair,
                source=source,
                from_date=from_date,
                to_date=to_date,
                min_score=min_score,
                max_score=max_score,
                metadata=metadata,
                page=page,
                per_page=limit,
            )
        if as_json:
            json_lines(listing.items)
            return
        rows = [
            (
                s.scorer_id,
                f"{s.score:g}",
                s.run_id,
                None if s.entity_type is None else f"{s.entity_type}:{s.entity_id}",
                s.source,
                when(s.created_at),
                s.reason,
            )
            for s in listing.items
        ]
        columns = ["scorer", "score", "run", "entity", "source", "created", "reason"]
        show(out, f"scores ({len(rows)} of {listing.total})", table(columns, rows))

    run(main)


def _meta(value: str | None) -> dict[str, Any] | None:
    """``KEY=VALUE`` as a metadata filter; VALUE is JSON when it parses as JSON."""
    if value is None:
        return None
    key, sep, text = value.partition("=")
    if not sep:
        raise click.BadParameter(f"expected KEY=VALUE, such as model=gpt-4o, not {value!r}")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = text
    return {key: parsed}


@click.command("score-stats")
@click.argument("scorer")
@store_options
@click.option(
    "--since", metavar="WHEN", default="1d", show_default=True, help="From: 2h, 7d, or ISO 8601."
)
@click.option("--until", metavar="WHEN", help="Until then (default: now).")
@click.option(
    "--by",
    "bucket",
    type=click.Choice(["hour", "day"]),
    default="hour",
    show_default=True,
    help="Period length (UTC); at most 1000 periods.",
)
@_json_option
def score_stats(
    *,
    scorer: str,
    url: str | None,
    namespace: str,
    since: str,
    until: str | None,
    bucket: Literal["hour", "day"],
    as_json: bool,
) -> None:
    """Show a scorer's count, mean, min and max per hour or day (periods with scores)."""
    store_url = resolve_url(url)
    from_date = parse_when(since)
    to_date = datetime.now(UTC) if until is None else parse_when(until)
    length = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    periods = (to_date - epoch) // length - (from_date - epoch) // length + 1

    async def main() -> None:
        async with open_store(store_url, namespace) as store:
            stats = await store.evals.score_stats(
                scorer, from_date=from_date, to_date=to_date, bucket=bucket
            )
        if as_json:
            json_lines(stats)
            return
        rows = [(when(s.start), s.count, f"{s.mean:g}", f"{s.min:g}", f"{s.max:g}") for s in stats]
        columns = [bucket, "count", "mean", "min", "max"]
        title = f"{scorer} by {bucket} ({len(rows)} of {periods} {bucket}s with scores)"
        show(out, title, table(columns, rows))

    run(main)


@click.command()
@store_options
@click.option("--since", metavar="WHEN", help="Only traces started since: 2h, 7d, or ISO 8601.")
@click.option("--until", metavar="WHEN", help="Only traces started until then.")
@click.option("--name", help="Only traces whose root span has this name.")
@click.option("--scope", help="Only traces whose root span has this scope.")
@click.option("--error", "has_error", is_flag=True, help="Only traces with an error in any span.")
@click.option(
    "--status",
    type=click.Choice(["ok", "error", "unset"]),
    help="Only traces whose root span has this status.",
)
@click.option("--user", "user_id", help="Only traces whose root span's user.id is this.")
@click.option("--thread", "thread_id", help="Only traces whose root span's thread.id is this.")
@click.option("--session", "session_id", help="Only traces whose root span's session.id is this.")
@click.option("--run", "run_id", help="Only traces whose root span's run.id is this.")
@click.option("--tag", help="Only traces whose root span's tags attribute holds this tag.")
@click.option("--env", "environment", help="Only traces of this deployment environment.")
@click.option("--service", help="Only traces whose root span's service.name is this.")
@_limit_option
@_page_option
@_json_option
def traces(
    *,
    url: str | None,
    namespace: str,
    since: str | None,
    until: str | None,
    name: str | None,
    scope: str | None,
    has_error: bool,
    status: Literal["ok", "error", "unset"] | None,
    user_id: str | None,
    thread_id: str | None,
    session_id: str | None,
    run_id: str | None,
    tag: str | None,
    environment: str | None,
    service: str | None,
    limit: int,
    page: int,
    as_json: bool,
) -> None:
    """List traces, newest first.

    --error, --status, --tag, --env and --service each combine with --since and --until
    only; --user, --thread, --session and --run with --name and --scope too.
    """
    store_url = resolve_url(url)
    from_date = None if since is None else parse_when(since)
    to_date = None if until is None else parse_when(until)

    async def main() -> None:
        async with open_store(store_url, namespace) as store:
            listing = await store.traces.list_traces(
                name=name,
                scope=scope,
                has_error=has_error,
                status=status,
                user_id=user_id,
                thread_id=thread_id,
                session_id=session_id,
                run_id=run_id,
                tag=tag,
                environment=environment,
                service=service,
                from_date=from_date,
                to_date=to_date,
                page=page,
                per_page=limit,
            )
        if as_json:
            json_lines(listing.items)
            return
        rows = [
            (
                t.trace_id,
                t.name,
                when(t.start_time),
                "" if t.end_time is None else f"{(t.end_time - t.start_time).total_seconds():g} s",
                t.span_count,
                t.error_count,
                t.status.code,
                t.scope,
            )
            for t in listing.items
        ]
        columns = ["trace", "name", "start", "duration", "spans", "errors", "status", "scope"]
        show(out, f"traces ({len(rows)} of {listing.total})", table(columns, rows))

    run(main)


@click.command()
@click.argument("trace_id")
@store_options
@_json_option
def trace(*, trace_id: str, url: str | None, namespace: str, as_json: bool) -> None:
    """Show a trace's spans as a tree."""
    store_url = resolve_url(url)

    async def main() -> None:
        async with open_store(store_url, namespace) as store:
            # The tree shows no attributes: a light read unless the spans are printed whole.
            spans = await store.traces.get_trace(trace_id, with_attributes=as_json)
        if not spans:
            raise CLIError(f"no trace {trace_id!r} in namespace {namespace!r}")
        if as_json:
            json_lines(spans)
        else:
            out.print(span_tree(trace_id, spans))

    run(main)


COMMANDS = [threads, messages, runs, scores, score_stats, traces, trace]
