"""Rendering records for people (rich tables and trees) and for programs (JSON lines)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from kvstore.demo import content_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from rich.console import Console, RenderableType

    from kvstore.records import Span, SpanStatus
    from kvstore.transfer import KindCheck

__all__ = ["checks_table", "counts_table", "json_lines", "show", "span_tree", "table", "when"]

_json = msgspec.json.Encoder()
#: Longest cell text before it is cut (tables are for a glance; --json has everything).
_CELL = 80


def when(moment: datetime | None) -> str:
    """A time as tables show it: UTC, to the second."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def cell(value: Any) -> Text:
    """Any value as a table cell: user text is never read as rich markup."""
    if value is None:
        return Text("")
    if isinstance(value, datetime):
        return Text(when(value))
    text = value if isinstance(value, str) else _json.encode(value).decode()
    text = " ".join(text.split("\n"))
    return Text(text if len(text) <= _CELL else text[: _CELL - 1] + "…")


def content(value: Any) -> Text:
    """A message's content on one line."""
    return cell(content_text(value))


def show(console: Console, title: str, renderable: RenderableType) -> None:
    """Print a title line (never wrapped into the table's width), then ``renderable``."""
    console.print(Text(title, style="bold"), soft_wrap=True)
    console.print(renderable)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A table with these columns; each row's values go through :func:`cell`."""
    grid = Table(header_style="bold")
    for name in columns:
        grid.add_column(name)
    for row in rows:
        grid.add_row(*(v if isinstance(v, Text) else cell(v) for v in row))
    return grid


def json_lines(records: Iterable[Any]) -> None:
    """Write records to stdout as JSON, one per line."""
    write = sys.stdout.buffer.write
    for record in records:
        write(_json.encode(record) + b"\n")
    sys.stdout.buffer.flush()


def _status(status: SpanStatus) -> Text:
    style = {"ok": "green", "error": "red"}.get(status.code, "dim")
    text = status.code if status.message is None else f"{status.code}: {status.message}"
    return Text(text, style=style)


def _duration(span: Span) -> str:
    if span.end_time is None:
        return "running"
    millis = (span.end_time - span.start_time).total_seconds() * 1000
    return f"{millis:.1f} ms" if millis < 10_000 else f"{millis / 1000:.2f} s"


def span_tree(trace_id: str, spans: Sequence[Span]) -> Tree:
    """A trace as a tree: each span under its parent (``spans`` parents first)."""
    tree = Tree(Text.assemble(("trace ", "bold"), trace_id))
    nodes: dict[str, Tree] = {}
    for span in spans:
        label = Text.assemble(
            (span.name, "bold"),
            f"  {_duration(span)}  ",
            _status(span.status),
            (f"  {when(span.start_time)}  {span.span_id}", "dim"),
        )
        parent = nodes.get(span.parent_span_id or "", tree)
        nodes[span.span_id] = parent.add(label)
    return tree


def counts_table(columns: Sequence[str], rows: Mapping[str, Sequence[int]]) -> Table:
    """Counts per kind, right-aligned, with a total row."""
    grid = Table(header_style="bold")
    grid.add_column("kind")
    for name in columns:
        grid.add_column(name, justify="right")
    for kind, values in rows.items():
        grid.add_row(kind, *(f"{v:,}" for v in values))
    totals = [sum(values[i] for values in rows.values()) for i in range(len(columns))]
    grid.add_row(Text("total", style="bold"), *(f"{v:,}" for v in totals))
    return grid


def checks_table(checks: Sequence[KindCheck]) -> Table:
    """Counts and checksums per kind on both sides of a migration."""
    grid = Table(header_style="bold")
    for name in ("kind", "source", "destination", "source checksum", "destination checksum"):
        grid.add_column(name, justify="right" if name in ("source", "destination") else "left")
    grid.add_column("")
    for check in checks:
        grid.add_row(
            check.kind,
            f"{check.source.count:,}",
            f"{check.destination.count:,}",
            check.source.checksum[:16],
            check.destination.checksum[:16],
            Text("ok", style="green") if check.ok else Text("DIFFERENT", style="bold red"),
        )
    return grid
