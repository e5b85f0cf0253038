"""Workflows: one snapshot per run, versioned for compare-and-set, listed by time.

Key schema (see :mod:`kvstore.keys`):

* ``workflow_run:<escaped workflow name>:<run id>`` hash: the run record, one field per
  attribute. The *member* ``<escaped workflow name>:<run id>`` names the run in indexes.
  ``_v`` holds the version, ``_c`` the creation time, ``_r``/``_s`` the resource id and
  status that the run is indexed under.
* ``workflow_runs:<filters>:<values>`` sorted sets, scored by creation time in
  microseconds: an :class:`~kvstore.keys.IndexFamily` with one set for every combination
  of the filters ``workflow``, ``resource`` and ``status`` (``workflow_runs:all``,
  ``workflow_runs:workflow:<name>``, ``workflow_runs:resource+status:<id>:<status>``, ...).
  A run is in at most 8 of them, so any combination of filters reads exactly one set and
  its ``total`` is one ``ZCOUNT``. Changing a run's status or resource moves it between
  sets in the same script that writes the run.
* ``run_workflows:<run id>`` sorted set: the members of the runs with this id, so
  ``get_run(run_id)`` without a workflow name is one lookup.

Cost of each call (one round trip each; Redis commands counted inside the script):

====================  ==========================================================
``persist_snapshot``  3 for an existing run whose status and resource stay; at
                      most 13 for a new run (8 index entries and the run-id index),
                      at most 19 when the status or resource changes (8 out, 8 in)
``load_snapshot``     1 (``HGET`` of the snapshot field)
``get_run``           1 with ``workflow_name``, else 2
``list_runs``         ``per_page + 2``, whatever the number of runs stored
``update_run``        as ``persist_snapshot``, plus the ``HGETALL`` it returns
``delete_run``        at most 11
``export_runs``       ``count + 2``, whatever the number of runs stored
``restore_runs``      per run at most 21 (8 index entries out, 8 in, the run-id
                      index, the hash)
====================  ==========================================================

A conflict or a missing run costs 1 or 2 commands and writes nothing.

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
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, overload

import msgspec

from kvstore._checks import check_items, check_version
from kvstore.codec import FormatName, RecordCodec, record_codec, validate
from kvstore.domains import _workflow_scripts as scripts
from kvstore.domains._base import (
    Domain,
    as_list,
    check_id,
    check_optional_id,
    check_page,
    chunk_of_index,
    decode_with_counters,
    encode_record,
    make_page,
    micros,
    page_of_index,
    time_window,
)
from kvstore.errors import ConflictError, CorruptRecordError, NotFoundError, ValidationError
from kvstore.records import Chunk, Page, WorkflowRun, utc_now

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from kvstore.drivers.base import Arg, Driver
    from kvstore.keys import Keys

__all__ = ["WorkflowStore"]

T = TypeVar("T")

# The run's version lives in this internal field (see _workflow_scripts).
_COUNTERS = {b"_v": "version"}


class WorkflowStore(Domain):
    """Workflow runs and their snapshots; reached as ``store.workflows``."""

    __slots__ = ("_runs",)

    def __init__(self, driver: Driver, keys: Keys, format_name: FormatName = "json") -> None:
        super().__init__(driver, keys, format_name)
        # Scripts rewrite a run attribute by attribute (the snapshot on every step).
        self._runs: RecordCodec[WorkflowRun] = record_codec(WorkflowRun, format_name, "attributes")

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

        Returns:
            The run's new version (1 for a new run).

        Raises:
            ConflictError: the run's version is not ``expected_version``; nothing is
                written. ``actual`` carries the stored version (0: no such run).
            ValidationError: an argument is malformed; nothing is written.
        """
        check_id(workflow_name, "workflow_name")
        check_id(run_id, "run_id")
        _check_version(expected_version)
        fields = [b"snapshot", self._encode(snapshot, "snapshot")]
        reply = await self._write(
            "persist",
            workflow_name,
            run_id,
            fields,
            resource_id=resource_id,
            status=status,
            expected_version=expected_version,
            created_at=created_at,
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

        Args:
            workflow_name: The workflow.
            run_id: The run.
            as_type: Decode the snapshot as this type (a msgspec Struct, a dataclass,
                ``list[int]``...) instead of plain JSON values.

        Raises:
            ValidationError: the stored snapshot does not fit ``as_type``.
            CorruptRecordError: the stored bytes do not decode.
        """
        key = self._keys.workflow_run(
            check_id(workflow_name, "workflow_name"), check_id(run_id, "run_id")
        )
        (data,) = await self._driver.execute([("HGET", key, "snapshot")], idempotent=True)
        if data is None:
            return None
        if not isinstance(data, bytes):
            raise CorruptRecordError(key, f"expected a string reply, got {type(data).__name__}")
        try:
            return self._format.decode(data, as_type)
        except msgspec.ValidationError as exc:
            raise ValidationError(f"the stored snapshot is not {as_type!r}: {exc}") from None
        except msgspec.DecodeError as exc:
            raise CorruptRecordError(key, str(exc)) from None

    async def get_run(self, run_id: str, workflow_name: str | None = None) -> WorkflowRun | None:
        """A run, or None.

        Args:
            run_id: The run.
            workflow_name: Its workflow. Without it, the newest run with this id in any
                workflow.
        """
        keys = self._keys
        check_id(run_id, "run_id")
        if workflow_name is not None:
            key = keys.workflow_run(check_id(workflow_name, "workflow_name"), run_id)
            (fields,) = await self._driver.execute([("HGETALL", key)], idempotent=True)
            return self._decode(as_list(fields), key) if fields else None
        reply = as_list(
            await self._driver.run(
                scripts.GET_RUN_BY_ID,
                [keys.run_workflows(run_id)],
                [keys.workflow_run.prefix],
                idempotent=True,
            )
        )
        if not reply or not reply[1]:
            return None
        member, fields = reply
        return self._decode(fields, keys.workflow_run.prefix + member.decode(errors="replace"))

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
    ) -> Page[WorkflowRun]:
        """One page of runs, newest first (by creation time).

        Every filter is optional and any combination works; ``total`` counts every run that
        matches. Costs ``per_page + 2`` commands whatever the number of runs stored.

        Args:
            workflow_name: Only this workflow's runs.
            resource_id: Only this resource's runs.
            status: Only runs with this status.
            from_date: Only runs created at or after this time.
            to_date: Only runs created at or before this time.
            page: The page number, from 0.
            per_page: The page size, from 1 to 1000.
        """
        index = self._keys.workflow_runs.key(
            {
                "workflow": check_optional_id(workflow_name, "workflow_name"),
                "resource": check_optional_id(resource_id, "resource_id"),
                "status": check_optional_id(status, "status"),
            }
        )
        window = time_window(from_date, to_date)
        check_page(page, per_page)
        prefix = self._keys.workflow_run.prefix
        total, found = await page_of_index(
            self._driver, index, prefix, page=page, per_page=per_page, window=window
        )
        runs = [self._decode(f, prefix + m.decode(errors="replace")) for m, f in found]
        return make_page(runs, total, page, per_page)

    async def update_run(
        self,
        workflow_name: str,
        run_id: str,
        *,
        status: str | None = None,
        result: Any = None,
        error: Any = None,
        expected_version: int | None = None,
    ) -> WorkflowRun:
        """Change a run's status, result or error, atomically; the snapshot stays.

        Arguments left None keep their stored value. Every update counts as a write: it
        bumps the run's version, so a worker holding an older version loses its next
        compare-and-set.

        Returns:
            The run after the update.

        Raises:
            NotFoundError: there is no such run.
            ConflictError: ``expected_version`` was given and does not match.
        """
        check_id(workflow_name, "workflow_name")
        check_id(run_id, "run_id")
        _check_version(expected_version)
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
            status=status,
            expected_version=expected_version,
        )
        key = self._keys.workflow_run(workflow_name, run_id)
        return self._decode(reply[2], key)

    async def delete_run(self, workflow_name: str, run_id: str) -> bool:
        """Delete a run and its index entries. Returns whether it existed."""
        keys = self._keys
        check_id(workflow_name, "workflow_name")
        check_id(run_id, "run_id")
        family = keys.workflow_runs
        deleted = await self._driver.run(
            scripts.DELETE_RUN,
            [keys.workflow_run(workflow_name, run_id)],
            [
                keys.workflow_run.member(workflow_name, run_id),
                family.prefix,
                *family.names,
                family.escaped(workflow_name),
                keys.run_workflows(run_id),
            ],
            # Not retried: after a reply lost in flight, a retry finds the record gone
            # and would report that it never existed (issue 14).
            idempotent=False,
        )
        return deleted == 1

    async def export_runs(
        self, *, cursor: str | None = None, count: int = 100
    ) -> Chunk[WorkflowRun]:
        """One chunk of a walk through every run of the namespace, oldest first.

        One round trip (``count + 2`` commands) whatever the number of runs stored.

        Args:
            cursor: None for the first chunk, then the previous chunk's ``cursor``.
            count: How many runs to read, from 1 to 1000.
        """
        keys = self._keys
        return await chunk_of_index(
            self._driver,
            keys.workflow_runs.key({}),
            keys.workflow_run.prefix,
            self._decode,
            cursor=cursor,
            count=count,
        )

    async def restore_runs(
        self, runs: Iterable[WorkflowRun | Mapping[str, Any]]
    ) -> list[WorkflowRun]:
        """Create or replace runs exactly as given, in one round trip.

        Unlike :meth:`persist_snapshot` and :meth:`update_run`, nothing is computed: the
        version, ``created_at``, ``updated_at``, status, result and error are stored as
        given, and the run is indexed under its own resource and status. The write side
        of :meth:`export_runs`.

        Raises:
            ValidationError: a run is malformed (``runs[i]...``); nothing is written.
        """
        valid = [
            validate(r, WorkflowRun, where=f"runs[{i}]")
            for i, r in enumerate(check_items(runs, "runs"))
        ]
        if not valid:
            return []
        keys = self._keys
        family = keys.workflow_runs
        args: list[Arg] = [keys.workflow_run.prefix, family.prefix, *family.names, len(valid)]
        for i, run in enumerate(valid):
            _check_version(run.version)
            # The version lives in the _v counter only (see _workflow_scripts).
            flat = encode_record(self._runs, run, f"runs[{i}]")
            pairs = zip(flat[::2], flat[1::2], strict=True)
            fields = [x for name, value in pairs if name != b"version" for x in (name, value)]
            args += (
                keys.workflow_run.member(run.workflow_name, run.run_id),
                family.escaped(run.workflow_name),
                "" if run.resource_id is None else family.escaped(run.resource_id),
                "" if run.status is None else family.escaped(run.status),
                keys.run_workflows(run.run_id),
                run.version,
                micros(run.created_at),
                len(fields),
                *fields,
            )
        first = keys.workflow_run(valid[0].workflow_name, valid[0].run_id)
        await self._driver.run(scripts.RESTORE_RUNS, [first], args, idempotent=True)
        return valid

    # -- internals ------------------------------------------------------------------------

    async def _write(
        self,
        mode: str,
        workflow_name: str,
        run_id: str,
        fields: list[bytes],
        *,
        resource_id: str | None = None,
        status: str | None = None,
        expected_version: int | None,
        created_at: datetime | None = None,
    ) -> list[Any]:
        """Run WRITE_RUN; raise for a conflict or a missing run."""
        check_optional_id(resource_id, "resource_id")
        check_optional_id(status, "status")
        if created_at is not None and (
            not isinstance(created_at, datetime) or created_at.tzinfo is None
        ):
            raise ValidationError("expected a timezone-aware datetime", field="created_at")
        keys = self._keys
        family = keys.workflow_runs
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
        ]
        fields = [*fields, b"updated_at", codec.encode(now)]
        if resource_id is not None:
            fields += (b"resource_id", codec.encode(resource_id))
        if status is not None:
            fields += (b"status", codec.encode(status))
        args: list[Arg] = [
            mode,
            "" if expected_version is None else expected_version,
            keys.workflow_run.member(workflow_name, run_id),
            micros(created),
            family.prefix,
            *family.names,
            family.escaped(workflow_name),
            "" if resource_id is None else family.escaped(resource_id),
            "" if status is None else family.escaped(status),
            keys.run_workflows(run_id),
            len(create),
            *create,
            *fields,
        ]
        reply = as_list(
            await self._driver.run(
                scripts.WRITE_RUN, [keys.workflow_run(workflow_name, run_id)], args
            )
        )
        if reply[0] == scripts.CONFLICT:
            raise ConflictError(
                f"run {run_id!r} of workflow {workflow_name!r} is at version {reply[1]}, "
                f"not {expected_version}",
                expected=expected_version or 0,
                actual=int(reply[1]),
            )
        if reply[0] == scripts.NOT_FOUND:
            raise NotFoundError(f"no run {run_id!r} of workflow {workflow_name!r}")
        return reply

    def _encode(self, value: Any, field: str) -> bytes:
        return self._runs.encode_value(value, field)

    def _decode(self, flat: list[bytes], key: str) -> WorkflowRun:
        return decode_with_counters(self._runs, flat, key, _COUNTERS)


def _check_version(expected_version: Any) -> None:
    check_version(expected_version)
