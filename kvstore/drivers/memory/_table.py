"""The command table: name -> handler, arity and write flag, and name resolution."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from kvstore.drivers._commandspec import COMMANDS
from kvstore.drivers.base import Reply, encode_arg
from kvstore.drivers.memory import (
    _commands_hashes,
    _commands_keys,
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
    """One supported command."""

    name: str  # upper-case, as in CommandError.command
    handler: Handler
    arity: int  # Redis's: exact if positive, a minimum if negative; counts the name
    write: bool

    def accepts(self, argc: int) -> bool:
        """Whether ``argc`` words (the name included) pass Redis's arity check."""
        return argc == self.arity if self.arity > 0 else argc >= -self.arity


def _build() -> dict[bytes, Implementation]:
    table = {}
    for module in (
        _commands_keys,
        _commands_strings,
        _commands_hashes,
        _commands_sets,
        _commands_zsets,
        _commands_streams,
    ):
        for name, handler in module.HANDLERS.items():
            spec = COMMANDS[name]
            table[name.encode()] = Implementation(name, handler, spec.arity, spec.write)
    return table


#: Every command the memory driver implements, by upper-case name.
TABLE = _build()

# Spellings already seen ("GET", "get", b"GET", ...) -> implementation, so that resolving
# a name is one dict lookup on the hot path. Bounded, since callers control spellings.
_SEEN: dict[str | bytes, Implementation] = {}
_SEEN_MAX = 4096


def resolve(name: object) -> Implementation | None:
    """The implementation of command ``name`` (str or bytes, any case), or None."""
    found = _SEEN.get(name)  # type: ignore[call-overload]
    if found is not None:
        return found
    raw = name if isinstance(name, bytes) else encode_arg(name)  # type: ignore[arg-type]
    found = TABLE.get(raw.upper())  # bytes.upper() is ASCII-only, as strcasecmp
    if found is not None and len(_SEEN) < _SEEN_MAX and isinstance(name, str | bytes):
        _SEEN[name] = found
    return found
