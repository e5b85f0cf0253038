"""kvstore: the storage layer for AI agents in Python.

Memory (threads, messages, working memory), workflow snapshots, eval scores and traces,
behind one async API (:class:`Storage`) and its blocking twin (:class:`SyncStorage`), on an
embedded in-memory driver, Redis (single node or cluster) or Upstash.
"""

from kvstore.domains.traces import TraceRetention
from kvstore.errors import (
    BatchError,
    CommandError,
    ConflictError,
    ConnectionFailedError,
    CorruptRecordError,
    CrossSlotError,
    DriverError,
    KVStoreError,
    LayoutError,
    NotFoundError,
    PersistenceError,
    TransactionAbortedError,
    UnsupportedError,
    ValidationError,
)
from kvstore.records import (
    Chunk,
    DateRange,
    Include,
    Message,
    MessagePatch,
    Page,
    Resource,
    Score,
    ScoreStats,
    Span,
    SpanEvent,
    SpanLink,
    SpanStatus,
    Thread,
    TraceSummary,
    WorkflowRun,
    WorkflowRunSummary,
)
from kvstore.storage import Storage
from kvstore.sync import SyncStorage

__all__ = [
    "BatchError",
    "Chunk",
    "CommandError",
    "ConflictError",
    "ConnectionFailedError",
    "CorruptRecordError",
    "CrossSlotError",
    "DateRange",
    "DriverError",
    "Include",
    "KVStoreError",
    "LayoutError",
    "Message",
    "MessagePatch",
    "NotFoundError",
    "Page",
    "PersistenceError",
    "Resource",
    "Score",
    "ScoreStats",
    "Span",
    "SpanEvent",
    "SpanLink",
    "SpanStatus",
    "Storage",
    "SyncStorage",
    "Thread",
    "TraceRetention",
    "TraceSummary",
    "TransactionAbortedError",
    "UnsupportedError",
    "ValidationError",
    "WorkflowRun",
    "WorkflowRunSummary",
]

# The long-term store of LangGraph agents (store.langgraph_items).
from kvstore.records import (
    GetItem,
    ListNamespaces,
    PutItem,
    SearchItems,
    StoreItem,
)

__all__ += ["GetItem", "ListNamespaces", "PutItem", "SearchItems", "StoreItem"]

__version__ = "0.1.0"
