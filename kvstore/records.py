"""The records kvstore stores: msgspec Structs, the only shapes that cross the public API.

Conventions (from msgspec's schema-evolution rules): every field added later gets a default;
a field's type never changes. Datetimes must carry a timezone and are stored in UTC.
Ids are non-empty strings; any other character is allowed (see the README's key schema).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeAlias, TypeVar

import msgspec

__all__ = [
    "CheckpointPage",
    "CheckpointWrite",
    "Chunk",
    "DateRange",
    "Include",
    "Message",
    "MessagePatch",
    "Page",
    "Resource",
    "Role",
    "Score",
    "ScoreSource",
    "ScoreStats",
    "Span",
    "SpanEvent",
    "SpanKind",
    "SpanLink",
    "SpanStatus",
    "StoredCheckpoint",
    "Thread",
    "TraceSummary",
    "Typed",
    "WorkflowRun",
    "WorkflowRunSummary",
    "new_id",
    "utc_now",
]
__all__ += [
    "GetItem",
    "ItemNamespace",
    "ItemOp",
    "ItemResult",
    "ListNamespaces",
    "PutItem",
    "SearchItems",
    "StoreItem",
]

T = TypeVar("T")

#: A non-empty string id.
Id: TypeAlias = Annotated[str, msgspec.Meta(min_length=1)]
#: A timezone-aware datetime (naive datetimes are refused: they are ambiguous).
UTCDateTime: TypeAlias = Annotated[datetime, msgspec.Meta(tz=True)]
Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
ScoreSource: TypeAlias = Literal["live", "test"]
SpanKind: TypeAlias = Literal["internal", "server", "client", "producer", "consumer"]


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh random id (32 hex digits)."""
    return uuid.uuid4().hex


class _Record(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """Base of stored records.

    msgspec applies ``kw_only`` to the fields of the class that sets it, not to those of
    its subclasses, so every record repeats ``kw_only=True``: field order is not public API.
    """


# -- memory -------------------------------------------------------------------------------


class Thread(_Record, kw_only=True, frozen=True):
    """A conversation thread, owned by a resource (a user, an org)."""

    id: Id
    resource_id: Id
    title: str | None = None
    metadata: dict[str, Any] = {}
    created_at: UTCDateTime = msgspec.field(default_factory=utc_now)
    #: Set by the store on every change to the thread or its messages.
    updated_at: UTCDateTime | None = None


class Message(_Record, kw_only=True, frozen=True):
    """One message of a thread.

    ``content`` is any JSON value: a plain string, Mastra's v2 shape
    (``{"format": 2, "parts": [...]}``) or an OpenAI chat message with ``tool_calls``
    all round-trip unchanged.
    """

    id: Id
    thread_id: Id
    role: Role
    content: Any
    resource_id: str | None = None
    type: str = "v2"
    created_at: UTCDateTime = msgspec.field(default_factory=utc_now)
    metadata: dict[str, Any] = {}


class MessagePatch(_Record, kw_only=True, frozen=True):
    """A partial update of one message: only the fields given change.

    ``metadata`` is merged key by key into the stored metadata.
    """

    id: Id
    content: Any | msgspec.UnsetType = msgspec.UNSET
    role: Role | msgspec.UnsetType = msgspec.UNSET
    metadata: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class Resource(_Record, kw_only=True, frozen=True):
    """What an agent keeps about a resource across threads: its working memory."""

    id: Id
    working_memory: str | None = None
    metadata: dict[str, Any] = {}
    created_at: UTCDateTime = msgspec.field(default_factory=utc_now)
    updated_at: UTCDateTime | None = None


class Include(_Record, kw_only=True, frozen=True):
    """Ask :meth:`~kvstore.domains.memory.MemoryStore.list_messages` for a message and its
    neighbours: ``before`` messages before it and ``after`` after it (each at most 1000),
    in its own thread."""

    message_id: Id
    before: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    after: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0


class DateRange(_Record, kw_only=True, frozen=True):
    """A time window; each bound is optional and inclusive unless marked exclusive."""

    start: UTCDateTime | None = None
    end: UTCDateTime | None = None
    start_exclusive: bool = False
    end_exclusive: bool = False


class Page(msgspec.Struct, Generic[T], kw_only=True, frozen=True):
    """One page of a listing.

    Attributes:
        items: The records of this page.
        total: How many records match in all (not only on this page).
        page: This page's number, from 0.
        per_page: The page size asked for.
        has_more: Whether a later page has records.
    """

    items: list[T]
    total: int
    page: int
    per_page: int
    has_more: bool


class Chunk(msgspec.Struct, Generic[T], kw_only=True, frozen=True):
    """One step of a walk through every record of a kind (the ``export_*`` methods).

    Walks are read page by page from the store's global indexes, oldest first, one round
    trip per chunk; pass :attr:`cursor` back to the same method for the next chunk.

    Attributes:
        items: The records of this chunk, in the walk's order.
        cursor: Where the next chunk starts; None after the last chunk. Opaque: keep it
            (e.g. in a checkpoint) and pass it back unchanged.
        total: How many records the walk covers in all, as stored when this chunk was
            read (an index entry whose record is gone counts, and is skipped).
    """

    items: list[T]
    cursor: str | None
    total: int


# -- workflows ------------------------------------------------------------------------------


class WorkflowRun(_Record, kw_only=True, frozen=True):
    """A workflow run and its latest snapshot.

    A run is named by ``workflow_name`` and ``run_id`` together.

    Attributes:
        workflow_name: The workflow this run belongs to.
        run_id: The run's id (unique within its workflow).
        snapshot: The last snapshot persisted, as JSON (see
            :meth:`~kvstore.domains.workflows.WorkflowStore.load_snapshot` for typed reads).
        version: Counts the writes to the run: 1 after the first. Compare-and-set with it.
        created_at: When the run was first persisted.
        updated_at: When the run last changed.
        resource_id: The resource (user, tenant) the run belongs to, if any.
        status: The run's status (``"running"``, ``"suspended"``, ``"success"``...), if any.
        result: What the run produced, set by ``update_run``.
        error: Why the run failed, set by ``update_run``.
        steps: Step id -> the step's result, set by ``update_step_result``.
    """

    workflow_name: Id
    run_id: Id
    snapshot: Any
    version: Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]
    created_at: UTCDateTime
    updated_at: UTCDateTime
    resource_id: Id | None = None
    status: Id | None = None
    result: Any = None
    error: Any = None
    #: Step id -> that step's result, merged one step at a time by ``update_step_result``.
    steps: dict[str, Any] = {}


class WorkflowRunSummary(_Record, kw_only=True, frozen=True):
    """A workflow run without its snapshot and step results: what ``list_runs`` returns
    unless asked for snapshots, so that a page never reads the runs' (possibly large) state.

    The attributes are those of :class:`WorkflowRun` of the same names.
    """

    workflow_name: Id
    run_id: Id
    version: Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]
    created_at: UTCDateTime
    updated_at: UTCDateTime
    resource_id: Id | None = None
    status: Id | None = None
    result: Any = None
    error: Any = None


# -- evals --------------------------------------------------------------------------------


class Score(_Record, kw_only=True, frozen=True):
    """One evaluation result: the raw score and the reasoning behind it.

    Attributes:
        scorer_id: The scorer that produced it.
        score: The raw score (a finite number).
        id: The score's own id (default: a fresh random id). Saving another score with the
            same ``run_id`` never overwrites this one; saving one with the same ``id`` does.
        run_id: The run (agent call, workflow run, experiment) that was scored.
        reason: The scorer's reasoning.
        input: What the scored entity was given.
        output: What it answered.
        entity_type: The kind of thing scored (``"agent"``, ``"workflow"``...); indexed
            together with ``entity_id``.
        entity_id: Which one.
        trace_id: The trace of the scored call; indexed together with ``span_id``.
        span_id: Its span.
        resource_id: The resource (user) of the scored call.
        thread_id: The conversation thread of the scored call.
        source: ``"live"`` for production traffic, ``"test"`` for test runs.
        metadata: Free-form data, merged key by key like every ``metadata``.
        created_at: When the score was made.
    """

    scorer_id: Id
    score: float
    id: Id = msgspec.field(default_factory=new_id)
    run_id: Id | None = None
    reason: str | None = None
    input: Any = None
    output: Any = None
    entity_type: Id | None = None
    entity_id: Id | None = None
    trace_id: Id | None = None
    span_id: Id | None = None
    resource_id: Id | None = None
    thread_id: Id | None = None
    source: ScoreSource = "live"
    metadata: dict[str, Any] = {}
    created_at: UTCDateTime = msgspec.field(default_factory=utc_now)


class ScoreStats(msgspec.Struct, kw_only=True, frozen=True):
    """One scorer's scores in one period (an hour or a day, UTC), from ``score_stats``.

    Attributes:
        start: When the period starts.
        count: How many scores were made in it (at least 1).
        mean: Their mean: the correctly rounded sum divided by ``count``.
        min: The lowest score.
        max: The highest score.
    """

    start: UTCDateTime
    count: int
    mean: float
    min: float
    max: float


# -- traces -------------------------------------------------------------------------------


class SpanStatus(_Record, kw_only=True, frozen=True):
    """A span's outcome, as OpenTelemetry reports it."""

    code: Literal["unset", "ok", "error"] = "unset"
    message: str | None = None


class SpanEvent(_Record, kw_only=True, frozen=True):
    """Something that happened at one moment during a span."""

    name: str
    timestamp: UTCDateTime
    attributes: dict[str, Any] = {}


class SpanLink(_Record, kw_only=True, frozen=True):
    """A reference from a span to a span of another (or the same) trace."""

    trace_id: Id
    span_id: Id
    attributes: dict[str, Any] = {}


class Span(_Record, kw_only=True, frozen=True):
    """One span of a trace.

    OpenTelemetry's ids are lowercase hex (32 digits for traces, 16 for spans), and that is
    what :class:`~kvstore.otel.StorageSpanExporter` writes, but any non-empty string is
    stored. Times keep microseconds (OpenTelemetry's nanoseconds are truncated).

    Attributes:
        trace_id: The trace the span belongs to.
        span_id: The span's id, unique within its trace.
        name: What the span did.
        start_time: When it started.
        parent_span_id: Its parent span, None for a root span.
        kind: OpenTelemetry's span kind.
        scope: The instrumentation scope (library) that made the span.
        scope_version: That library's version.
        status: The span's outcome.
        end_time: When it ended (None while unknown).
        attributes: The span's attributes.
        events: Things that happened during the span.
        links: References to other spans.
        resource: The attributes of the resource (service) that made the span.
    """

    trace_id: Id
    span_id: Id
    name: str
    start_time: UTCDateTime
    parent_span_id: Id | None = None
    kind: SpanKind = "internal"
    scope: str | None = None
    scope_version: str | None = None
    status: SpanStatus = SpanStatus()
    end_time: UTCDateTime | None = None
    attributes: dict[str, Any] = {}
    events: list[SpanEvent] = []
    links: list[SpanLink] = []
    resource: dict[str, Any] = {}


class TraceSummary(_Record, kw_only=True, frozen=True):
    """A trace as listings show it: its root span's name and scope and its time span.

    Attributes:
        trace_id: The trace.
        name: The root span's name. The root is the span without a parent; until one is
            saved (or when the trace's root lives in another service), the earliest span.
        start_time: When the trace's earliest span started.
        end_time: When its latest span ended, if any has.
        scope: The root span's instrumentation scope.
        span_count: How many of the trace's spans are stored.
        status: The root span's status.
        root_span_id: The root span's id.
        error_count: How many of the trace's spans have the status ``error``.
    """

    trace_id: Id
    name: str
    start_time: UTCDateTime
    end_time: UTCDateTime | None = None
    scope: str | None = None
    span_count: int = 0
    status: SpanStatus = SpanStatus()
    root_span_id: Id | None = None
    error_count: int = 0


# -- the LangGraph long-term store (store.langgraph_items) -----------------------------------

#: A store namespace: a tuple of labels (non-empty strings without NUL).
ItemNamespace: TypeAlias = tuple[str, ...]


class StoreItem(_Record, kw_only=True, frozen=True):
    """An item of the long-term store that ``store.langgraph_items`` keeps.

    Attributes:
        namespace: The item's namespace, a tuple of labels such as ``("memories", "u1")``.
        key: The item's key within its namespace.
        value: The item's value, a JSON object.
        created_at: When the item was first written (an overwrite keeps it).
        updated_at: When the item was last written.
        ttl: Its time to live in minutes, or None: it never expires.
        expires_at: When it expires (``ttl`` after its last write or refreshing read).
    """

    namespace: ItemNamespace
    key: str
    value: dict[str, Any]
    created_at: UTCDateTime
    updated_at: UTCDateTime
    ttl: float | None = None
    expires_at: UTCDateTime | None = None


class GetItem(_Record, kw_only=True, frozen=True):
    """Read one item (an operation of ``langgraph_items.batch``).

    Attributes:
        namespace: The item's namespace.
        key: The item's key.
        refresh_ttl: Restart the item's time to live when it is read.
    """

    namespace: ItemNamespace
    key: str
    refresh_ttl: bool = True


class PutItem(_Record, kw_only=True, frozen=True):
    """Write or delete one item (an operation of ``langgraph_items.batch``).

    Attributes:
        namespace: The item's namespace.
        key: The item's key.
        value: The new value (a JSON object), or None to delete the item.
        ttl: Time to live in minutes, or None: the item never expires.
    """

    namespace: ItemNamespace
    key: str
    value: dict[str, Any] | None
    ttl: float | None = None


class SearchItems(_Record, kw_only=True, frozen=True):
    """List the items under a namespace prefix, newest first (an operation of
    ``langgraph_items.batch``).

    Attributes:
        namespace_prefix: Items whose namespace starts with these labels (``()``: all).
        filter: Equality conditions on the values' top-level fields: ``{"field": value}``
            or ``{"field": {"$eq": value}}``, with a string, number, boolean or None value.
        limit: How many items to return, from 1 to 1000.
        offset: How many matching items to skip.
        refresh_ttl: Restart the time to live of the items returned.
    """

    namespace_prefix: ItemNamespace
    filter: dict[str, Any] | None = None
    limit: int = 10
    offset: int = 0
    refresh_ttl: bool = True


class ListNamespaces(_Record, kw_only=True, frozen=True):
    """List the namespaces that hold items, in tuple order (an operation of
    ``langgraph_items.batch``).

    Attributes:
        prefix: Only namespaces starting with these labels; ``"*"`` matches any one label.
        suffix: Only namespaces ending with these labels; ``"*"`` matches any one label.
        max_depth: Truncate namespaces to this many labels (then deduplicated).
        limit: How many namespaces to return, from 1 to 1000.
        offset: How many to skip.
    """

    prefix: ItemNamespace | None = None
    suffix: ItemNamespace | None = None
    max_depth: int | None = None
    limit: int = 100
    offset: int = 0


#: An operation of ``langgraph_items.batch``.
ItemOp: TypeAlias = GetItem | PutItem | SearchItems | ListNamespaces
#: What ``langgraph_items.batch`` returns for each operation, in order.
ItemResult: TypeAlias = StoreItem | list[StoreItem] | list[ItemNamespace] | None


# -- checkpoints ----------------------------------------------------------------------------

#: A serialized value as a framework's serializer made it: a type tag and the bytes
#: (LangGraph's ``serde.dumps_typed``). kvstore stores both as given and never looks inside.
Typed: TypeAlias = tuple[str, bytes]


class CheckpointWrite(msgspec.Struct, kw_only=True, frozen=True):
    """A pending write stored against a checkpoint (see ``store.checkpoints``).

    Attributes:
        task_id: The task that wrote it.
        channel: The channel written.
        value: The value, as serialized.
        index: Its position among the task's writes (negative for special writes, which
            replace a stored write at the same index).
        task_path: The task's path, which orders writes (with the task id and the index).
    """

    task_id: str
    channel: str
    value: Typed
    index: int
    task_path: str = ""


class StoredCheckpoint(msgspec.Struct, kw_only=True, frozen=True):
    """A checkpoint as ``store.checkpoints`` returns it, with its channel values and
    pending writes.

    Attributes:
        thread_id: The thread.
        namespace: The namespace inside the thread (``""`` for the root graph).
        checkpoint_id: The checkpoint's id; ids of a namespace sort in time order.
        parent_id: The checkpoint it follows, if any.
        checkpoint: The checkpoint without its channel values, as serialized.
        metadata: Its metadata, as serialized.
        versions: channel -> the version of the value the checkpoint refers to.
        values: channel -> the stored value at that version, for the versions whose value
            is stored.
        writes: Its pending writes, ordered by task path, task id and index.
        run_id: The run that wrote it, if any.
        tokens: metadata key -> the token it is indexed under (see
            ``kvstore.domains.checkpoints.filter_token``): filled by ``export_checkpoints``
            for ``restore_checkpoints``; empty from ``get`` and ``list``.
    """

    thread_id: str
    namespace: str
    checkpoint_id: str
    parent_id: str | None
    checkpoint: Typed
    metadata: Typed
    versions: dict[str, str]
    values: dict[str, Typed]
    writes: list[CheckpointWrite]
    run_id: str | None = None
    tokens: dict[str, str] = msgspec.field(default_factory=dict)


class CheckpointPage(msgspec.Struct, kw_only=True, frozen=True):
    """One page of ``store.checkpoints.list``, newest first.

    Attributes:
        items: The checkpoints of this page.
        cursor: Pass it back to the same call for the next page; None after the last.
            A page may hold fewer items than asked (even none) and still have a cursor:
            a call examines a bounded number of candidates.
    """

    items: list[StoredCheckpoint]
    cursor: str | None
