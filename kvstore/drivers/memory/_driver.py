"""The memory driver: Redis 7.0 semantics in pure Python, in this process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from kvstore.drivers.base import Arg, Command, Driver, Reply, Script, encode_arg
from kvstore.drivers.memory._errors import ReplyError, arity_error, unknown_command_error
from kvstore.drivers.memory._journal import Journal, absolute_form
from kvstore.drivers.memory._keyspace import Keyspace
from kvstore.drivers.memory._table import Implementation, resolve
from kvstore.errors import BatchError, CommandError, TransactionAbortedError

__all__ = ["MemoryDriver"]


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _encode(args: Sequence[Arg]) -> list[bytes]:
    # encode_arg, with the two common types handled inline: this runs for every argument.
    return [
        arg if type(arg) is bytes else arg.encode() if type(arg) is str else encode_arg(arg)
        for arg in args
    ]


def _display_name(name: object) -> str:
    raw = name if isinstance(name, bytes) else encode_arg(name)  # type: ignore[arg-type]
    return raw.decode("utf-8", errors="replace").upper()


class MemoryDriver(Driver):
    """A driver that keeps one Redis database in this process and mirrors Redis 7.0.

    Every reply and error message is Redis's own, byte for byte, for the supported
    commands (see the package docstring); a hypothesis state machine checks this against
    a real server. Batches run synchronously under a :class:`threading.Lock`, so one
    driver may be shared by asyncio and trio event loops and by worker threads, and a
    batch never interleaves with another: even a non-atomic batch is applied at once.

    Args:
        clock: Returns the time in milliseconds since the epoch. Read once per batch or
            script, which therefore runs at a single instant, as Redis freezes time in a
            transaction or script. Tests pass a fake clock to control expiry.
    """

    __slots__ = ("_clock", "_journal", "_keyspace", "_lock")

    def __init__(self, *, clock: Callable[[], int] = _wall_clock_ms) -> None:
        self._keyspace = Keyspace()
        self._lock = threading.Lock()
        self._clock = clock
        #: The persistence hook (see ._journal); None costs nothing on the write path.
        self._journal: Journal | None = None

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        """Run ``commands`` and return one reply per command (see :class:`Driver`).

        Args:
            commands: The commands, each a sequence starting with the command name.
            atomic: Mirror ``MULTI``/``EXEC``: a command Redis would refuse to queue
                (unknown, or with the wrong number of arguments) aborts the whole batch
                before anything runs; other errors stay in place and the rest applies.
            idempotent: Ignored: there is no transport to fail.

        Raises:
            BatchError: one or more commands failed; ``results`` holds every reply.
            TransactionAbortedError: an atomic batch was refused as a whole.
        """
        # Everything is encoded and resolved before the lock is taken and before anything
        # runs, so that a bad argument type (TypeError) leaves the store untouched.
        prepared = [(resolve(command[0]), _encode(command[1:])) for command in commands]
        with self._lock:
            return self._execute(commands, prepared, atomic)

    def _execute(
        self,
        commands: Sequence[Command],
        prepared: list[tuple[Implementation | None, list[bytes]]],
        atomic: bool,
    ) -> list[Reply]:
        ks = self._keyspace
        self._expire(ks)
        if atomic:
            self._check_queueable(commands, prepared)
        journal = self._journal
        results: list[Reply | CommandError] = []
        errors: list[CommandError] | None = None
        for index, (impl, args) in enumerate(prepared):
            try:
                if impl is None:
                    raise unknown_command_error(encode_arg(commands[index][0]), args)
                if not impl.accepts(len(args) + 1):
                    raise arity_error(impl.name)
                reply = impl.handler(ks, args)
            except ReplyError as exc:
                name = impl.name if impl else _display_name(commands[index][0])
                error = CommandError(exc.message, command=name, index=index)
                results.append(error)
                errors = [error] if errors is None else [*errors, error]
                continue
            if journal is not None and impl.write:
                self._record(journal, impl, args, reply)
            results.append(reply)
        if errors:
            raise BatchError(errors, results)
        return results  # type: ignore[return-value]  # no CommandError in it: errors is empty

    def _check_queueable(
        self,
        commands: Sequence[Command],
        prepared: list[tuple[Implementation | None, list[bytes]]],
    ) -> None:
        """Raise what EXEC would after Redis refused to queue some commands."""
        refused: list[CommandError] = []
        results: list[Reply | CommandError] = []
        for index, (impl, args) in enumerate(prepared):
            if impl is None:
                message = unknown_command_error(encode_arg(commands[index][0]), args).message
                name = _display_name(commands[index][0])
            elif not impl.accepts(len(args) + 1):
                message, name = arity_error(impl.name).message, impl.name
            else:
                results.append(None)
                continue
            error = CommandError(message, command=name, index=index)
            refused.append(error)
            results.append(error)
        if refused:
            raise TransactionAbortedError(refused, results)

    def _expire(self, ks: Keyspace) -> None:
        """Start a batch: read the clock and delete the keys whose deadline has passed."""
        expired = ks.purge(self._clock())
        if expired and self._journal is not None:
            for key in expired:
                self._journal([b"DEL", key])

    def _record(
        self, journal: Journal, impl: Implementation, args: list[bytes], reply: Reply
    ) -> None:
        """THE choke point of persistence: every applied write passes here, once.

        Relative times are made absolute (see ._journal) so that the record replays to the
        same state at any later time.
        """
        journal(absolute_form(impl.name, args, self._keyspace.now, reply))

    async def run(
        self,
        script: Script,
        keys: Sequence[Arg],
        args: Sequence[Arg] = (),
        *,
        idempotent: bool = False,
    ) -> Reply:
        """Run the script's Python twin atomically (see :class:`Driver`).

        The twin's ``call`` runs one command and returns its reply, or raises
        :class:`CommandError` with Redis's message; an error ends the script, and the
        writes made before it stay, as in Redis. Unknown commands and wrong arities get
        the messages Redis gives inside scripts. Redis appends the script's sha and line
        to an error raised by ``redis.call``; the memory driver cannot know the line, so
        its message stops before that suffix.

        Raises:
            CommandError: the script raised, or a command inside it failed.
        """
        key_words, arg_words = _encode(keys), _encode(args)
        with self._lock:
            self._expire(self._keyspace)
            return script.twin(self._script_call, key_words, arg_words)

    def _script_call(self, *command: Arg) -> Reply:
        """``redis.call`` for script twins; runs under the lock taken by :meth:`run`."""
        if not command:
            raise CommandError("ERR Please specify at least one argument for this redis lib call")
        impl = resolve(command[0])
        args = _encode(command[1:])
        if impl is None:
            raise CommandError(
                "ERR Unknown Redis command called from script", command=_display_name(command[0])
            )
        if not impl.accepts(len(args) + 1):
            raise CommandError(
                "ERR Wrong number of args calling Redis command from script", command=impl.name
            )
        try:
            reply = impl.handler(self._keyspace, args)
        except ReplyError as exc:
            raise CommandError(exc.message, command=impl.name) from None
        journal = self._journal
        if journal is not None and impl.write:
            self._record(journal, impl, args, reply)
        return reply
