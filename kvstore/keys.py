"""The key schema (layout 2): every Redis key kvstore uses is named here and nowhere else.

Placement by owner
    Every record has an owner (a thread owns its messages; a run, a score, a trace and a
    resource own themselves) and every key of an owner sits in its **bucket**: one of
    ``buckets`` hash slots of the namespace, chosen by a digest of the owner's id. A key is

        ``<namespace>:{<bucket tag>}:<kind>``          a bucket's shared structure, or
        ``<namespace>:{<bucket tag>}:<kind>:<id>``     one owner's structure.

    The hash tag names the bucket only, so no id, whatever it holds (``:``, ``{``, ``}``,
    ``*``, newlines, any unicode), can move a key into another slot or namespace; the id
    itself stays verbatim, last, after a fixed kind word that never holds ``:``. Two keys are
    equal only when namespace, bucket, kind and id all are.

    Bucket tags are chosen so that bucket ``b`` of ``B`` hashes into the ``b``-th of ``B``
    equal ranges of the 16,384 cluster slots. A cluster whose nodes hold equal slot ranges
    (what ``redis-cli --cluster create`` makes) therefore gets an equal share of buckets on
    each node, not a share left to chance.

Why buckets and not one slot per owner
    A script may touch only keys it declares, all in one slot. Listings read an index and
    return the records it points to in the same script, so an index and the records it
    lists must share a slot, and a write that changes a record changes its index entries in
    the same atomic script. Giving each owner's bucket both its records and its share of
    every index makes each call on one owner one atomic script on one slot, and a listing
    one script per bucket (all of them in one round trip: one batch per node on a cluster).
    One bucket (the default on a single server) is one slot: nothing to merge.

Indexes
    Each bucket keeps one **lex index** per record kind: a sorted set whose members all
    have score 0 and read ``<filter>\\0<value>\\0...\\0<sort key>\\0<record id>``. A
    listing with filters is one prefix of it, read in order with ``ZRANGE ... BYLEX`` and
    counted with ``ZLEXCOUNT``; values are escaped (:func:`lex_escape`) so that a prefix
    matches exactly one combination of values, and sort keys are fixed-width
    (:func:`lex_time`). The key name never depends on a value, which is what lets a script
    declare it before it knows what it will find.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import re
from dataclasses import dataclass

__all__ = [
    "LAYOUT_VERSION",
    "SLOTS",
    "Bucket",
    "CheckpointKeys",
    "ItemKeys",
    "Keys",
    "ThreadKeys",
    "item_keys",
    "key_slot",
    "lex_escape",
    "lex_time",
    "validate_namespace",
]

#: The version of this key layout, recorded in every store (see :mod:`kvstore.layout`).
LAYOUT_VERSION = 2
#: Hash slots of a Redis Cluster.
SLOTS = 16384

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


# -- cluster slots ---------------------------------------------------------------------------


def key_slot(key: bytes) -> int:
    """The Redis Cluster hash slot of ``key`` (CRC16/XMODEM of its hash tag, mod 16384)."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    # binascii's CRC-CCITT is Redis's CRC16 (XMODEM), in C: finding the tags of 1024 buckets
    # tries about a million candidates.
    return binascii.crc_hqx(key, 0) % SLOTS


@functools.cache
def _bucket_tags(buckets: int) -> tuple[str, ...]:
    """One tag per bucket, bucket ``b`` hashing into the ``b``-th of ``buckets`` slot ranges
    (computed once per bucket count and process)."""
    tags = []
    crc = binascii.crc_hqx
    for b in range(buckets):
        low, high = b * SLOTS // buckets, (b + 1) * SLOTS // buckets
        head = crc(b"%d." % b, 0)  # the CRC goes on from the tag's head: only n is hashed
        n = 0
        while not low <= crc(b"%d" % n, head) % SLOTS < high:
            n += 1
        tags.append(f"{b}.{n}")
    return tuple(tags)


# -- lex indexes ------------------------------------------------------------------------------

_LEX_ESCAPES = str.maketrans({"\x01": "\x01\x02", "\x00": "\x01\x01"})
_TIME_OFFSET = 1 << 63


def lex_escape(value: str) -> str:
    """``value`` as it appears in a lex index member: without NUL, which separates fields."""
    return value.translate(_LEX_ESCAPES)


def lex_time(micros: int) -> str:
    """A time (microseconds since the epoch, any sign) as a fixed-width, sortable key."""
    return f"{micros + _TIME_OFFSET:016x}"


# -- the keys of a namespace ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """The shared structures of one bucket: what listings read and calls on owners update.

    Attributes:
        number: The bucket's number, from 0.
        root: What every key of the bucket starts with: ``<namespace>:{<tag>}:``.
        threads: hash, thread id -> thread record (packed fields, see :mod:`kvstore.codec`).
        thread_activity: hash, thread id -> the thread's message sequence, update time and
            resource, in a form scripts read without parsing.
        thread_index: lex index of the bucket's threads.
        pointers: hash, message id -> the id of the thread holding that message, for the
            message ids whose digest falls in this bucket.
        resources: hash, resource id -> resource record.
        resource_index: lex index of the bucket's resources.
        runs: hash, run member -> run record (without its snapshot).
        run_snapshots: hash, run member -> the run's snapshot.
        run_index: lex index of the bucket's runs.
        run_steps: hash, run member -> the run's step results (packed, step id -> result).
        run_tokens: string, the bucket's last fencing token: every claim of a run takes the
            next, so a token is never issued twice in a bucket, even to a run deleted and
            created again.
        scores: hash, score id -> score record.
        score_index: lex index of the bucket's scores.
        score_values: lex index of the bucket's scores by scorer, period (hour and day) and
            value: what a period's exact minimum and maximum are read from.
        score_sums: hash, scorer and period -> the count and exact sum (as partials) of the
            bucket's scores in that period.
        traces: hash, trace id -> trace summary.
        trace_index: lex index of the bucket's traces.
        checkpoint_threads: lex index, the ids (escaped) of the bucket's checkpoint threads
            (see :mod:`kvstore.domains.checkpoints`).
        checkpoint_runs: lex index, ``<run id>\0<thread id>`` (escaped) for every run with
            checkpoints in a thread of the bucket.
    """

    number: int
    root: str
    threads: str
    thread_activity: str
    thread_index: str
    pointers: str
    resources: str
    resource_index: str
    runs: str
    run_snapshots: str
    run_index: str
    run_steps: str
    run_tokens: str
    scores: str
    score_index: str
    score_values: str
    score_sums: str
    traces: str
    trace_index: str
    checkpoint_threads: str
    checkpoint_runs: str


@dataclass(frozen=True, slots=True)
class ThreadKeys:
    """Every key a call on one thread touches, all in the thread's bucket.

    Attributes:
        id: The thread id.
        bucket: The thread's bucket.
        messages: sorted set, the thread's messages by creation time (see
            :mod:`kvstore.domains.memory`).
        message_ids: hash, message id -> where the message sits in ``messages``.
    """

    id: str
    bucket: Bucket
    messages: str
    message_ids: str


@dataclass(frozen=True, slots=True)
class CheckpointKeys:
    """Every key of one checkpoint thread (a LangGraph thread), all in the thread's bucket.

    See :mod:`kvstore.domains.checkpoints` for what each holds.

    Attributes:
        id: The thread id.
        bucket: The thread's bucket.
        index: lex index of the thread's checkpoints (by namespace, by id, by metadata
            value, by run).
        records: hash, ``<namespace>\0<checkpoint id>`` -> the checkpoint record.
        blobs: hash, ``<namespace>\0<channel>\0<version>`` -> a channel value.
        refs: hash, the same fields -> how many checkpoints refer to that value.
        writes: sorted set of the pending writes, in LangGraph's order.
    """

    id: str
    bucket: Bucket
    index: str
    records: str
    blobs: str
    refs: str
    writes: str


class Keys:
    """The keys of one namespace, spread over ``buckets`` buckets.

    Attributes:
        namespace: The namespace, as given.
        buckets: How many buckets records are spread over.
        layout: The string key that records the store's layout (see :mod:`kvstore.layout`).
    """

    __slots__ = ("_buckets", "buckets", "layout", "namespace")

    def __init__(self, namespace: str = "kv", buckets: int = 1) -> None:
        self.namespace = validate_namespace(namespace)
        if not isinstance(buckets, int) or isinstance(buckets, bool) or not 1 <= buckets <= 1024:
            raise ValueError(f"invalid buckets {buckets!r}: use an integer from 1 to 1024")
        self.buckets = buckets
        self.layout = f"{namespace}:{{{namespace}}}:layout"
        self._buckets = [self._make_bucket(b, tag) for b, tag in enumerate(_bucket_tags(buckets))]

    def _make_bucket(self, number: int, tag: str) -> Bucket:
        root = f"{self.namespace}:{{{tag}}}:"
        return Bucket(
            number=number,
            root=root,
            threads=root + "threads",
            thread_activity=root + "thread_activity",
            thread_index=root + "thread_index",
            pointers=root + "message_threads",
            resources=root + "resources",
            resource_index=root + "resource_index",
            runs=root + "runs",
            run_snapshots=root + "run_snapshots",
            run_index=root + "run_index",
            run_steps=root + "run_steps",
            run_tokens=root + "run_tokens",
            scores=root + "scores",
            score_index=root + "score_index",
            score_values=root + "score_values",
            score_sums=root + "score_sums",
            traces=root + "traces",
            trace_index=root + "trace_index",
            checkpoint_threads=root + "cp_threads",
            checkpoint_runs=root + "cp_runs",
        )

    @property
    def all_buckets(self) -> list[Bucket]:
        """Every bucket, in order: what a listing across the namespace reads."""
        return self._buckets

    def bucket_of(self, owner_id: str) -> Bucket:
        """The bucket of the owner with this id (a digest of it, modulo ``buckets``)."""
        if self.buckets == 1:
            return self._buckets[0]
        digest = hashlib.blake2b(owner_id.encode(), digest_size=8).digest()
        return self._buckets[int.from_bytes(digest, "big") % self.buckets]

    def thread(self, thread_id: str) -> ThreadKeys:
        """The keys of one thread and its messages."""
        bucket = self.bucket_of(thread_id)
        return ThreadKeys(
            id=thread_id,
            bucket=bucket,
            messages=bucket.root + "messages:" + thread_id,
            message_ids=bucket.root + "message_ids:" + thread_id,
        )

    def checkpoint_thread(self, thread_id: str) -> CheckpointKeys:
        """The keys of one checkpoint thread."""
        bucket = self.bucket_of(thread_id)
        root = bucket.root
        return CheckpointKeys(
            id=thread_id,
            bucket=bucket,
            index=root + "cp_index:" + thread_id,
            records=root + "cp_records:" + thread_id,
            blobs=root + "cp_blobs:" + thread_id,
            refs=root + "cp_refs:" + thread_id,
            writes=root + "cp_writes:" + thread_id,
        )

    def message_home(self, message_id: str) -> str:
        """string, with several buckets: where a message id last went (``<thread
        id>\0<score>``), in the id's own bucket, so that saving the id under a thread of
        another bucket finds the thread it leaves (see :mod:`kvstore.domains.memory`)."""
        return self.bucket_of(message_id).root + "message:" + message_id

    @staticmethod
    def run_member(workflow_name: str, run_id: str) -> str:
        """How a run is named inside its bucket: ``<length of the run id>:<run id><workflow
        name>``, escaped for lex members, so that no pair of ids names another's run.

        Runs are placed by run id alone, so that ``get_run(run_id)`` reads one bucket.
        """
        return lex_escape(f"{len(run_id)}:{run_id}{workflow_name}")

    @staticmethod
    def run_lease(bucket: Bucket, member: str) -> str:
        """string with a TTL: the lease on a run (``<token>\0<owner>``), named by its member
        (:meth:`run_member`); it expires with the lease."""
        return bucket.root + "run_lease:" + member

    @staticmethod
    def trace_spans(bucket: Bucket, trace_id: str) -> str:
        """stream: one trace's spans, entry ids carrying their start times."""
        return bucket.root + "spans:" + trace_id

    @staticmethod
    def trace_span_ids(bucket: Bucket, trace_id: str) -> str:
        """hash: one trace's span ids -> their stream entry ids."""
        return bucket.root + "span_ids:" + trace_id

    def __repr__(self) -> str:
        return f"Keys(namespace={self.namespace!r}, buckets={self.buckets})"


# -- the LangGraph long-term store (store.langgraph_items) -----------------------------------


@dataclass(frozen=True, slots=True)
class ItemKeys:
    """The long-term store's structures in one bucket (see
    :mod:`kvstore.domains.langgraph_items`). A store namespace (a tuple of labels) is an
    owner: its items, their index entries and its own listing entries all sit in the bucket
    of its encoded labels, so that every write is one atomic script on one slot.

    Attributes:
        items: hash, item id -> the item record (packed fields).
        index: lex index of the bucket's items by namespace prefix, filter token and time.
        expiry: sorted set, item id -> when it expires (ms), for the items with a TTL.
        namespaces: lex index of the bucket's namespaces that hold items (labels + NUL each).
        namespaces_reversed: the same namespaces with their labels in reverse order, so that
            a suffix is a prefix of it.
        counts: hash, encoded namespace -> how many items it holds.
    """

    items: str
    index: str
    expiry: str
    namespaces: str
    namespaces_reversed: str
    counts: str


def item_keys(bucket: Bucket) -> ItemKeys:
    """The long-term store's keys in ``bucket``; a namespace's bucket is
    ``Keys.bucket_of`` its encoded labels."""
    root = bucket.root
    return ItemKeys(
        items=root + "lg_items",
        index=root + "lg_item_index",
        expiry=root + "lg_item_expiry",
        namespaces=root + "lg_namespaces",
        namespaces_reversed=root + "lg_namespaces_reversed",
        counts=root + "lg_namespace_counts",
    )
