"""The export format: versioned JSON Lines, written and read streaming.

A file is UTF-8, one JSON object per line:

1. a header: ``{"format": "kvstore-export", "version": 1, "kvstore": "0.1.0",
   "namespace": "kv", "codec": "json", "exported_at": "2026-03-14T09:00:00Z"}``;
2. one line per record, ``{"kind": KIND, "record": {...}}``, where ``KIND`` is
   ``resource``, ``thread``, ``message``, ``run``, ``score``, ``span``, ``store_item`` or
   ``checkpoint`` and the record has the fields of :class:`~kvstore.records.Resource`,
   :class:`~kvstore.records.Thread`, :class:`~kvstore.records.Message`,
   :class:`~kvstore.records.WorkflowRun`, :class:`~kvstore.records.Score`,
   :class:`~kvstore.records.Span`, :class:`~kvstore.records.StoreItem` or
   :class:`~kvstore.records.StoredCheckpoint` (its bytes as base64; fields left at their
   defaults may be left out). Records come in an order that imports: resources, then each
   thread followed by its messages in the thread's order, then runs, scores, spans, store
   items and checkpoints (thread by thread, oldest first);
3. an end line, ``{"kind": "end", "counts": {...}, "checksums": {...}}``, with the number
   of records of each kind and their checksums (see :mod:`~kvstore.transfer._digest`),
   so that a truncated or altered file is noticed.

Readers refuse a version they do not know. Later versions of the same major format may add
header fields, line kinds and record fields; records follow msgspec's schema-evolution rules
(new fields get defaults), so a file written by an older kvstore still imports.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads DumpHeader's annotations at runtime
from typing import IO, TYPE_CHECKING, Any, Final

import msgspec

import kvstore
from kvstore.errors import NotFoundError, ValidationError
from kvstore.records import (
    Message,
    Resource,
    Score,
    Span,
    StoredCheckpoint,
    StoreItem,
    Thread,
    WorkflowRun,
    utc_now,
)
from kvstore.transfer._digest import Digests, canonical
from kvstore.transfer._kinds import KINDS, KINDS_BY_NAME, KINDS_BY_TAG, thread_messages

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from kvstore.storage import Storage

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DumpError",
    "DumpHeader",
    "DumpReader",
    "export_jsonl",
]

FORMAT_NAME: Final = "kvstore-export"
FORMAT_VERSION: Final = 1
#: Records read per round trip when exporting.
DEFAULT_CHUNK = 200
#: An import writes pending records once this many lines or bytes wait.
DEFAULT_BATCH = 200
_BATCH_BYTES = 512 * 1024


class DumpError(Exception):
    """An export file that cannot be imported, with the line at fault.

    Attributes:
        line: The 1-based line number.
        message: What is wrong with it.
    """

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


class DumpHeader(msgspec.Struct, kw_only=True, frozen=True):
    """The first line of an export.

    Attributes:
        format: Always ``"kvstore-export"``.
        version: The format version.
        kvstore: The version of kvstore that wrote the file.
        namespace: The namespace the records were exported from.
        codec: The codec of the store they were exported from (the file is JSON anyway).
        exported_at: When the export started.
    """

    format: str
    version: int
    kvstore: str
    namespace: str
    codec: str = "json"
    exported_at: datetime | None = None


class _Line(msgspec.Struct, tag_field="kind", frozen=True):
    pass


class _ResourceLine(_Line, tag="resource", frozen=True):
    record: Resource


class _ThreadLine(_Line, tag="thread", frozen=True):
    record: Thread


class _MessageLine(_Line, tag="message", frozen=True):
    record: Message


class _RunLine(_Line, tag="run", frozen=True):
    record: WorkflowRun


class _ScoreLine(_Line, tag="score", frozen=True):
    record: Score


class _SpanLine(_Line, tag="span", frozen=True):
    record: Span


class _StoreItemLine(_Line, tag="store_item", frozen=True):
    record: StoreItem


class _CheckpointLine(_Line, tag="checkpoint", frozen=True):
    record: StoredCheckpoint


class _EndLine(_Line, tag="end", frozen=True):
    counts: dict[str, int]
    checksums: dict[str, str]


_RecordLine = (
    _ResourceLine
    | _ThreadLine
    | _MessageLine
    | _RunLine
    | _ScoreLine
    | _SpanLine
    | _StoreItemLine
    | _CheckpointLine
)
_LINE_TYPES: dict[str, type[Any]] = {
    "resource": _ResourceLine,
    "thread": _ThreadLine,
    "message": _MessageLine,
    "run": _RunLine,
    "score": _ScoreLine,
    "span": _SpanLine,
    "store_item": _StoreItemLine,
    "checkpoint": _CheckpointLine,
}
_KIND_OF_LINE = {line_type: KINDS_BY_TAG[tag] for tag, line_type in _LINE_TYPES.items()}
_header_decoder = msgspec.json.Decoder(DumpHeader)
_line_decoder = msgspec.json.Decoder(_RecordLine | _EndLine)


def _encode_line(line: msgspec.Struct) -> bytes:
    # The canonical encoding: two exports of equal stores are equal byte for byte.
    return canonical(line) + b"\n"


async def export_jsonl(
    store: Storage,
    out: IO[bytes],
    *,
    chunk: int = DEFAULT_CHUNK,
    on_progress: Callable[[str, int], None] | None = None,
) -> Digests:
    """Write every record of ``store``'s namespace to ``out`` in the export format.

    Streaming: memory use depends on ``chunk``, not on the size of the store. Writes to
    ``out`` as it reads, one round trip per ``chunk`` records (and at least one per thread).

    Args:
        store: The store to export.
        out: A binary file (``sys.stdout.buffer``, ``open(path, "wb")``).
        chunk: How many records to read per round trip, from 1 to 1000.
        on_progress: Called as records are written, with a kind and its count so far.

    Returns:
        The counts and checksums of what was written, per kind (as in the end line).
    """
    header = DumpHeader(
        format=FORMAT_NAME,
        version=FORMAT_VERSION,
        kvstore=kvstore.__version__,
        namespace=store.namespace,
        codec=store.codec,
        exported_at=utc_now(),
    )
    out.write(canonical(header) + b"\n")
    digests = Digests([kind.name for kind in KINDS])
    by_kind = digests.by_kind

    def progress(kind: str) -> None:
        if on_progress is not None:
            on_progress(kind, by_kind[kind].count)

    threads = KINDS_BY_NAME["threads"]
    for kind in KINDS:
        if kind.name == "messages":
            continue  # written after each thread
        line_type = _LINE_TYPES[kind.tag]
        async for step in kind.walk(store, None, chunk):
            for record in step.records:
                digests.add(kind.name, record)
                out.write(_encode_line(line_type(record=record)))
                if kind is threads:
                    async for messages, _ in thread_messages(store, record.id, chunk):
                        for message in messages:
                            digests.add("messages", message)
                            out.write(_encode_line(_MessageLine(record=message)))
                        progress("messages")
            progress(kind.name)
    end = _EndLine(
        counts={k: d.count for k, d in digests.by_kind.items()},
        checksums={k: d.checksum for k, d in digests.by_kind.items()},
    )
    out.write(_encode_line(end))
    return digests


class DumpReader:
    """Reads an export: the header at once, the records when imported.

    Example::

        with open("dump.jsonl", "rb") as f:
            reader = DumpReader(f)
            async with Storage.from_url(url, namespace=reader.header.namespace) as store:
                counts = await reader.import_into(store)

    Args:
        lines: The file's lines, as bytes (a binary file iterates so).

    Attributes:
        header: The header line.

    Raises:
        DumpError: the first line is not a header of a format version this kvstore reads.
    """

    __slots__ = ("_lines", "header")

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines: Iterator[tuple[int, bytes]] = (
            (n, line) for n, line in enumerate(lines, 1) if line.strip()
        )
        first = next(self._lines, None)
        if first is None:
            raise DumpError(1, "the input is empty; expected a kvstore export")
        number, line = first
        try:
            header = _header_decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DumpError(number, f"not a kvstore export header: {exc}") from None
        if header.format != FORMAT_NAME:
            raise DumpError(number, f"not a kvstore export: format is {header.format!r}")
        if header.version != FORMAT_VERSION:
            raise DumpError(
                number,
                f"export format version {header.version} is not supported "
                f"(this kvstore reads version {FORMAT_VERSION})",
            )
        self.header = header

    async def import_into(self, store: Storage, *, batch: int = DEFAULT_BATCH) -> dict[str, int]:
        """Write every record of the export to ``store``, in batches; upserts by id.

        Every line is decoded and validated first. The import stops at the first bad line
        with :class:`DumpError`; every record before that line is then written, and none
        after it. Importing a file twice leaves the store as importing it once.

        Args:
            store: Where to write (its namespace is used, whatever the header says).
            batch: Records written per round trip (per kind).

        Returns:
            How many records of each kind were imported.

        Raises:
            DumpError: a line does not decode or validate, a record is refused by the
                store (its thread is missing...), or the file ends early or does not
                match its end line.
        """
        pending = _Pending(store)
        digests = Digests([kind.name for kind in KINDS])
        end: _EndLine | None = None
        last = 1
        for number, line in self._lines:
            last = number
            if end is not None:
                await pending.flush()
                raise DumpError(number, "unexpected data after the end line")
            try:
                decoded = _line_decoder.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await pending.flush()
                raise DumpError(number, str(exc)) from None
            if isinstance(decoded, _EndLine):
                end = decoded
                continue
            kind = _KIND_OF_LINE[type(decoded)]
            digests.add(kind.name, decoded.record)
            pending.add(kind.name, number, decoded.record, len(line))
            if pending.lines >= batch or pending.size >= _BATCH_BYTES:
                await pending.flush()
        await pending.flush()
        if end is None:
            raise DumpError(last + 1, "the export ends without its end line: it is truncated")
        _check_end(end, digests, last)
        return {name: d.count for name, d in digests.by_kind.items()}


class _Pending:
    """Records waiting to be written, per kind, with their line numbers."""

    __slots__ = ("_by_kind", "_store", "lines", "size")

    def __init__(self, store: Storage) -> None:
        self._store = store
        self._by_kind: dict[str, list[tuple[int, Any]]] = {kind.name: [] for kind in KINDS}
        self.lines = 0
        self.size = 0

    def add(self, kind: str, number: int, record: Any, size: int) -> None:
        self._by_kind[kind].append((number, record))
        self.lines += 1
        self.size += size

    async def flush(self) -> None:
        """Write everything pending, kind by kind (a thread before its messages).

        If the store refuses a batch, its records are written again one at a time in line
        order, to name the line at fault; writes are upserts, so the retry is harmless.
        """
        try:
            for kind in KINDS:
                entries = self._by_kind[kind.name]
                if entries:
                    await kind.write(self._store, [record for _, record in entries])
        except (ValidationError, NotFoundError):
            await self._one_by_one()
        self._by_kind = {kind.name: [] for kind in KINDS}
        self.lines = self.size = 0

    async def _one_by_one(self) -> None:
        entries = sorted(
            (
                (number, kind, record)
                for kind in KINDS
                for number, record in self._by_kind[kind.name]
            ),
            key=lambda entry: entry[0],
        )
        for number, kind, record in entries:
            try:
                await kind.write(self._store, [record])
            except (ValidationError, NotFoundError) as exc:
                raise DumpError(number, str(exc)) from None


def _check_end(end: _EndLine, digests: Digests, last: int) -> None:
    for name, digest in digests.by_kind.items():
        count = end.counts.get(name, 0)
        if count != digest.count:
            raise DumpError(
                last, f"the end line counts {count} {name} but the file holds {digest.count}"
            )
        if digest.count and end.checksums.get(name) != digest.checksum:
            raise DumpError(last, f"the {name} do not match the end line's checksum")
