"""The driver contract: the narrow waist between the domains and a Redis-speaking backend.

A driver knows nothing of threads, workflows or any other record. It does two things:

* :meth:`Driver.execute` sends a batch of Redis commands in one round trip, pipelined or
  atomic (``MULTI``/``EXEC``);
* :meth:`Driver.run` runs a registered :class:`Script` (``EVALSHA``, loading the script
  on ``NOSCRIPT``).

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
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self, TypeAlias

from kvstore._checks import utf8

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "Arg",
    "Command",
    "Driver",
    "Reply",
    "Script",
    "ScriptCall",
    "encode_arg",
    "registered_script",
]

Arg: TypeAlias = str | bytes | int | float
Command: TypeAlias = Sequence[Arg]
Reply: TypeAlias = bytes | int | list["Reply"] | None

#: What a script's Python twin gets in place of Lua's ``redis.call``: it runs one
#: command and returns its normalised reply, or raises :class:`~kvstore.errors.CommandError`.
#: Typed ``Any`` like Lua's values: each twin knows the reply shape of the commands it sends.
ScriptCall: TypeAlias = Callable[..., Any]


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
    """A Lua script and its Python twin, registered once at import time.

    Redis-speaking drivers run ``lua`` with ``EVALSHA`` (loading it on ``NOSCRIPT``); the
    memory driver runs ``twin`` under its lock, which is what makes a script atomic there.
    The conformance suite runs every script on real Redis and on the memory driver and
    compares the replies.

    The twin is called as ``twin(call, keys, args)`` where ``keys`` and ``args`` are lists of
    ``bytes`` and ``call`` stands for ``redis.call``. It must return what the Lua script's
    reply becomes on the wire, in the normalised reply shape: remember that Lua numbers
    become integers (truncated), ``false`` becomes ``None``, and an array ends at its first
    ``nil``, so scripts should never put ``false`` inside a returned table.

    Attributes:
        name: A short name for errors and logs.
        lua: The Lua source.
        twin: The Python implementation with the same reply.
        sha: The SHA1 of ``lua``, as ``EVALSHA`` wants it.
    """

    name: str
    lua: str
    twin: Callable[[ScriptCall, list[bytes], list[bytes]], Reply] = field(repr=False)
    sha: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.lua.encode()).hexdigest())
        _REGISTRY[self.sha] = self


_REGISTRY: dict[str, Script] = {}


def registered_script(sha: str) -> Script | None:
    """The script with this SHA1, if one was created in this process.

    Backends that cannot run Lua (the memory driver) answer ``EVALSHA`` through this
    registry by running the script's twin.
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

    @abstractmethod
    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        """Send ``commands`` in one round trip and return one reply per command.

        Args:
            commands: The commands, each a sequence starting with the command name.
            atomic: Run them as one ``MULTI``/``EXEC`` transaction.
            idempotent: The caller declares that running the batch twice is harmless, so
                the driver may retry it after a transport failure.

        Raises:
            BatchError: one or more commands failed; ``results`` holds every reply.
            TransactionAbortedError: an atomic batch was refused as a whole.
            ConnectionFailedError: the backend could not be reached.
        """

    @abstractmethod
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
