"""Workflows: one snapshot per run, versioned for compare-and-set, listed by time.

Key schema (layout 2, see :mod:`kvstore.keys`). A run lives in the bucket of its run id
(so ``get_run(run_id)`` without a workflow name reads one bucket), named there by its
member (:meth:`~kvstore.keys.Keys.run_member`):

* ``runs`` (bucket hash): member -> the run record without its snapshot, one packed field
  per attribute, plus ``_v`` (the version), ``_c`` (creation sort key) and ``_w``, ``_i``,
  ``_r``, ``_s`` (the escaped workflow, run id, resource and status it is indexed under).
* ``run_snapshots`` (bucket hash): member -> the snapshot, encoded.
* ``run_steps`` (bucket hash): member -> the run's step results, a packed field list (step
  id -> encoded result), rewritten one entry at a time by ``update_step_result``.
* ``run_lease:<member>`` (string with a TTL): the run's lease, ``<token>\\0<owner>``; it
  expires with the lease, on the server's clock.
* ``run_tokens`` (bucket string): the last fencing token the bucket gave; each claim takes
  the next (``INCR``), so tokens grow per run even across expiry and re-creation.
* ``run_index`` (bucket lex index): per run, one entry for every combination of its
  workflow (``w``), resource (``r``) and status (``s``), all of them (``all``), and its run id
  (``i``): ``<filters>\0<values>\0<created>\0<member>``. Any combination of filters, with or
  without a time window, is one prefix of it, and its ``total`` one ``ZLEXCOUNT``.

Every call is one round trip and one script or command on one bucket, except listings,
which read every bucket (see :func:`~kvstore.domains._base.list_index`). Changing a run's
status or resource moves its index entries in the same script that writes the run.

Pausing and resuming a run
--------------------------
A worker that suspends a run persists its snapshot with ``status="suspended"``. Whoever
resumes it finds it with ``list_runs(status="suspended")``, loads it, and claims it with
compare-and-set: ``persist_snapshot(..., status="running", expected_version=run.version)``.
If two workers try at once, exactly one write succeeds; the other gets
:class:`~kvstore.errors.ConflictError` and nothing it sent is written::

    page = await store.workflows.list_runs("checkout", status="suspended")
    for run in page.items:
        try:
            version = await store.workflows.persist_snapshot(
                run.workflow_name, run.run_id, resume(run.snapshot),
                status="running", expected_version=run.version,
            )
        except ConflictError:
            continue  # another worker resumed this run first
        ...  # this worker owns the run; persist later steps with expected_version=version

Leases
------
When resuming takes a while, claim the run instead: ``claim_run`` returns a fencing token
and every write of the worker carries it (``fencing_token=``). Once the lease expires and
another worker claims the run, the first worker's writes are refused with
:class:`~kvstore.errors.ConflictError`, however long it was paused: a resumed run never
runs twice. ``renew_run`` keeps a lease alive, ``release_run`` ends it.

Listings return :class:`~kvstore.records.WorkflowRunSummary` records (no snapshot, no step
results, neither read nor sent) unless ``with_snapshot=True``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import msgspec

from kvstore._checks import check_items, check_ttl, check_version, utf8
from kvstore.codec import (
    FormatName,
    RecordCodec,
    pack_fields,
    record_codec,
    unpack_fields,
    validate,
)
from kvstore.domains import _workflow_scripts as scripts
from kvstore.domains._base import (
    Domain,
    as_list,
    check_id,
    check_optional_id,
    check_page,
    decode_with_counters,
    lex_bounds,
    list_index,
    make_page,
    micros,
    time_window,
    walk_index,
)
from kvstore.errors import ConflictError, CorruptRecordError, NotFoundError, ValidationError
from kvstore.keys import Keys, lex_escape, lex_time
from kvstore.records import Chunk, Page, WorkflowRun, WorkflowRunSummary, utc_now

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from kvstore.drivers.base import Arg, Driver
    from kvstore.keys import Bucket
    from kvstore.layout import StoreLayout

__all__ = ["WorkflowStore"]

T = TypeVar("T")

# The run's version lives in this internal field (see _workflow_scripts).
_COUNTERS = {b"_v": "version"}
_SNAPSHOT = b"snapshot"
_STEPS = b"steps"
#: Runs ``delete_runs`` deletes per bucket in one round trip at most.
DELETE_RUNS_SLICE = 100


def _runs(bucket: Bucket) -> str:
    return bucket.runs


def _run_index(bucket: Bucket) -> str:
    return bucket.run_index


def _run_snapshots(bucket: Bucket) -> str:
    return bucket.run_snapshots


def _run_steps(bucket: Bucket) -> str:
    return bucket.run_steps


#: What a listing reads of each run: the record alone (a summary), or all of it.
_SUMMARY_COLUMNS = [_runs]
_FULL_COLUMNS = [_runs, _run_snapshots, _run_steps]


class WorkflowStore(Domain):
    """Workflow runs and their snapshots; reached as ``store.workflows``."""

    __slots__ = ("_runs", "_summaries")

    def __init__(self, driver: Driver, layout: StoreLayout, format_name: FormatName) -> None:
        super().__init__(driver, layout, format_name)
        # Scripts rewrite a run attribute by attribute.
        self._runs: RecordCodec[WorkflowRun] = record_codec(WorkflowRun, format_name, "attributes")
        self._summaries: RecordCodec[WorkflowRunSummary] = record_codec(
            WorkflowRunSummary, format_name, "attributes"
        )

    async def persist_snapshot(
        self,
        workflow_name: str,
        run_id: str,
        snapshot: Any,
        *,
        resource_id: str | None = None,
        status: str | None = None,
        expected_version: int | None = None,
        created_at: datetime | None = None,
        fencing_token: int | None = None,
    ) -> int:
        """Store a run's snapshot, creating the run if needed; atomically.

        Args:
            workflow_name: The workflow.
            run_id: The run.
            snapshot: Any JSON value, or anything msgspec encodes (a Struct, a datetime...),
                which is stored in its JSON form.
            resource_id: The resource the run belongs to. None keeps the stored one.
            status: The run's status. None keeps the stored one.
            expected_version: Write only if the run's version is this (0: only if the run
                does not exist yet). None writes whatever the version.
            created_at: The creation time of a new run (default now); an existing run
                keeps its own.
            fencing_token: Write only if this is the token of the run's live lease (see
                :meth:`claim_run`). None writes whatever the lease.

        Returns:
            The run's new version (1 for a new run).

        Raises:
            ConflictError: the run's version is not ``expected_version`` (``actual``:
                the stored version, 0 for no run), or ``fencing_token`` is not the token of
                the run's live lease (``actual``: that token, 0 for no lease or no run);
                nothing is written.
            ValidationError: an argument is malformed; nothing is written.
        """
        check_id(workflow_name, "workflow_name")
        check_id(run_id, "run_id")
        _check_version(expected_version)
        _check_token(fencing_token)
        reply = await self._write(
            "persist",
            workflow_name,
            run_id,
            [],
            snapshot=self._encode(snapshot, "snapshot"),
            resource_id=resource_id,
            status=status,
            expected_version=expected_version,
            created_at=created_at,
            fencing_token=fencing_token,
        )
        return int(reply[1])

    @overload
    async def load_snapshot(self, workflow_name: str, run_id: str) -> Any: ...

    @overload
    async def load_snapshot(
        self, workflow_name: str, run_id: str, *, as_type: type[T]
    ) -> T | None: ...

    async def load_snapshot(self, workflow_name: str, run_id: str, *, as_type: Any = Any) -> Any:
        """A run's snapshot exactly as persisted, or None when there is no such run.

        One command (``HGET``).

        Args:
            workflow_name: The workflow.
            run_id: The run.
            as_type: Decode the snapshot as this type (a msgspec Struct, a dataclass,
                ``list[int]``...) instead of plain JSON values.

        Raises:
            ValidationError: the stored snapshot does not fit ``as_type``.
            CorruptRecordError: the stored bytes do not decode.
        """
        check_id(workflow_name, "workflow_name")
        check_id(run_id, "run_id")
        keys = await self._keys()
        bucket = keys.bucket_of(run_id)
        member = Keys.run_member(workflow_name, run_id)
        (data,) = await self._driver.execute(
            [("HGET", bucket.run_snapshots, member)], idempotent=True
        )
        if data is None:
            return None
        where = bucket.run_snapshots
        if not isinstance(data, bytes):
            raise CorruptRecordError(where, f"expected a string reply, got {type(data).__name__}")
        try:
            return self._format.decode(data, as_type)
        except msgspec.ValidationError as exc:
            raise ValidationError(f"the stored snapshot is not {as_type!r}: {exc}") from None
        except msgspec.DecodeError as exc:
            raise CorruptRecordError(where, str(exc)) from None

    async def get_run(self, run_id: str, workflow_name: str | None = None) -> WorkflowRun | None:
        """A run, or None.

        One round trip on the run's bucket.

        Args:
            run_id: The run.
            workflow_name: Its workflow. Without it, the newest run with this id in any
                workflow.
        """
        check_id(run_id, "run_id")
        keys = await self._keys()
        bucket = keys.bucket_of(run_id)
        if workflow_name is not None:
            member = Keys.run_member(check_id(workflow_name, "workflow_name"), run_id)
            row = await self._driver.execute(
                [("HGET", column(bucket), member) for column in _FULL_COLUMNS],
                idempotent=True,
            )
            if row[0] is None:
                return None
            return self._decode(row, bucket.runs)  # type: ignore[arg-type]
        _, rows = await list_index(
            self._driver,
            [bucket],
            _run_index,
            _FULL_COLUMNS,
            lex_bounds(("i", run_id)),
            offset=0,
            count=1,
            newest_first=True,
        )
        return self._decode(rows[0][1], rows[0][0]) if rows else None

    @overload
    async def list_runs(
        self,
        workflow_name: str | None = None,
        *,
        resource_id: str | None = None,
        status: str | None = None,
        from_date: datetime | None = None,
        to_date: datetime | None = None,
        page: int = 0,
        per_page: int = 20,
        with_snapshot: Literal[False] = False,
    ) -> Page[WorkflowRunSummary]: ...

    @overload
    async def list_runs(
        self,
        workflow_name: str | None = None,
        *,
        resource_id: str | None = None,
        status: str | None = None,
        from_date: datetime | None = None,
        to_date: datetime | None = None,
        page: int = 0,
        per_page: int = 20,
        with_snapshot: Literal[True],
    ) -> Page[WorkflowRun]: ...

    async def list_runs(
        self,
        workflow_name: str | None = None,
        *,
        resource_id: str | None = None,
        status: str | None = None,
        from_date: datetime | None = None,
        to_date: datetime | None = None,
        page: int = 0,
        per_page: int = 20,
        with_snapshot: bool = False,
    ) -> Page[WorkflowRunSummary] | Page[WorkflowRun]:
        """One page of runs, newest first (by creation time).

        Every filter is optional and any combination works; ``total`` counts every run that
        matches. One script per bucket (``per_page + 4`` commands on one bucket, two more
        with snapshots), whatever the number of runs stored. Snapshots and step results are
        neither read nor sent unless ``with_snapshot`` asks for them, so a page of runs with
        large snapshots stays small.

        Args:
            workflow_name: Only this workflow's runs.
            resource_id: Only this resource's runs.
            status: Only runs with this status.
            from_date: Only runs created at or after this time.
            to_date: Only runs created at or before this time.
            page: The page number, from 0.
            per_page: The page size, from 1 to 1000.
            with_snapshot: Return whole :class:`WorkflowRun` records (snapshots and step
                results included) instead of :class:`WorkflowRunSummary` records.
        """
        filters = {
            "w": check_optional_id(workflow_name, "workflow_name"),
            "r": check_optional_id(resource_id, "resource_id"),
            "s": check_optional_id(status, "status"),
        }
        if not isinstance(with_snapshot, bool):
            raise ValidationError("expected True or False", field="with_snapshot")
        present = [(name, value) for name, value in filters.items() if value is not None]
        tag = "".join(name for name, _ in present) or "all"
        low, high = time_window(from_date, to_date)
        check_page(page, per_page)
        keys = await self._keys()
        total, rows = await list_index(
            self._driver,
            keys.all_buckets,
            _run_index,
            _FULL_COLUMNS if with_snapshot else _SUMMARY_COLUMNS,
            lex_bounds((tag, *(value for _, value in present)), low, high),
            offset=page * per_page,
            count=per_page,
            newest_first=True,
        )
        if with_snapshot:
            return make_page(
                [self._decode(row, where) for where, row in rows], total, page, per_page
            )
        summaries = [self._decode_summary(row[0], where) for where, row in rows]
        return make_page(summaries, total, page, per_page)

    async def update_run(
        self,
        workflow_name: str,
        run_id: str,
        *,
        status: str | None = None,
        result: Any = None,
        error: Any = None,
        expected_version: int | None = None,
        fencing_token: int | None = None,
    ) -> WorkflowRun:
        """Change a run's status, result or error, atomically; the snapshot stays.

        Arguments left None keep their stored value. Every update counts as a write: it
        bumps the run's version, so a worker holding an older version loses its next
        compare-and-set. ``fencing_token`` works as in :meth:`persist_snapshot`.

        Returns:
            The run after the update.

        Raises:
            NotFoundError: there is no such run.
            ConflictError: ``expected_version`` or ``fencing_token`` was given and does not
                match.
        """
        check_id(workflow_name, "workflow_name")
        check_id(run_id, "run_id")
        _check_version(expected_version)
        _check_token(fencing_token)
        fields: list[bytes] = []
        if result is not None:
            fields += (b"result", self._encode(result, "result"))
        if error is not None:
            fields += (b"error", self._encode(error, "error"))
        reply = await self._write(
            "update",
            workflow_name,
            run_id,
            fields,
            snapshot=None,
            status=status,
            expected_version=expected_version,
            fencing_token=fencing_token,
        )
        keys = await self._keys()
        return self._decode(reply[2:5], keys.bucket_of(run_id).runs)

    async def update_step_result(
        self,
        workflow_name: str,
        run_id: str,
        step_id: str,
        result: Any,
        *,
        status: str | None = None,
        fencing_token: int | None = None,
    ) -> dict[str, Any]:
        """Set one step's result, merged atomically into the run's step results.

        Only this step's entry changes: parallel branches that finish at once each set
        their own and never revert one another, and a later :meth:`persist_snapshot`
        leaves them all in place. Counts as a write (bumps the version). One script.

        Args:
            workflow_name: The workflow.
            run_id: The run.
            step_id: The step.
            result: Its result: any value a snapshot may be.
            status: The run's new status. None keeps the stored one.
            fencing_token: As in :meth:`persist_snapshot`.

        Returns:
            Every step result of the run after the merge (step id -> result).

        Raises:
            NotFoundError: there is no such run.
            ConflictError: ``fencing_token`` was given and is not the live lease's.
            ValidationError: an argument is malformed; nothing is written.
        """
        check_id(workflow_name, "workflow_name")
        check_id(run_id, "run_id")
        step = _step_name(check_id(step_id, "step_id"), "step_id")
        _check_token(fencing_token)
        reply = await self._write(
            "step",
            workflow_name,
            run_id,
            [],
            snapshot=None,
            status=status,
            expected_version=None,
            fencing_token=fencing_token,
            step=(step, self._encode(result, "result")),
        )
        keys = await self._keys()
        return self._decode_steps(reply[2], keys.bucket_of(run_id).run_steps)

    async def claim_run(self, workflow_name: str, run_id: str, owner: str, ttl: timedelta) -> int:
        """Take the lease on a run for ``ttl``, and return its fencing token.

        A lease is held by one owner at a time and ends when it expires (server time:
        the lease is a key with a TTL) or is released. Each new lease gets a larger token
        than any given before in the run's bucket, so tokens grow per run even across
        expiry. Pass the token as ``fencing_token`` with every write: once the lease has
        expired or gone to another owner, those writes are refused with
        :class:`ConflictError`, so a worker that paused longer than its lease can never
        run the resumed run a second time. The same owner claiming again while it holds
        the lease extends it and keeps its token (so a claim may be retried). One script.

        Args:
            workflow_name: The workflow.
            run_id: The run.
            owner: Who claims it: an id unique to the worker.
            ttl: How long the lease lasts unless renewed (at least a millisecond).

        Returns:
            The lease's fencing token.

        Raises:
            NotFoundError: there is no such run.
            ConflictError: another owner holds a live lease on the run; ``actual`` is its
                token.
            ValidationError: an argument is malformed.
        """
        check_id(owner, "owner")
        reply = await self._lease("claim", workflow_name, run_id, owner, check_ttl(ttl))
        if reply[0] == scripts.NOT_FOUND:
            raise NotFoundError(f"no run {run_id!r} of workflow {workflow_name!r}")
        if reply[0] == scripts.CONFLICT:
            holder = reply[2].decode(errors="replace")
            raise ConflictError(
                f"run {run_id!r} of workflow {workflow_name!r} is leased to {holder!r}",
                expected=0,
                actual=int(reply[1]),
            )
        return int(reply[1])

    async def renew_run(
        self, workflow_name: str, run_id: str, fencing_token: int, ttl: timedelta
    ) -> None:
        """Extend the lease that ``fencing_token`` names to ``ttl`` from now. One script.

        Raises:
            ConflictError: the lease has expired or another owner holds the run; the
                worker must stop. ``actual`` is the live lease's token (0 for none).
            ValidationError: an argument is malformed.
        """
        token = _token(fencing_token)
        reply = await self._lease("renew", workflow_name, run_id, str(token), check_ttl(ttl))
        if reply[0] == scripts.STALE:
            raise _stale(workflow_name, run_id, token, int(reply[1]))

    async def release_run(self, workflow_name: str, run_id: str, fencing_token: int) -> bool:
        """End the lease that ``fencing_token`` names, so another worker may claim the run
        at once. One script.

        Returns:
            Whether the lease was still held with this token (False once it expired or
            went to another owner: then nothing changes).
        """
        token = _token(fencing_token)
        reply = await self._lease("release", workflow_name, run_id, str(token), 1)
        return bool(reply[0] == scripts.WRITTEN)

    async def delete_runs(
        self,
        *,
        older_than: datetime,
        workflow_name: str | None = None,
        status: str | None = None,
    ) -> int:
        """Delete every run created before ``older_than`` (of a workflow, with a status).

        Works in slices: each round trip deletes at most 100 runs per bucket (one script
        per bucket, ``2 + 5`` commands per run deleted, 502 at most), so no script holds
        the server longer than that; the call loops until a slice comes back short,
        ``n // 100 + 1`` round trips for ``n`` runs on one bucket. Runs created meanwhile
        may or may not go. Not retried after a lost reply (the count would be wrong).

        Args:
            older_than: Delete runs created strictly before this time.
            workflow_name: Only this workflow's runs.
            status: Only runs with this status.

        Returns:
            How many runs were deleted.
        """
        filters = {
            "w": check_optional_id(workflow_name, "workflow_name"),
            "s": check_optional_id(status, "status"),
        }
        if not isinstance(older_than, datetime) or older_than.tzinfo is None:
            raise ValidationError("expected a timezone-aware datetime", field="older_than")
        high = micros(older_than)
        present = [(name, value) for name, value in filters.items() if value is not None]
        tag = "".join(name for name, _ in present) or "all"
        low, upper = lex_bounds((tag, *(value for _, value in present)), None, high - 1)
        keys = await self._keys()
        pending = keys.all_buckets
        deleted = 0
        while pending:
            replies = await self._driver.execute(
                [
                    scripts.DELETE_RUNS.command(
                        [b.runs, b.run_index, b.run_snapshots, b.run_steps],
                        [low, upper, DELETE_RUNS_SLICE],
                    )
                    for b in pending
                ]
            )
            still = []
            for bucket, reply in zip(pending, replies, strict=True):
                count, seen = as_list(reply)
                deleted += int(count)
                if int(seen) == DELETE_RUNS_SLICE:
                    still.append(bucket)
            pending = still
        return deleted

    async def delete_run(self, workflow_name: str, run_id: str) -> bool:
        """Delete a run and its index entries. Returns whether it existed.

        Not retried after a lost reply, so that the answer is never wrong.
        """
        check_id(workflow_name, "workflow_name")
        check_id(run_id, "run_id")
        keys = await self._keys()
        bucket = keys.bucket_of(run_id)
        member = Keys.run_member(workflow_name, run_id)
        deleted = await self._driver.run(
            scripts.DELETE_RUN,
            [
                bucket.runs,
                bucket.run_index,
                bucket.run_snapshots,
                bucket.run_steps,
                Keys.run_lease(bucket, member),
            ],
            [member],
        )
        return deleted == 1

    async def export_runs(
        self, *, cursor: str | None = None, count: int = 100
    ) -> Chunk[WorkflowRun]:
        """One chunk of a walk through every run of the namespace, oldest first.

        One round trip (``count + 4`` commands, and one more per bucket for the total)
        whatever the number of runs stored.

        Args:
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many runs to read, from 1 to 1000.
        """
        keys = await self._keys()
        return await walk_index(
            self._driver,
            keys,
            _run_index,
            _FULL_COLUMNS,
            prefix=("all",),
            decode=self._decode,
            cursor=cursor,
            count=count,
        )

    async def restore_runs(
        self, runs: Iterable[WorkflowRun | Mapping[str, Any]]
    ) -> list[WorkflowRun]:
        """Create or replace runs exactly as given, in one round trip.

        Unlike :meth:`persist_snapshot` and :meth:`update_run`, nothing is computed: the
        version, ``created_at``, ``updated_at``, status, result, error and step results
        are stored as given, and the run is indexed under its own resource and status.
        The write side of :meth:`export_runs`.

        Raises:
            ValidationError: a run is malformed (``runs[i]...``); nothing is written.
        """
        valid = [
            validate(r, WorkflowRun, where=f"runs[{i}]")
            for i, r in enumerate(check_items(runs, "runs"))
        ]
        if not valid:
            return []
        keys = await self._keys()
        # Per bucket: the runs' leases (script keys) and the runs (script arguments).
        plans: dict[int, tuple[Bucket, list[str], list[Arg]]] = {}
        for i, run in enumerate(valid):
            _check_version(run.version)
            flat = self._runs.fields(run, f"runs[{i}]")
            # The version lives in the _v counter, the snapshot in run_snapshots and the
            # step results in run_steps.
            pairs = zip(flat[::2], flat[1::2], strict=True)
            fields = [
                x for n, v in pairs if n not in (b"version", _SNAPSHOT, _STEPS) for x in (n, v)
            ]
            fields += (b"_v", str(run.version).encode())
            fields += _index_fields(run.workflow_name, run.run_id, run.created_at)
            fields += _filter_fields(run.resource_id, run.status)
            bucket = keys.bucket_of(run.run_id)
            plan = plans.setdefault(bucket.number, (bucket, [], []))
            member = Keys.run_member(run.workflow_name, run.run_id)
            snapshot = self._encode(run.snapshot, f"runs[{i}].snapshot")
            steps = [
                x
                for step, result in run.steps.items()
                for x in (
                    _step_name(check_id(step, f"runs[{i}].steps"), f"runs[{i}].steps"),
                    self._encode(result, f"runs[{i}].steps.{step}"),
                )
            ]
            plan[1].append(Keys.run_lease(bucket, member))
            plan[2].extend(
                (
                    member,
                    pack_fields(fields),
                    snapshot,
                    pack_fields(steps) if steps else b"",
                )
            )
        await self._driver.execute(
            [
                scripts.RESTORE_RUNS.command(
                    [
                        bucket.runs,
                        bucket.run_index,
                        bucket.run_snapshots,
                        bucket.run_steps,
                        *leases,
                    ],
                    [len(leases), *args],
                )
                for bucket, leases, args in plans.values()
            ],
            idempotent=True,
        )
        return valid

    # -- internals ------------------------------------------------------------------------

    async def _write(
        self,
        mode: str,
        workflow_name: str,
        run_id: str,
        fields: list[bytes],
        *,
        snapshot: bytes | None,
        resource_id: str | None = None,
        status: str | None = None,
        expected_version: int | None,
        created_at: datetime | None = None,
        fencing_token: int | None = None,
        step: tuple[bytes, bytes] = (b"", b""),
    ) -> list[Any]:
        """Run WRITE_RUN; raise for a conflict, a stale fencing token or a missing run."""
        check_optional_id(resource_id, "resource_id")
        check_optional_id(status, "status")
        if created_at is not None and (
            not isinstance(created_at, datetime) or created_at.tzinfo is None
        ):
            raise ValidationError("expected a timezone-aware datetime", field="created_at")
        codec = self._runs
        now = utc_now()
        created = created_at or now
        create = [
            b"workflow_name",
            codec.encode(workflow_name),
            b"run_id",
            codec.encode(run_id),
            b"created_at",
            codec.encode(created),
            *_index_fields(workflow_name, run_id, created),
        ]
        fields = [*fields, b"updated_at", codec.encode(now)]
        if resource_id is not None:
            fields += (
                b"resource_id",
                codec.encode(resource_id),
                b"_r",
                lex_escape(resource_id).encode(),
            )
        if status is not None:
            fields += (b"status", codec.encode(status), b"_s", lex_escape(status).encode())
        keys = await self._keys()
        bucket = keys.bucket_of(run_id)
        member = Keys.run_member(workflow_name, run_id)
        reply = as_list(
            await self._driver.run(
                scripts.WRITE_RUN,
                [
                    bucket.runs,
                    bucket.run_index,
                    bucket.run_snapshots,
                    bucket.run_steps,
                    Keys.run_lease(bucket, member),
                ],
                [
                    mode,
                    "" if expected_version is None else expected_version,
                    member,
                    "0" if snapshot is None else "1",
                    b"" if snapshot is None else snapshot,
                    "" if fencing_token is None else fencing_token,
                    *step,
                    len(create),
                    *create,
                    *fields,
                ],
            )
        )
        if reply[0] == scripts.CONFLICT:
            raise ConflictError(
                f"run {run_id!r} of workflow {workflow_name!r} is at version {reply[1]}, "
                f"not {expected_version}",
                expected=expected_version or 0,
                actual=int(reply[1]),
            )
        if reply[0] == scripts.STALE:
            assert fencing_token is not None
            raise _stale(workflow_name, run_id, fencing_token, int(reply[1]))
        if reply[0] == scripts.NOT_FOUND:
            raise NotFoundError(f"no run {run_id!r} of workflow {workflow_name!r}")
        return reply

    async def _lease(
        self, mode: str, workflow_name: str, run_id: str, who: str, ttl_ms: int
    ) -> list[Any]:
        """Run LEASE_RUN on a run (``who``: the owner for a claim, else the token)."""
        check_id(workflow_name, "workflow_name")
        check_id(run_id, "run_id")
        keys = await self._keys()
        bucket = keys.bucket_of(run_id)
        member = Keys.run_member(workflow_name, run_id)
        return as_list(
            await self._driver.run(
                scripts.LEASE_RUN,
                [bucket.runs, Keys.run_lease(bucket, member), bucket.run_tokens],
                [mode, member, who, ttl_ms],
                # A claim again by its owner keeps the token, a renewal sets the same TTL
                # again; a release's reply would be wrong after a retry.
                idempotent=mode != "release",
            )
        )

    def _encode(self, value: Any, field: str) -> bytes:
        return self._runs.encode_value(value, field)

    def _decode(self, row: list[bytes | None], where: str) -> WorkflowRun:
        """A run from its packed record, its snapshot and its step results (``row``)."""
        packed, snapshot, steps = row
        flat = _unpack(packed, where)
        if snapshot is not None:
            flat += (_SNAPSHOT, snapshot)
        if steps is not None:
            # Each step result overrides the record's (empty) ``steps`` key by key.
            pairs = _unpack(steps, where)
            flat += [
                x for i in range(0, len(pairs), 2) for x in (b"steps." + pairs[i], pairs[i + 1])
            ]
        return decode_with_counters(self._runs, flat, where, _COUNTERS)

    def _decode_summary(self, packed: bytes | None, where: str) -> WorkflowRunSummary:
        """A run's summary from its packed record."""
        return decode_with_counters(self._summaries, _unpack(packed, where), where, _COUNTERS)

    def _decode_steps(self, packed: bytes, where: str) -> dict[str, Any]:
        """Step results from their packed field list."""
        flat = _unpack(packed, where)
        try:
            return {
                flat[i].decode(): self._format.decode(flat[i + 1], Any)
                for i in range(0, len(flat), 2)
            }
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise CorruptRecordError(where, str(exc)) from None


def _index_fields(workflow_name: str, run_id: str, created: datetime) -> list[bytes]:
    """The internal fields a run is indexed under that never change."""
    return [
        b"_c",
        lex_time(micros(created)).encode(),
        b"_w",
        lex_escape(workflow_name).encode(),
        b"_i",
        lex_escape(run_id).encode(),
    ]


def _filter_fields(resource_id: str | None, status: str | None) -> list[bytes]:
    """The internal fields of a run's resource and status filters (empty: none)."""
    return [
        b"_r",
        b"" if resource_id is None else lex_escape(resource_id).encode(),
        b"_s",
        b"" if status is None else lex_escape(status).encode(),
    ]


def _check_version(expected_version: Any) -> None:
    check_version(expected_version)


def _check_token(fencing_token: Any) -> None:
    """A fencing token given or not: None, or what :func:`_token` takes."""
    if fencing_token is not None:
        _token(fencing_token)


def _token(fencing_token: Any) -> int:
    """A fencing token: an integer from 1, as :meth:`WorkflowStore.claim_run` returns."""
    if check_version(fencing_token, "fencing_token") in (None, 0):
        raise ValidationError("expected a token returned by claim_run", field="fencing_token")
    return int(fencing_token)


#: The longest step id: a packed field list gives a name four hex digits of length.
MAX_STEP_ID_BYTES = 0xFFFF


def _step_name(step_id: str, field: str) -> bytes:
    """A step id as the name of its entry in the run's packed step results."""
    name = utf8(step_id, field)
    if len(name) > MAX_STEP_ID_BYTES:
        raise ValidationError(f"step ids take at most {MAX_STEP_ID_BYTES} bytes", field=field)
    return name


def _stale(workflow_name: str, run_id: str, token: int, live: int) -> ConflictError:
    """The error of a fenced call whose token is not the live lease's."""
    return ConflictError(
        f"the lease with token {token} on run {run_id!r} of workflow {workflow_name!r} has "
        + ("expired" if live == 0 else f"been taken over (token {live})"),
        expected=token,
        actual=live,
    )


def _unpack(packed: bytes | None, where: str) -> list[bytes]:
    """The flat field list of a packed value that must be there."""
    if packed is None:
        raise CorruptRecordError(where, "the run record is missing")
    try:
        return unpack_fields(packed)
    except ValueError as exc:
        raise CorruptRecordError(where, str(exc)) from None
