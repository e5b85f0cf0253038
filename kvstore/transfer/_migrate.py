"""Copy every record between two stores: resumable, idempotent, verified.

:func:`migrate` walks the source kind by kind (see :data:`~kvstore.transfer.KINDS`) and
writes each batch to the destination with the domains' ``restore_*`` methods, which are
upserts by id that keep every field as read (times, versions, message order). So running a
migration again writes the same records over themselves: the destination ends up equal,
never with duplicates. After each batch it records where the walk stands in a
:class:`Checkpoint`; an interrupted migration given the same checkpoint continues from there.

A migration reads a live store page by page and does not freeze it: records written to the
source while it runs may or may not be copied (run it again, or check with :func:`verify`).
It never deletes from the destination.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime  # noqa: TC003 - msgspec reads the state's annotations at runtime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from kvstore.errors import PersistenceError
from kvstore.records import utc_now
from kvstore.transfer._digest import Digest, Digests
from kvstore.transfer._kinds import KINDS, Position

if TYPE_CHECKING:
    from kvstore.storage import Storage

__all__ = [
    "Checkpoint",
    "KindCheck",
    "MigrationState",
    "count_records",
    "digest_records",
    "migrate",
    "verify",
]

#: Records per round trip, read and written, unless told otherwise.
DEFAULT_BATCH = 200
#: Called with a kind's name and how many of its records have been copied so far.
ProgressCallback = Callable[[str, int], None]


class MigrationState(msgspec.Struct, kw_only=True):
    """Where a migration stands.

    Attributes:
        source: The source, as shown to people (no password).
        destination: The destination, likewise.
        namespace: The namespace being copied.
        done: The kinds copied completely.
        kind: The kind being copied, if one was started.
        position: Where its walk resumes.
        copied: How many records of each kind were copied.
        updated_at: When the state was last saved.
    """

    source: str = ""
    destination: str = ""
    namespace: str = ""
    done: list[str] = []
    kind: str | None = None
    position: Position | None = None
    copied: dict[str, int] = {}
    updated_at: datetime | None = None


#: The state file's version: 2 since key layout 2, whose walk positions differ from layout
#: 1's (a bucket and a rank), so a state saved by an older kvstore cannot be resumed.
STATE_VERSION = 2


class _StateFile(msgspec.Struct, kw_only=True):
    version: int = 1  # files of version 1 did not always say so
    migrations: dict[str, MigrationState] = {}


_state_decoder = msgspec.json.Decoder(_StateFile)
_state_encoder = msgspec.json.Encoder()


class Checkpoint:
    """A migration's progress, kept in a JSON file that several migrations can share.

    Each migration has its own entry, keyed by a hash of the source URL, destination URL
    and namespace (the URLs may hold passwords, so the file keeps only the hash and the
    descriptions given).

    Args:
        path: The state file (created with its directory when first saved).
        source_url: The source's URL.
        destination_url: The destination's URL.
        namespace: The namespace migrated.
        source: How to show the source (default: ``source_url``). Pass a description
            without credentials.
        destination: How to show the destination.
    """

    __slots__ = ("_description", "key", "path")

    def __init__(
        self,
        path: str | os.PathLike[str],
        source_url: str,
        destination_url: str,
        namespace: str,
        *,
        source: str | None = None,
        destination: str | None = None,
    ) -> None:
        self.path = Path(path)
        identity = "\0".join((source_url, destination_url, namespace)).encode()
        self.key = hashlib.sha256(identity).hexdigest()[:32]
        self._description = (source or source_url, destination or destination_url, namespace)

    def load(self) -> MigrationState | None:
        """The saved state of this migration, or None when it has none.

        Raises:
            ValueError: the state file exists but cannot be read as one, or holds this
                migration's state as saved by a kvstore of another state version.
            PersistenceError: the state file cannot be read (an ``OSError``, its cause).
        """
        data = self._read()
        state = data.migrations.get(self.key)
        if state is not None and data.version != STATE_VERSION:
            raise ValueError(
                f"the migration state in {self.path} was saved by another kvstore version "
                f"(state version {data.version}, this one reads {STATE_VERSION}: the walk "
                "positions of key layout 2 differ); it cannot be resumed"
            )
        return state

    def new_state(self) -> MigrationState:
        """A fresh state for this migration (not saved)."""
        source, destination, namespace = self._description
        return MigrationState(source=source, destination=destination, namespace=namespace)

    def save(self, state: MigrationState) -> None:
        """Save ``state`` as this migration's; atomically (a crash leaves the old file).

        Raises:
            PersistenceError: the state file or its directory cannot be written (an
                ``OSError``, its cause).
        """
        state.updated_at = utc_now()
        data = self._read()
        if data.version != STATE_VERSION:
            # Positions of another version cannot be resumed by anyone: start a new file.
            data = _StateFile(version=STATE_VERSION)
        data.migrations[self.key] = state
        self._write(data)

    def clear(self) -> None:
        """Forget this migration's state (the file goes when no other migration is left).

        Raises:
            PersistenceError: the state file cannot be read or written.
        """
        data = self._read()
        if data.migrations.pop(self.key, None) is None:
            return
        if data.migrations:
            self._write(data)
        else:
            try:
                self.path.unlink(missing_ok=True)
            except OSError as exc:
                raise self._cannot("remove", exc) from exc

    def _read(self) -> _StateFile:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return _StateFile(version=STATE_VERSION)
        except OSError as exc:
            raise self._cannot("read", exc) from exc
        try:
            return _state_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ValueError(f"cannot read the migration state file {self.path}: {exc}") from None

    def _write(self, data: _StateFile) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".")
        except OSError as exc:
            raise self._cannot("create", exc) from exc
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_state_encoder.encode(data))
            os.replace(temporary, self.path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            if isinstance(exc, OSError):
                raise self._cannot("write", exc) from exc
            raise

    def _cannot(self, action: str, exc: OSError) -> PersistenceError:
        # Usually a bad --state path: an error of kvstore's that names it, not an OSError.
        where = f" ({exc.filename})" if exc.filename and exc.filename != str(self.path) else ""
        return PersistenceError(
            f"cannot {action} the migration state file: {exc.strerror or exc}{where}",
            path=str(self.path),
        )

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, key={self.key!r})"


async def migrate(
    source: Storage,
    destination: Storage,
    *,
    checkpoint: Checkpoint | None = None,
    batch: int = DEFAULT_BATCH,
    on_progress: ProgressCallback | None = None,
) -> dict[str, int]:
    """Copy every record of ``source``'s namespace to ``destination``, kind by kind.

    Streaming: at most ``batch`` records are held at a time, whatever the size of the
    store. With a ``checkpoint``, progress is saved after every batch written, and a
    migration that finds saved progress continues from it; the progress is cleared once
    every kind is copied.

    Args:
        source: Where to read.
        destination: Where to write (it may hold other records; nothing is deleted).
        checkpoint: Where to keep progress, to resume after an interruption.
        batch: Records per round trip, read and written, from 1 to 1000.
        on_progress: Called after each batch with the kind and its count copied so far.

    Returns:
        How many records of each kind were copied (counting those copied before a
        resumption).

    Raises:
        PersistenceError: the checkpoint's file cannot be read or written.
    """
    state = (checkpoint.load() if checkpoint else None) or (
        checkpoint.new_state() if checkpoint else MigrationState()
    )

    def report(kind: str) -> None:
        if on_progress is not None:
            on_progress(kind, state.copied.get(kind, 0))

    for kind in KINDS:
        if kind.name in state.done:
            report(kind.name)
            continue
        start = state.position if state.kind == kind.name else None
        state.kind, state.position = kind.name, start
        copied = state.copied.get(kind.name, 0) if start is not None else 0
        report(kind.name)
        pending: list[Any] = []
        async for step in kind.walk(source, start, batch):
            pending += step.records
            if len(pending) >= batch or step.after is None:
                if pending:
                    await kind.write(destination, pending)
                copied += len(pending)
                pending = []
                state.position = step.after
                state.copied[kind.name] = copied
                if checkpoint is not None:
                    checkpoint.save(state)
                report(kind.name)
        if pending:  # a walk whose last chunk came back empty ends without a final step
            await kind.write(destination, pending)
            copied += len(pending)
        state.copied[kind.name] = copied
        state.done.append(kind.name)
        state.kind = state.position = None
        if checkpoint is not None:
            checkpoint.save(state)
        report(kind.name)
    if checkpoint is not None:
        checkpoint.clear()
    return dict(state.copied)


async def count_records(store: Storage) -> dict[str, int]:
    """How many records of each kind ``store``'s namespace holds, read from its indexes.

    Cheap: one round trip per kind, plus two per 1000 threads to count messages.
    """
    return {kind.name: await kind.count(store) for kind in KINDS}


async def digest_records(store: Storage, *, batch: int = DEFAULT_BATCH) -> dict[str, Digest]:
    """The count and checksum of each kind's records, reading every record once.

    Streaming: memory use depends on ``batch``, not on the size of the store.
    """
    digests = Digests([kind.name for kind in KINDS])
    for kind in KINDS:
        async for step in kind.walk(store, None, batch):
            for record in step.records:
                digests.add(kind.name, record)
    return digests.by_kind


@dataclass(frozen=True, slots=True)
class KindCheck:
    """How one kind compares between two stores.

    Attributes:
        kind: The kind (``"messages"``).
        source: Its count and checksum in the source.
        destination: Its count and checksum in the destination.
    """

    kind: str
    source: Digest
    destination: Digest

    @property
    def ok(self) -> bool:
        """Whether both sides hold the same records."""
        return self.source == self.destination


async def verify(
    source: Storage, destination: Storage, *, batch: int = DEFAULT_BATCH
) -> list[KindCheck]:
    """Compare every kind's count and checksum in two stores (both read concurrently)."""
    sides: dict[str, dict[str, Digest]] = {}

    async def digest(side: str, store: Storage) -> None:
        sides[side] = await digest_records(store, batch=batch)

    async with anyio.create_task_group() as tg:
        tg.start_soon(digest, "source", source)
        tg.start_soon(digest, "destination", destination)
    return [
        KindCheck(kind.name, sides["source"][kind.name], sides["destination"][kind.name])
        for kind in KINDS
    ]
