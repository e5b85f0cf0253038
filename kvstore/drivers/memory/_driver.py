"""The memory driver: Redis 7.0 semantics in pure Python, in this process."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from kvstore.drivers.base import Arg, Command, Driver, Reply, Script, encode_arg
from kvstore.drivers.memory._aof import AppendOnlyFile, FsyncPolicy, check_policy, parse_url
from kvstore.drivers.memory._commands_scripting import run_script, subcommand_error
from kvstore.drivers.memory._errors import ReplyError, arity_error, unknown_command_error
from kvstore.drivers.memory._journal import Journal, absolute_form
from kvstore.drivers.memory._keyspace import Keyspace
from kvstore.drivers.memory._lua import LuaEngine
from kvstore.drivers.memory._table import Implementation, resolve
from kvstore.errors import BatchError, CommandError, TransactionAbortedError, UnsupportedError

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager

__all__ = ["MemoryDriver"]


# Commands a script may not run, as in Redis.
_NOT_FROM_SCRIPTS = frozenset({"EVAL", "EVALSHA", "SCRIPT"})


def _wall_clock_ms() -> int:
    """The default clock, milliseconds since the epoch (inlined in the hot path)."""
    return time.time_ns() // 1_000_000


def _encode(args: Sequence[Arg]) -> list[bytes]:
    # encode_arg, with the common types handled inline: this runs for every argument.
    try:
        return [
            arg
            if type(arg) is bytes
            else arg.encode()
            if type(arg) is str
            else b"%d" % arg
            if type(arg) is int
            else encode_arg(arg)
            for arg in args
        ]
    except UnicodeEncodeError:  # a lone surrogate: encode_arg raises the ValidationError
        return [encode_arg(arg) for arg in args]


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

    With a ``path``, the data also lives in an append-only file (see ``._aof`` for the
    format and the recovery rules), replayed when the driver opens it: every batch or script
    is appended as one record before it returns. Close the driver (:meth:`aclose`) to
    release the file.

    Args:
        path: The append-only file, created with its directories if missing; None (the
            default): keep nothing after the process exits.
        fsync: When the file is flushed to the disk: ``"always"`` (before each batch
            returns), ``"everysec"`` (by a background thread, about once a second) or
            ``"no"`` (when the OS likes). A killed process loses no returned batch under
            any of them; a power cut loses none under ``"always"``.
        clock: Returns the time in milliseconds since the epoch. Read once per batch or
            script, which therefore runs at a single instant, as Redis freezes time in a
            transaction or script. Tests pass a fake clock to control expiry.
        auto_rewrite_min_size: The file is rewritten (compacted) automatically once it is
            this many bytes and ``auto_rewrite_ratio`` times its size after the last rewrite
            (or opening). None: only when :meth:`rewrite` is called.
        auto_rewrite_ratio: See ``auto_rewrite_min_size``.

    Raises:
        PersistenceError: another driver has the file open, or it is not an append-only
            file of this version, or it is corrupt (a torn last record is only warned about),
            or the file or its directory cannot be created or opened.
    """

    __slots__ = ("_aof", "_clock", "_journal", "_keyspace", "_lock")

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        fsync: FsyncPolicy = "everysec",
        clock: Callable[[], int] = _wall_clock_ms,
        auto_rewrite_min_size: int | None = 16 << 20,
        auto_rewrite_ratio: float = 2.0,
    ) -> None:
        check_policy(fsync)
        self._keyspace = Keyspace()
        self._keyspace.lua = LuaEngine(self._script_call)
        self._clock = clock
        #: The persistence hook (see ._journal); None costs nothing on the write path.
        self._journal: Journal | None = None
        self._aof: AppendOnlyFile | None = None
        self._lock: AbstractContextManager[object]
        if path is None:
            self._lock = threading.Lock()
        else:
            self._aof = AppendOnlyFile(
                path,
                self._keyspace,
                fsync=fsync,
                auto_rewrite_min_size=auto_rewrite_min_size,
                auto_rewrite_ratio=auto_rewrite_ratio,
            )
            # The file is the lock: leaving it appends the batch's writes as one record.
            self._lock = self._aof
            self._journal = self._aof.journal

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryDriver:
        """The driver a ``memory://`` URL names.

        ``memory://`` keeps data in memory only; ``memory:///abs/path.aof`` and
        ``memory://relative/path.aof`` (everything after ``memory://`` up to a ``?`` is the
        path) keep it in that append-only file. The query may set ``fsync``
        (``memory:///data.aof?fsync=always``). Keyword arguments go to the constructor.

        Raises:
            ValueError: not a memory URL, or an unknown option.
        """
        path, query = parse_url(url)
        for name in query.keys() & options.keys():
            raise ValueError(f"{name!r} is given both in {url!r} and as an argument")
        return cls(path, **query, **options)

    @property
    def path(self) -> str | None:
        """The append-only file (absolute), or None if the data lives in memory only."""
        return None if self._aof is None else str(self._aof.path)

    async def rewrite(self) -> None:
        """Compact the append-only file into the commands that rebuild the current data.

        Runs in a worker thread; batches keep running meanwhile, held up only while a
        chunk of keys is copied and when the new file is swapped in.

        Raises:
            UnsupportedError: the driver keeps no file.
            PersistenceError: the driver was closed, or the new file could not be written
                (the old one stays in use).
        """
        if self._aof is None:
            raise UnsupportedError("this memory driver keeps no file to rewrite")
        await anyio.to_thread.run_sync(self._aof.rewrite)

    async def aclose(self) -> None:
        """Sync and release the append-only file, if any. Closing twice is harmless.

        After closing, a driver with a file refuses commands; one without keeps working.
        """
        if self._aof is not None:
            self._aof.close()

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
        if len(commands) == 1:  # the common case, without a comprehension's overhead
            command = commands[0]
            prepared = [(resolve(command[0]), _encode(command[1:]))]
        else:
            prepared = [(resolve(command[0]), _encode(command[1:])) for command in commands]
        with self._lock:
            return self._execute(commands, prepared, atomic)

    async def run(
        self,
        script: Script,
        keys: Sequence[Arg],
        args: Sequence[Arg] = (),
        *,
        idempotent: bool = False,
    ) -> Reply:
        """Run ``script`` atomically with ``KEYS`` and ``ARGV`` (see :class:`Driver`).

        What ``EVALSHA`` in a batch of one does, without building that command and parsing
        it again: the domains call this for most operations.

        Raises:
            CommandError: the script raised, or a command inside it failed.
        """
        encoded_keys, encoded_args = _encode(keys), _encode(args)
        with self._lock:
            ks = self._keyspace
            self._start(ks)
            try:
                return run_script(ks, script, encoded_keys, encoded_args)
            except CommandError as exc:
                raise CommandError(exc.message, command=f"script {script.name}") from None

    def _execute(
        self,
        commands: Sequence[Command],
        prepared: list[tuple[Implementation | None, list[bytes]]],
        atomic: bool,
    ) -> list[Reply]:
        ks = self._keyspace
        self._start(ks)
        if atomic:
            self._check_queueable(commands, prepared)
        journal = self._journal
        results: list[Reply | CommandError] = []
        errors: list[CommandError] | None = None
        for index, (impl, args) in enumerate(prepared):
            try:
                if impl is None:
                    raise unknown_command_error(encode_arg(commands[index][0]), args)
                if not impl.min_args <= len(args) <= impl.max_args:  # accepts(), inlined
                    raise arity_error(impl.name)
                reply = impl.handler(ks, args)
            except ReplyError as exc:
                name = impl.name if impl else _display_name(commands[index][0])
                error = CommandError(exc.message, command=name, index=index)
                results.append(error)
                if errors is None:
                    errors = []
                errors.append(error)
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
            elif not impl.accepts(len(args)):
                message, name = arity_error(impl.name).message, impl.name
            elif impl.name == "SCRIPT" and (bad := subcommand_error(args)) is not None:
                message, name = bad, impl.name  # subcommands are checked at queue time
            else:
                results.append(None)
                continue
            error = CommandError(message, command=name, index=index)
            refused.append(error)
            results.append(error)
        if refused:
            raise TransactionAbortedError(refused, results)

    def _start(self, ks: Keyspace) -> None:
        """Start a batch: read the clock and delete the keys whose deadline has passed."""
        clock = self._clock
        # The default clock inlined: this runs for every batch.
        if ks.purge(time.time_ns() // 1_000_000 if clock is _wall_clock_ms else clock()):
            journal = self._journal
            if journal is not None:  # record the deletions, as Redis does
                for key in ks.expired:
                    journal([b"DEL", key])

    def _record(
        self, journal: Journal, impl: Implementation, args: list[bytes], reply: Reply
    ) -> None:
        """THE choke point of persistence: every applied write passes here, once.

        Relative times are made absolute (see ._journal) so that the record replays to the
        same state at any later time.
        """
        journal(absolute_form(impl.name, args, self._keyspace.now, reply))

    def _script_call(self, command: list[bytes]) -> Reply:
        """``redis.call`` for scripts; runs under the lock taken by :meth:`execute`.

        A command touching a key the script did not declare in ``KEYS`` is refused, as
        Redis-compatible servers with key-based locking and Redis Cluster require.
        """
        impl = resolve(command[0])
        args = command[1:]
        if impl is None:
            raise CommandError(
                "ERR Unknown Redis command called from script", command=_display_name(command[0])
            )
        if impl.name in _NOT_FROM_SCRIPTS:
            raise CommandError(
                "ERR This Redis command is not allowed from script", command=impl.name
            )
        if not impl.min_args <= len(args) <= impl.max_args:  # accepts(), inlined
            raise CommandError(
                "ERR Wrong number of args calling Redis command from script", command=impl.name
            )
        declared = self._keyspace.script_keys
        if declared is not None and impl.key_step:  # keys(), inlined: once per redis.call
            for key in args[impl.first_key : impl.last_key : impl.key_step]:
                if key not in declared:
                    raise CommandError(
                        "ERR Script attempted to access a key not declared in KEYS: "
                        + key.decode("utf-8", errors="replace"),
                        command=impl.name,
                    )
        try:
            reply = impl.handler(self._keyspace, args)
        except ReplyError as exc:
            raise CommandError(exc.message, command=impl.name) from None
        journal = self._journal
        if journal is not None and impl.write:
            self._record(journal, impl, args, reply)
        return reply
