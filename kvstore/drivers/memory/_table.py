"""The command table: name -> handler, arity and write flag, and name resolution."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NamedTuple

from kvstore.drivers._commandspec import COMMANDS
from kvstore.drivers.base import Arg, Reply, encode_arg
from kvstore.drivers.memory import (
    _commands_hashes,
    _commands_keys,
    _commands_scripting,
    _commands_sets,
    _commands_streams,
    _commands_strings,
    _commands_zsets,
)
from kvstore.drivers.memory._keyspace import Keyspace

__all__ = ["TABLE", "Handler", "Implementation", "resolve"]

#: A command's implementation: it gets the keyspace and the arguments after the name.
Handler = Callable[[Keyspace, list[bytes]], Reply]


class Implementation(NamedTuple):
    """One supported command.

    ``min_args`` and ``max_args`` are Redis's arity check (exact if the arity is positive,
    a minimum if negative) restated for the arguments after the name.
    """

    name: str  # upper-case, as in CommandError.command
    handler: Handler
    min_args: int
    max_args: int
    write: bool
    #: Where the keys are among the arguments after the name: ``keys[first:last:step]``
    #: (``last`` None: to the end; ``step`` 0: no keys). Scripts' declared keys are
    #: checked against these.
    first_key: int
    last_key: int | None
    key_step: int

    def accepts(self, args: int) -> bool:
        """Whether ``args`` arguments (after the name) pass Redis's arity check."""
        return self.min_args <= args <= self.max_args

    def keys(self, args: list[bytes]) -> list[bytes]:
        """The key arguments among ``args`` (the arguments after the name)."""
        if not self.key_step:
            return []
        return args[self.first_key : self.last_key : self.key_step]


def _build() -> dict[bytes, Implementation]:
    table = {}
    for module in (
        _commands_keys,
        _commands_strings,
        _commands_hashes,
        _commands_sets,
        _commands_zsets,
        _commands_streams,
        _commands_scripting,
    ):
        for name, handler in module.HANDLERS.items():
            spec = COMMANDS[name]
            low = abs(spec.arity) - 1
            high = low if spec.arity > 0 else sys.maxsize
            last = None if spec.last_key == -1 else spec.last_key
            table[name.encode()] = Implementation(
                name,
                handler,
                low,
                high,
                spec.write,
                spec.first_key - 1,
                last,
                spec.step if spec.first_key else 0,
            )
    return table


#: Every command the memory driver implements, by upper-case name.
TABLE = _build()

# Spellings already seen ("GET", "get", b"GET", ...) -> implementation, so that resolving
# a name is one dict lookup on the hot path. Bounded, since callers control spellings.
_SEEN: dict[str | bytes, Implementation] = {}
_SEEN_MAX = 4096


def resolve(name: Arg) -> Implementation | None:
    """The implementation of command ``name`` (str or bytes, any case), or None."""
    found = _SEEN.get(name)  # type: ignore[arg-type]  # an int or float is simply not found
    if found is not None:
        return found
    found = TABLE.get(encode_arg(name).upper())  # bytes.upper() is ASCII-only, as strcasecmp
    if found is not None and len(_SEEN) < _SEEN_MAX and isinstance(name, str | bytes):
        _SEEN[name] = found
    return found
