"""The exceptions kvstore raises. Every one derives from :class:`KVStoreError`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kvstore.drivers.base import Reply

__all__ = [
    "BatchError",
    "CommandError",
    "ConflictError",
    "ConnectionFailedError",
    "CorruptRecordError",
    "CrossSlotError",
    "DriverError",
    "KVStoreError",
    "LayoutError",
    "NotFoundError",
    "PersistenceError",
    "TransactionAbortedError",
    "UnsupportedError",
    "ValidationError",
]


class KVStoreError(Exception):
    """Base class of every error kvstore raises."""


class DriverError(KVStoreError):
    """The backend could not carry out a request (transport or protocol trouble)."""


class ConnectionFailedError(DriverError):
    """The backend could not be reached, or the connection broke mid-request.

    Whether the request was applied is unknown unless the operation is idempotent.
    """


class UnsupportedError(KVStoreError):
    """A combination that this driver or store cannot honour (for example
    MessagePack on a text-only driver)."""


class CommandError(KVStoreError):
    """Redis (or the memory driver) replied to a command with an error.

    Attributes:
        message: Redis's own error text, prefix included, e.g.
            ``"WRONGTYPE Operation against a key holding the wrong kind of value"``.
        command: The command's name, upper-case (``"HGET"``), when known.
        index: The command's position in its batch, when it ran in one.
    """

    def __init__(self, message: str, *, command: str | None = None, index: int | None = None):
        self.message = message
        self.command = command
        self.index = index
        where = ""
        if index is not None:
            where = f"command #{index}" + (f" ({command})" if command else "") + ": "
        elif command:
            where = f"{command}: "
        super().__init__(where + message)

    @property
    def code(self) -> str:
        """The error code Redis put first, e.g. ``"WRONGTYPE"`` or ``"ERR"``."""
        return self.message.split(" ", 1)[0]


class BatchError(CommandError):
    """One or more commands of a batch failed.

    The batch was not cut short: ``results`` holds every command's reply in order, with a
    :class:`CommandError` in place of each failed one, so no successful result is lost.

    Attributes:
        errors: The failed commands, in batch order. ``errors[0]`` also fills this
            exception's own ``message``, ``command`` and ``index``.
        results: One entry per command of the batch.
    """

    def __init__(self, errors: Sequence[CommandError], results: Sequence[Reply | CommandError]):
        first = errors[0]
        super().__init__(first.message, command=first.command, index=first.index)
        self.errors = list(errors)
        self.results = list(results)
        if len(errors) > 1:
            self.args = (f"{self.args[0]} (and {len(errors) - 1} more failed commands)",)


class TransactionAbortedError(BatchError):
    """An atomic batch was refused before it ran (Redis's ``EXECABORT``): nothing was applied.

    ``errors`` names the commands Redis refused to queue; every entry of ``results`` is
    the error of the command at that position or ``None`` for commands that were never run.
    """


class CrossSlotError(KVStoreError, ValueError):
    """A batch or script on a Redis Cluster would touch keys in several hash slots.

    It is refused before anything is sent. ``keys`` lists the keys with their slots.
    """

    def __init__(self, slots: dict[int, list[str]]):
        self.slots = slots
        listing = "; ".join(f"slot {s}: {', '.join(map(repr, ks))}" for s, ks in slots.items())
        super().__init__(f"keys of one batch span {len(slots)} hash slots ({listing})")


class ValidationError(KVStoreError, ValueError):
    """Input failed validation; nothing was written.

    Attributes:
        field: The offending field as a path such as ``"messages[2].role"``, when known.
    """

    def __init__(self, message: str, *, field: str | None = None):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class NotFoundError(KVStoreError, LookupError):
    """The record an update was aimed at does not exist."""


class ConflictError(KVStoreError):
    """A compare-and-set found another version than expected; nothing was written.

    Attributes:
        expected: The version the caller expected.
        actual: The version found in the store (0 when the record does not exist).
    """

    def __init__(self, message: str, *, expected: int, actual: int):
        self.expected = expected
        self.actual = actual
        super().__init__(message)


class PersistenceError(KVStoreError):
    """A file kvstore keeps cannot be used: the memory driver's append-only file is locked
    by another driver, is not such a file or has another format version, is corrupt, or
    could not be created, opened or written; or a migration's state file could not be read
    or written.

    Attributes:
        path: The file.
        offset: Where in the file the problem lies, when it is about one place.
    """

    def __init__(self, message: str, *, path: str, offset: int | None = None):
        self.path = path
        self.offset = offset
        super().__init__(f"{path}: {message}")


class CorruptRecordError(KVStoreError):
    """Stored bytes could not be decoded into a record.

    Attributes:
        key: The Redis key the bytes came from.
    """

    def __init__(self, key: str, reason: str):
        self.key = key
        super().__init__(f"corrupt record at key {key!r}: {reason}")


class LayoutError(KVStoreError):
    """The store holds data written in another key layout, or with other settings.

    Raised on first use, before anything is read or written, so that data of another layout
    is never misread nor mixed with data of this one.

    Attributes:
        found: What the store records (``{"layout": 1}``, or its buckets and codec).
    """

    def __init__(self, message: str, *, found: dict[str, object]):
        super().__init__(message)
        self.found = found
