"""The key schema: every Redis key kvstore uses is named here and nowhere else.

Every key is ``{<namespace>}:<kind>:<id>``:

* The namespace comes first, inside a hash tag, so that every key of a namespace lives in
  one Redis Cluster hash slot. That is what lets each operation be one atomic script or
  ``MULTI`` batch on a cluster too (see the README's Design section for the trade-off).
* ``<kind>`` is a fixed word from this module, different for every kind of key and never
  containing ``:``; the user-supplied id comes last and is used verbatim. So no id, whatever
  it contains (``:``, ``{``, ``}``, ``*``, spaces, newlines, any unicode), can make two
  entities share a key or move a key into another slot or namespace: the hash tag is
  closed before the id starts, and two keys are equal only if kind and id both are.
* Where a key needs two ids, every id but the last is escaped (``%`` → ``%25``, ``:`` →
  ``%3A``), which keeps the split unambiguous.

Lua scripts receive key *prefixes* from here (``KeyKind.prefix``) and only append ids.

Indexes that serve several filters in any combination form an :class:`IndexFamily`: one
sorted set per combination of filter values, named
``<family prefix><filter names joined by '+'>:<escaped value>:<escaped value>...`` (or
``<family prefix>all`` for no filter). Every value is escaped, and the filter names fix how
many values follow, so the split is unambiguous here too.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "IndexFamily",
    "IndexValue",
    "KeyKind",
    "Keys",
    "PairKeyKind",
    "escape",
    "validate_namespace",
]

#: One filter value of an :class:`IndexFamily`: a string, or a tuple of strings for a
#: filter made of several ids (an entity's type and id).
IndexValue: TypeAlias = str | tuple[str, ...]

_NAMESPACE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


def validate_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is usable as a key prefix, else raise ``ValueError``.

    Allowed: 1 to 64 of ``A-Z a-z 0-9 _ . : -``. Braces would break the hash tag, and glob
    characters would make administrative ``SCAN MATCH`` patterns ambiguous.
    """
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise ValueError(
            f"invalid namespace {namespace!r}: use 1 to 64 characters from A-Z a-z 0-9 _ . : -"
        )
    return namespace


def escape(part: str) -> str:
    """Escape an id that is followed by another id in the same key."""
    return part.replace("%", "%25").replace(":", "%3A")


class KeyKind:
    """One kind of key: ``prefix + id``."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, id_: str) -> str:
        return self.prefix + id_

    def __repr__(self) -> str:
        return f"KeyKind({self.prefix!r})"


class PairKeyKind:
    """One kind of key named by two ids: ``prefix + escape(first) + ":" + second``.

    :meth:`member` is the part after the prefix. Indexes store it as their member, so a
    script turns a member into its record's key by prepending :attr:`prefix`.
    """

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def member(self, first: str, second: str) -> str:
        """The key without its prefix."""
        return escape(first) + ":" + second

    def __call__(self, first: str, second: str) -> str:
        return self.prefix + self.member(first, second)

    def __repr__(self) -> str:
        return f"PairKeyKind({self.prefix!r})"


class IndexFamily:
    """Sorted sets indexing one kind of record by every combination of some filters.

    A record with a value for filters ``a`` and ``b`` is a member of four sets: ``all``,
    ``a``, ``b`` and ``a+b``; a listing with any combination of those filters reads exactly
    one set, so its page and total cost the same whatever else is stored.

    Attributes:
        prefix: What every key of the family starts with.
        names: The filter names, in the order their values appear in a key.
    """

    __slots__ = ("names", "prefix")

    def __init__(self, prefix: str, names: Sequence[str]) -> None:
        self.prefix = prefix
        self.names = tuple(names)

    def key(self, values: Mapping[str, IndexValue | None]) -> str:
        """The set of the records matching ``values`` (filters missing or None: any value).

        Raises:
            KeyError: for a filter name that is not in :attr:`names`.
        """
        unknown = set(values) - set(self.names)
        if unknown:
            raise KeyError(f"not a filter of this index: {sorted(unknown)}")
        present = [(n, v) for n in self.names if (v := values.get(n)) is not None]
        if not present:
            return self.prefix + "all"
        tag = "+".join(n for n, _ in present)
        return self.prefix + tag + "".join(":" + self.escaped(v) for _, v in present)

    @staticmethod
    def escaped(value: IndexValue) -> str:
        """``value`` as it appears in a key: each id escaped, a tuple's ids joined by ``:``.

        Scripts that build a family's keys themselves get values in this form.
        """
        if isinstance(value, str):
            return escape(value)
        return ":".join(escape(part) for part in value)

    def lattice(self, choices: Mapping[str, Sequence[IndexValue]]) -> list[str]:
        """Every set a record belongs to, given the values it has for each filter.

        A filter may have several values (a span's attributes), or none.
        """
        options = [[None, *choices.get(n, ())] for n in self.names]
        return [
            self.key(dict(zip(self.names, combo, strict=True)))
            for combo in itertools.product(*options)
        ]

    def __repr__(self) -> str:
        return f"IndexFamily({self.prefix!r}, {self.names!r})"


class Keys:
    """The keys of one namespace.

    Attributes:
        namespace: The namespace, as given.
        root: The common prefix ``{namespace}:`` of every key.
    """

    __slots__ = (
        "message",
        "message_seq",
        "namespace",
        "resource",
        "resource_threads_by_created",
        "resource_threads_by_updated",
        "resources",
        "root",
        "run_workflows",
        "score",
        "score_index",
        "scores_by_run",
        "scores_by_span",
        "span_clock",
        "spans",
        "thread",
        "thread_messages",
        "threads",
        "trace",
        "trace_index",
        "trace_spans",
        "workflow_run",
        "workflow_runs",
    )

    def __init__(self, namespace: str = "kv") -> None:
        self.namespace = validate_namespace(namespace)
        self.root = root = "{" + namespace + "}:"
        # memory
        #: hash: one thread record
        self.thread = KeyKind(root + "thread:")
        #: sorted set: a thread's messages, scored by creation time (see domains.memory)
        self.thread_messages = KeyKind(root + "thread_messages:")
        #: hash: one message record
        self.message = KeyKind(root + "message:")
        #: hash: one resource record (working memory)
        self.resource = KeyKind(root + "resource:")
        #: sorted sets: a resource's threads by creation and by last update time
        self.resource_threads_by_created = KeyKind(root + "resource_threads_by_created:")
        self.resource_threads_by_updated = KeyKind(root + "resource_threads_by_updated:")
        #: sorted set: every thread, by creation time (for export and migration)
        self.threads = root + "threads"
        #: sorted set: every resource, by creation time (for export and migration)
        self.resources = root + "resources"
        #: string: the counter that orders messages saved at the same instant
        self.message_seq = root + "message_seq"
        # workflows
        #: hash: one workflow run, named by workflow name and run id
        self.workflow_run = PairKeyKind(root + "workflow_run:")
        #: sorted sets: runs by creation time, for every combination of filters
        self.workflow_runs = IndexFamily(
            root + "workflow_runs:", ("workflow", "resource", "status")
        )
        #: sorted set: the runs with one run id (members name the workflow too)
        self.run_workflows = KeyKind(root + "run_workflows:")
        # evals
        #: hash: one score record
        self.score = KeyKind(root + "score:")
        #: sorted sets: scores by creation time, for every combination of these filters
        self.score_index = IndexFamily(root + "score_index:", ("scorer", "entity", "source"))
        #: sorted set: the scores of one run
        self.scores_by_run = KeyKind(root + "scores_by_run:")
        #: sorted set: the scores of one span (trace id, span id)
        self.scores_by_span = PairKeyKind(root + "scores_by_span:")
        # traces
        #: stream: every span, ids carrying time (see domains.traces)
        self.spans = root + "spans"
        #: string: the last stream id given out, so that ids only grow
        self.span_clock = root + "span_clock"
        #: hash: one trace's summary (its root span, time span, span count)
        self.trace = KeyKind(root + "trace:")
        #: hash: one trace's spans, span id -> stream entry id
        self.trace_spans = KeyKind(root + "trace_spans:")
        #: sorted sets: traces by start time, for every combination of these filters
        self.trace_index = IndexFamily(root + "trace_index:", ("name", "scope", "attribute"))
