"""The driver contract: the narrow waist between the domains and a Redis-speaking backend.

A driver knows nothing of threads, workflows or any other record. It does one thing:
:meth:`Driver.execute` sends a batch of Redis commands and returns their replies. A batch is
one round trip to a single server (pipelined, or atomic as ``MULTI``/``EXEC``); on a Redis
Cluster it is one batch per node, sent concurrently. Scripts travel in batches as ``EVALSHA``
commands built by :meth:`Script.command`; a driver that finds a script missing on the server
(``NOSCRIPT``) sends its source and runs it again. :meth:`Driver.execute_steps` orders
batches where a crash between parts must leave them in a known order, and
:meth:`Driver.run` runs one script.

Arguments
    A command is a sequence whose first item is the command name (``"HSET"``) and whose
    other items are ``str`` (sent as UTF-8), ``bytes``, ``int`` or ``float``. Every driver
    turns them into bytes with :func:`encode_arg`, so they reach the server identically.

Replies: one normalised shape on every driver
    =====================================  ================================
    Redis reply                            Python value
    =====================================  ================================
    bulk string, simple string (``+OK``)   ``bytes`` (``b"OK"``)
    integer                                ``int``
    nil bulk string, nil array             ``None``
    array (nested to any depth)            ``list`` of replies
    error                                  :class:`~kvstore.errors.CommandError`
    =====================================  ================================

    Scores and other doubles arrive as bulk strings (RESP2), e.g. ``b"1.5"``, ``b"inf"``.

Errors
    A batch in which any command failed raises :class:`~kvstore.errors.BatchError`. It
    carries Redis's own message, the failing position, and ``results``: the replies of every
    command, the failed ones replaced by their :class:`~kvstore.errors.CommandError`. An
    atomic batch that Redis refused to queue (``EXECABORT``) raises
    :class:`~kvstore.errors.TransactionAbortedError` and applied nothing. Transport trouble
    raises :class:`~kvstore.errors.ConnectionFailedError`.

Scripts
    Every key a script touches is one of its ``KEYS``, and all of them live in one cluster
    hash slot. The memory driver runs the same Lua source (see
    :mod:`kvstore.drivers.memory._lua`) and refuses a script that touches a key it did not
    declare, so the rule is checked by every test.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self, TypeAlias

from kvstore._checks import utf8
from kvstore.errors import BatchError, CommandError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "Arg",
    "Command",
    "Driver",
    "Reply",
    "Script",
    "encode_arg",
    "registered_script",
]

Arg: TypeAlias = str | bytes | int | float
Command: TypeAlias = Sequence[Arg]
Reply: TypeAlias = bytes | int | list["Reply"] | None


def encode_arg(value: Arg) -> bytes:
    """Encode one command argument the way every driver puts it on the wire.

    ``str`` becomes UTF-8, integers their decimal form, floats their shortest round-trip
    form with infinities spelled ``+inf`` and ``-inf`` (which Redis and Upstash accept).

    Raises:
        TypeError: for ``bool`` or any other type, which have no single Redis spelling.
        ValueError: for NaN, which Redis refuses.
        ValidationError: for a ``str`` holding a lone surrogate, which is not text. Drivers
            encode every argument of a batch before sending any, so nothing is sent.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return utf8(value, "command argument")
    if isinstance(value, bool):
        raise TypeError("bool is not a Redis argument; send an int or a string")
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, float):
        if math.isinf(value):
            return b"+inf" if value > 0 else b"-inf"
        if math.isnan(value):
            raise ValueError("NaN is not a valid Redis argument")
        return repr(value).encode()
    raise TypeError(f"unsupported Redis argument type: {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, registered once at import time and run the same way on every driver.

    Redis-speaking drivers send ``EVALSHA`` (and the source on ``NOSCRIPT``); the memory
    driver runs the same source in an embedded Lua 5.1, as Redis does.

    Attributes:
        name: A short name for errors and logs.
        lua: The Lua source.
        sha: The SHA1 of ``lua``, as ``EVALSHA`` wants it.
    """

    name: str
    lua: str
    sha: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.lua.encode()).hexdigest())
        _REGISTRY[self.sha] = self

    def command(self, keys: Sequence[Arg], args: Sequence[Arg] = ()) -> tuple[Arg, ...]:
        """The ``EVALSHA`` command that runs this script with ``KEYS`` and ``ARGV``."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


_REGISTRY: dict[str, Script] = {}


def registered_script(sha: str) -> Script | None:
    """The script with this SHA1, if one was created in this process.

    Drivers answer ``NOSCRIPT`` for an ``EVALSHA`` of a registered script by sending its
    source; the memory driver finds registered scripts without a ``SCRIPT LOAD``.
    """
    return _REGISTRY.get(sha.lower())


class Driver(ABC):
    """A connection to one Redis-speaking backend. See the module docstring for the contract.

    Drivers are async context managers; leaving the block calls :meth:`aclose`, which closes
    only the clients the driver created itself.
    """

    __slots__ = ()

    #: Whether arbitrary bytes survive a round trip. Text-only transports (Upstash REST)
    #: set this to False, and the store refuses the MessagePack codec on them.
    binary_safe: bool = True

    #: The largest request, in bytes, the backend accepts (Upstash's REST API refuses
    #: larger ones), or None for no limit. A driver with a limit refuses a larger batch
    #: with ``ValidationError`` before sending anything.
    max_request_bytes: int | None = None

    @property
    def default_buckets(self) -> int:
        """How many buckets a new store on this backend spreads its records over.

        One on a single server, where a bucket buys nothing; a cluster driver answers more,
        so that a namespace spreads over its nodes (see :mod:`kvstore.keys`).
        """
        return 1

    @abstractmethod
    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        """Send ``commands`` and return one reply per command, in order.

        On a single server the batch is one round trip, and the commands run in order. On a
        Redis Cluster the batch is split by node, one batch per node, sent concurrently;
        each node runs its commands in order.

        Args:
            commands: The commands, each a sequence starting with the command name.
            atomic: Run them as one ``MULTI``/``EXEC`` transaction (on a cluster, all keys
                must then share one hash slot).
            idempotent: The caller declares that running the batch twice is harmless and
                returns the same replies, so the driver may retry it after a transport
                failure.

        Raises:
            BatchError: one or more commands failed; ``results`` holds every reply.
            TransactionAbortedError: an atomic batch was refused as a whole.
            ConnectionFailedError: the backend could not be reached.
        """

    async def execute_steps(
        self, steps: Sequence[Sequence[Command]], *, idempotent: bool = False
    ) -> list[list[Reply]]:
        """Run batches in order: no command of a step runs before every earlier step ran.

        That is what a write across several hash slots needs so that a crash between its
        parts leaves at worst an index entry pointing at nothing. A single server keeps the
        order of one pipeline, so this is one round trip there; a cluster sends a step only
        once the earlier ones have answered, unless every step goes to one node.

        Returns:
            The replies of each step.
        """
        flat = await self.execute([c for step in steps for c in step], idempotent=idempotent)
        out: list[list[Reply]] = []
        start = 0
        for step in steps:
            out.append(flat[start : start + len(step)])
            start += len(step)
        return out

    async def run(
        self,
        script: Script,
        keys: Sequence[Arg],
        args: Sequence[Arg] = (),
        *,
        idempotent: bool = False,
    ) -> Reply:
        """Run ``script`` atomically with ``KEYS`` and ``ARGV`` in one round trip.

        Raises:
            CommandError: the script raised, or a command inside it failed.
            ConnectionFailedError: the backend could not be reached.
        """
        try:
            (reply,) = await self.execute([script.command(keys, args)], idempotent=idempotent)
        except BatchError as exc:
            raise CommandError(exc.errors[0].message, command=f"script {script.name}") from None
        return reply

    async def aclose(self) -> None:  # noqa: B027 - a driver without resources closes nothing
        """Release the resources this driver created. Closing twice is harmless."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
