"""EVAL, EVALSHA and SCRIPT: scripts by their SHA1, answered by kvstore's registered twins.

The memory driver cannot run Lua. Every :class:`~kvstore.drivers.base.Script` registers
itself when created, so a script that arrives as a plain command (through the local
Upstash-protocol server, say) is found by its SHA1 and its Python twin runs instead. A
script kvstore does not know cannot run here and gets a clear error.

The twin needs ``redis.call``; the driver puts its own on the keyspace (``script_call``),
so these handlers keep the signature of every other command.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from kvstore.drivers.base import Reply, Script, registered_script
from kvstore.drivers.memory._errors import NOT_INTEGER, ReplyError
from kvstore.errors import CommandError

if TYPE_CHECKING:
    from kvstore.drivers.memory._keyspace import Keyspace

__all__ = ["HANDLERS"]

_NOSCRIPT = "NOSCRIPT No matching script. Please use EVAL."


def _unknown_source() -> ReplyError:
    return ReplyError(
        "ERR the memory driver runs only kvstore's registered scripts (it has no Lua); "
        "use a Redis server for other scripts"
    )


def _run(ks: Keyspace, script: Script, args: list[bytes]) -> Reply:
    """Run ``script`` with ``args`` = numkeys, keys..., argv... as EVAL does."""
    try:
        numkeys = int(args[0])
    except ValueError:
        raise ReplyError(NOT_INTEGER) from None
    if numkeys < 0:
        raise ReplyError("ERR Number of keys can't be negative")
    if numkeys > len(args) - 1:
        raise ReplyError("ERR Number of keys can't be greater than number of args")
    assert ks.script_call is not None, "the driver sets script_call"
    try:
        return script.twin(ks.script_call, args[1 : 1 + numkeys], args[1 + numkeys :])
    except CommandError as exc:
        raise ReplyError(exc.message) from None


def evalsha(ks: Keyspace, args: list[bytes]) -> Reply:
    script = registered_script(args[0].decode("ascii", errors="replace"))
    if script is None:
        raise ReplyError(_NOSCRIPT)
    return _run(ks, script, args[1:])


def eval_(ks: Keyspace, args: list[bytes]) -> Reply:
    script = registered_script(hashlib.sha1(args[0]).hexdigest())
    if script is None:
        raise _unknown_source()
    return _run(ks, script, args[1:])


_SCRIPT_ARITY = {b"LOAD": 3, b"EXISTS": -3, b"FLUSH": -2}


def script(ks: Keyspace, args: list[bytes]) -> Reply:
    del ks
    sub = args[0].upper()
    arity = _SCRIPT_ARITY.get(sub)
    if arity is None:
        name = args[0].decode(errors="replace")
        raise ReplyError(f"ERR unknown subcommand '{name}'. Try SCRIPT HELP.")
    argc = len(args) + 1
    if argc != arity if arity > 0 else argc < -arity:
        raise ReplyError(
            f"ERR wrong number of arguments for 'script|{sub.decode().lower()}' command"
        )
    if sub == b"LOAD":
        found = registered_script(hashlib.sha1(args[1]).hexdigest())
        if found is None:
            raise _unknown_source()
        return found.sha.encode()
    if sub == b"EXISTS":
        return [int(registered_script(a.decode(errors="replace")) is not None) for a in args[1:]]
    if len(args) > 2 or (len(args) == 2 and args[1].upper() not in (b"SYNC", b"ASYNC")):
        raise ReplyError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    return b"OK"  # registered scripts live as long as the process: nothing to forget


HANDLERS = {"EVAL": eval_, "EVALSHA": evalsha, "SCRIPT": script}
