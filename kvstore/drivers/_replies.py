"""Reply bookkeeping shared by the drivers that talk to a Redis-speaking server.

Every such driver ends a round trip the same way: give each error the name and position of
the command that caused it, raise :class:`~kvstore.errors.BatchError` if any command failed,
and turn a transaction refused as a whole into :class:`~kvstore.errors.TransactionAbortedError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvstore.drivers._commandspec import command_name
from kvstore.drivers.base import encode_arg, registered_script
from kvstore.errors import BatchError, CommandError, TransactionAbortedError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kvstore.drivers.base import Arg, Command, Reply

__all__ = [
    "as_eval",
    "label",
    "missing_scripts",
    "raise_for_errors",
    "script_source",
    "transaction_aborted",
]


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


def script_source(command: Command) -> bytes | None:
    """The source of the registered script an ``EVALSHA`` command runs, else None."""
    if len(command) < 2 or encode_arg(command[0]).upper() != b"EVALSHA":
        return None
    script = registered_script(encode_arg(command[1]).decode("ascii", errors="replace"))
    return None if script is None else script.lua.encode()


def missing_scripts(
    commands: Sequence[Command], replies: Sequence[Reply | CommandError]
) -> list[int]:
    """Positions of ``EVALSHA`` commands of registered scripts that met ``NOSCRIPT``: the
    server lost its script cache, did not run them, and needs their source."""
    return [
        i
        for i, (command, reply) in enumerate(zip(commands, replies, strict=True))
        if isinstance(reply, CommandError)
        and reply.code == "NOSCRIPT"
        and script_source(command) is not None
    ]


def as_eval(command: Command) -> list[Arg]:
    """The ``EVAL`` twin of an ``EVALSHA`` of a registered script (``EVAL`` also caches it,
    so later calls are ``EVALSHA`` again)."""
    source = script_source(command)
    assert source is not None, "only for registered scripts"
    return [b"EVAL", source, *command[2:]]
