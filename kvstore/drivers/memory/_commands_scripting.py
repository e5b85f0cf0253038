"""EVAL, EVALSHA and SCRIPT, run by the embedded Lua 5.1 (see ``_lua``).

Scripts are compiled once and kept by their SHA1, as in Redis. An ``EVALSHA`` of a script
kvstore registered in this process (:func:`~kvstore.drivers.base.registered_script`) finds
it without a ``SCRIPT LOAD``; any other unknown SHA1 gets Redis's ``NOSCRIPT``.

While a script runs, the keyspace holds the keys it declared (``script_keys``): the driver
refuses a command inside the script that touches any other key (see ``_driver``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvstore.drivers.base import Reply, Script, registered_script
from kvstore.drivers.memory._errors import NOT_INTEGER, ReplyError
from kvstore.errors import CommandError

if TYPE_CHECKING:
    from kvstore.drivers.memory._keyspace import Keyspace
    from kvstore.drivers.memory._lua import LuaEngine

__all__ = ["HANDLERS", "run_script"]

_NOSCRIPT = "NOSCRIPT No matching script. Please use EVAL."


def _engine(ks: Keyspace) -> LuaEngine:
    assert ks.lua is not None, "the driver sets the Lua engine"
    return ks.lua


def _numkeys(args: list[bytes]) -> int:
    """The number of keys of ``args`` = numkeys, keys..., argv...; checked before the script
    is looked up or compiled, as Redis does."""
    try:
        numkeys = int(args[0])
    except ValueError:
        raise ReplyError(NOT_INTEGER) from None
    if numkeys > len(args) - 1:
        raise ReplyError("ERR Number of keys can't be greater than number of args")
    if numkeys < 0:
        raise ReplyError("ERR Number of keys can't be negative")
    return numkeys


def _run(ks: Keyspace, sha: str, numkeys: int, args: list[bytes]) -> Reply:
    """Run the loaded script ``sha`` with ``args`` = numkeys, keys..., argv... as EVAL does."""
    keys = args[1 : 1 + numkeys]
    ks.script_keys = frozenset(keys)
    try:
        return _engine(ks).run(sha, keys, args[1 + numkeys :])
    except CommandError as exc:
        raise ReplyError(exc.message) from None
    finally:
        ks.script_keys = None


def _load(ks: Keyspace, source: bytes) -> str:
    try:
        return _engine(ks).load(source)
    except CommandError as exc:
        raise ReplyError(exc.message) from None


def run_script(ks: Keyspace, script: Script, keys: list[bytes], args: list[bytes]) -> Reply:
    """Run a registered script as ``EVALSHA`` would (loading it if it is not loaded).

    The driver's ``run`` comes here straight, without building and parsing the ``EVALSHA``
    command.

    Raises:
        CommandError: the script raised an error, or returned an error reply.
    """
    engine = _engine(ks)
    if not engine.known(script.sha):
        engine.load(script.lua.encode())
    ks.script_keys = frozenset(keys)
    try:
        return engine.run(script.sha, keys, args)
    finally:
        ks.script_keys = None


def evalsha(ks: Keyspace, args: list[bytes]) -> Reply:
    numkeys = _numkeys(args[1:])
    sha = args[0].decode("ascii", errors="replace").lower()
    if not _engine(ks).known(sha):
        script = registered_script(sha)
        if script is None:
            raise ReplyError(_NOSCRIPT)
        _load(ks, script.lua.encode())
    return _run(ks, sha, numkeys, args[1:])


def eval_(ks: Keyspace, args: list[bytes]) -> Reply:
    numkeys = _numkeys(args[1:])
    return _run(ks, _load(ks, args[0]), numkeys, args[1:])


_SCRIPT_ARITY = {b"LOAD": 3, b"EXISTS": -3, b"FLUSH": -2}


def subcommand_error(args: list[bytes]) -> str | None:
    """Why Redis refuses ``SCRIPT args`` before running it (an unknown subcommand or a
    subcommand's wrong arity), which inside ``MULTI`` aborts the transaction; else None."""
    sub = args[0].upper()
    arity = _SCRIPT_ARITY.get(sub)
    if arity is None:
        name = args[0].decode(errors="replace")
        return f"ERR unknown subcommand '{name}'. Try SCRIPT HELP."
    argc = len(args) + 1
    if argc != arity if arity > 0 else argc < -arity:
        return f"ERR wrong number of arguments for 'script|{sub.decode().lower()}' command"
    return None


def script(ks: Keyspace, args: list[bytes]) -> Reply:
    refused = subcommand_error(args)
    if refused is not None:
        raise ReplyError(refused)
    sub = args[0].upper()
    engine = _engine(ks)
    if sub == b"LOAD":
        return _load(ks, args[1]).encode()
    if sub == b"EXISTS":
        return [
            int(
                engine.known(a.decode(errors="replace"))
                or bool(registered_script(a.decode(errors="replace")))
            )
            for a in args[1:]
        ]
    if len(args) > 2 or (len(args) == 2 and args[1].upper() not in (b"SYNC", b"ASYNC")):
        raise ReplyError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    engine.forget_all()
    return b"OK"


HANDLERS = {"EVAL": eval_, "EVALSHA": evalsha, "SCRIPT": script}
