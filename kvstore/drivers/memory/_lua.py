"""Lua scripts in the memory driver: the Lua 5.1 dialect Redis embeds, through lupa.

kvstore's scripts have one source of truth, their Lua. The memory driver runs that source
here rather than a Python port of it, so a script cannot behave differently on the memory
driver and on Redis, and ``EVAL`` of any script works (the local Upstash-protocol server
relies on that).

The interpreter is LuaJIT 2.1 where lupa's wheel carries it (Linux and Windows; several
times faster on kvstore's string work), else Lua 5.1 itself (macOS). Both speak Lua 5.1,
the language of Redis's scripts; the differential tests compare the memory driver with a
real Redis on the same scripts.

What a script sees mirrors Redis 7:

* ``KEYS`` and ``ARGV`` as tables of strings; ``redis.call`` (raises on an error reply),
  ``redis.pcall`` (returns it as ``{err=...}``), ``redis.error_reply`` and
  ``redis.status_reply``; the standard ``string``, ``table`` and ``math`` libraries,
  ``tonumber``, ``tostring``, ``unpack``, ``pairs``, ``ipairs``, ``type``, ``select``,
  ``pcall``, ``error``, ``assert``. Not ``os``, ``io``, ``debug``, ``require`` or the
  ``cjson``/``cmsgpack``/``bit``/``struct`` modules Redis bundles (kvstore's scripts never
  parse JSON).
* Conversions both ways as Redis documents them: a nil reply becomes ``false``, an integer
  a number; a Lua number becomes an integer (truncated), ``false`` a nil reply, ``true`` the
  integer 1, a table an array up to its first nil, ``{err=...}`` an error and ``{ok=...}`` a
  status. Command arguments that are numbers are sent as Redis spells them (``%.17g``).
* Creating a global variable is an error, as in Redis (reading an undefined one gives nil:
  lupa itself looks some up).

One difference: a status reply reaches the script as a plain string, not ``{ok=...}``,
because the memory driver's replies do not keep that distinction.
"""

from __future__ import annotations

import hashlib
import importlib
from typing import TYPE_CHECKING, Any

from kvstore.errors import CommandError

if TYPE_CHECKING:
    from collections.abc import Callable

    from kvstore.drivers.base import Reply


def _interpreter() -> Any:
    """lupa's LuaJIT 2.1 module where the wheel has it, else its Lua 5.1 module."""
    for name in ("luajit21", "lua51"):
        try:
            return importlib.import_module(f"lupa.{name}")
        except ImportError:
            continue
    raise ImportError("kvstore's memory driver needs lupa with Lua 5.1 (pip install 'lupa>=2.2')")


_lua = _interpreter()

__all__ = ["LuaEngine"]

# Runs once per engine. It keeps private references to what the sandbox then removes from
# the globals, defines the ``redis`` table around the Python bridge, and locks the globals.
_SETUP = """
function(bridge)
  local loadstring, pcall, type, tostring, error, rawset =
    loadstring, pcall, type, tostring, error, rawset
  for _, name in ipairs({'os', 'io', 'package', 'require', 'dofile', 'loadfile', 'debug',
                         'python', 'module', 'print', 'load', 'loadstring', 'getfenv',
                         'setfenv', 'collectgarbage', 'gcinfo', 'newproxy'}) do
    _G[name] = nil
  end
  local function raise_error_reply(reply)
    if type(reply) == 'table' and reply.err ~= nil then
      error(reply, 0)
    end
    return reply
  end
  redis = {
    call = function(...) return raise_error_reply(bridge(...)) end,
    pcall = function(...) return bridge(...) end,
    error_reply = function(message) return {err = message} end,
    status_reply = function(message) return {ok = message} end,
  }
  KEYS, ARGV = {}, {}
  setmetatable(_G, {
    __newindex = function(_, name)
      error('Script attempted to create global variable ' .. tostring(name), 2)
    end,
  })
  local function compile(source)
    return loadstring(source, '@user_script')
  end
  local function run(chunk, keys, argv)
    rawset(_G, 'KEYS', keys)
    rawset(_G, 'ARGV', argv)
    local ok, result = pcall(chunk)
    if ok then
      return true, result
    end
    if type(result) == 'table' and result.err ~= nil then
      return false, result.err
    end
    return false, tostring(result)
  end
  return compile, run
end
"""

_lua_type = _lua.lua_type
_INT64 = 2**63


def _number_arg(value: float) -> bytes:
    """A Lua number as Redis sends it in a command: an integer plainly, else ``%.17g``."""
    if value.is_integer() and -_INT64 <= value < _INT64:
        return b"%d" % int(value)
    return b"%.17g" % value


class LuaEngine:
    """One Lua state that compiles scripts once and runs them with Redis's conventions.

    Args:
        call: Runs one command (name and arguments as bytes) and returns its reply, or
            raises :class:`CommandError`; it stands for ``redis.call``. The caller holds
            whatever lock makes a script atomic.
    """

    __slots__ = ("_call", "_compile", "_functions", "_run", "_runtime")

    def __init__(self, call: Callable[[list[bytes]], Reply]) -> None:
        self._call = call
        self._runtime = _lua.LuaRuntime(
            encoding=None,
            unpack_returned_tuples=False,
            register_eval=False,
            register_builtins=False,
        )
        self._compile, self._run = self._runtime.eval(_SETUP)(self._bridge)
        self._functions: dict[str, Any] = {}

    def load(self, source: bytes) -> str:
        """Compile ``source`` and keep it under its SHA1, which is returned.

        Raises:
            CommandError: the source does not compile (Redis's ``Error compiling script``).
        """
        sha = hashlib.sha1(source).hexdigest()
        if sha not in self._functions:
            function, error = self._compile_source(source)
            if function is None:
                raise CommandError(f"ERR Error compiling script (new function): {error}")
            self._functions[sha] = function
        return sha

    def known(self, sha: str) -> bool:
        """Whether a script with this SHA1 was loaded."""
        return sha.lower() in self._functions

    def forget_all(self) -> None:
        """``SCRIPT FLUSH``: drop every compiled script."""
        self._functions.clear()

    def run(self, sha: str, keys: list[bytes], args: list[bytes]) -> Reply:
        """Run a loaded script; the caller checked :meth:`known`.

        Raises:
            CommandError: the script raised an error, or returned an error reply.
        """
        table_from = self._runtime.table_from
        ok, result = self._run(self._functions[sha.lower()], table_from(keys), table_from(args))
        if not ok:
            message = result.decode("utf-8", errors="replace")
            raise CommandError(message if message[:1].isupper() else "ERR " + message)
        return self._to_reply(result)

    def _compile_source(self, source: bytes) -> tuple[Any, str]:
        compiled = self._compile(source)
        if isinstance(compiled, tuple):
            function, error = compiled
            return function, error.decode("utf-8", errors="replace") if error else ""
        return compiled, ""

    # -- the bridge between Lua values and Redis replies -----------------------------------

    def _bridge(self, *command: Any) -> Any:
        """``redis.call``/``redis.pcall``: run one command; an error becomes ``{err=...}``."""
        try:
            if not command:
                raise CommandError(
                    "ERR Please specify at least one argument for this redis lib call"
                )
            args: list[bytes] = []
            for value in command:
                kind = type(value)
                if kind is bytes:
                    args.append(value)
                elif kind is int:
                    args.append(b"%d" % value)
                elif kind is float:
                    args.append(_number_arg(value))
                else:
                    raise CommandError(
                        "ERR Lua redis lib command arguments must be strings or integers"
                    )
            reply = self._call(args)
        except CommandError as exc:
            return self._runtime.table_from({b"err": exc.message.encode()})
        return self._to_lua(reply)

    def _to_lua(self, reply: Reply) -> Any:
        if reply is None:
            return False
        if type(reply) is list:
            return self._runtime.table_from([self._to_lua(item) for item in reply])
        return reply

    def _to_reply(self, value: Any) -> Reply:
        kind = type(value)
        if kind is bytes or kind is int:
            return value  # type: ignore[no-any-return]
        if value is None or value is False:
            return None
        if value is True:
            return 1
        if kind is float:
            return int(value)
        if _lua_type(value) == "table":
            error = value[b"err"]
            if error is not None:
                message = error.decode("utf-8", errors="replace")
                raise CommandError(message if message[:1].isupper() else "ERR " + message)
            status = value[b"ok"]
            if status is not None:
                return status  # type: ignore[no-any-return]
            out: list[Reply] = []
            index = 1
            while (item := value[index]) is not None:
                out.append(self._to_reply(item))
                index += 1
            return out
        return None  # functions, userdata: Redis replies nil
