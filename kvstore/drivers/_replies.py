"""Reply bookkeeping shared by the drivers that talk to a Redis-speaking server.

Every such driver ends a round trip the same way: give each error the name and position of
the command that caused it, raise :class:`~kvstore.errors.BatchError` if any command failed,
and turn a transaction refused as a whole into :class:`~kvstore.errors.TransactionAbortedError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvstore.drivers._commandspec import command_name
from kvstore.errors import BatchError, CommandError, TransactionAbortedError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kvstore.drivers.base import Command, Reply

__all__ = ["label", "raise_for_errors", "transaction_aborted"]


def label(
    commands: Sequence[Command], replies: Sequence[Reply | CommandError]
) -> list[Reply | CommandError]:
    """Give each error the name and batch position of the command that caused it."""
    return [
        CommandError(r.message, command=command_name(cmd), index=i)
        if isinstance(r, CommandError)
        else r
        for i, (cmd, r) in enumerate(zip(commands, replies, strict=True))
    ]


def raise_for_errors(results: list[Reply | CommandError]) -> list[Reply]:
    """Return ``results`` if every command succeeded, else raise :class:`BatchError`.

    ``results`` must already be labelled, so that each error knows its position.
    """
    errors = [r for r in results if isinstance(r, CommandError)]
    if errors:
        raise BatchError(errors, results)
    return results  # type: ignore[return-value]  # no errors left, checked above


def transaction_aborted(
    commands: Sequence[Command],
    refused: Sequence[CommandError | None],
    cause: CommandError | None = None,
) -> TransactionAbortedError:
    """The error for an atomic batch that the server refused as a whole; nothing was applied.

    Args:
        commands: The batch.
        refused: Per position, the error of a command the server refused to queue, or None.
        cause: The error for the batch as a whole (``EXECABORT``, or a REST server's single
            error). Used for every position when the server named no culprit, so that the
            exception still carries the server's message.
    """
    entries: list[Reply | CommandError] = list(refused)
    if not any(entries) and cause is not None:
        entries = [cause] * len(commands)
    labelled = label(commands, entries)
    return TransactionAbortedError([r for r in labelled if isinstance(r, CommandError)], labelled)
