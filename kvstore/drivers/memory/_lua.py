"""Lua scripts in the memory driver: the same Lua 5.1 Redis embeds, through lupa.

kvstore's scripts have one source of truth, their Lua. The memory driver runs that source
here rather than a Python port of it, so a script cannot behave differently on the memory
driver and on Redis, and ``EVAL`` of any script works (the local Upstash-protocol server
relies on that).

What a script sees mirrors Redis 7.0 (the differential suite compares random scripts with a
real server):

* ``KEYS`` and ``ARGV`` as tables of strings; ``redis.call`` (raises on an error reply),
  ``redis.pcall`` (returns it as ``{err=...}``), ``redis.error_reply``,
  ``redis.status_reply``, ``redis.sha1hex``, ``redis.log`` (which logs nothing) and the
  replication and version helpers; the ``string``, ``table``, ``math`` and ``coroutine``
  libraries and the base functions Redis keeps, with Redis's ``pcall`` (an error table is
  caught as its message) and ``math.random`` (rand48: after ``math.randomseed(n)`` the
  same numbers as Redis).
* A sandbox: the globals and the library tables are read-only (``Attempt to modify a
  readonly table``), and reading an undefined global is an error (``Script attempted to
  access nonexistent global variable``). No script can leave anything behind for the next.
* Conversions both ways as Redis does them: a nil reply becomes ``false``, an integer a
  number, a status reply ``{ok=...}``, an error reply ``{err=...}``; a Lua number becomes an
  integer (truncated; out of range or NaN: the smallest 64-bit integer, as on x86), ``false``
  a nil reply, ``true`` the integer 1, a table an array up to its first nil, ``{err=...}``
  an error and ``{ok=...}`` a status. Numbers passed to ``redis.call`` are spelled
  ``%.17g``.
* Errors as Redis words them: an error raised in a script (by ``error``, a failed
  ``redis.call`` or the Lua runtime) ends with ``script: <sha1>, on @user_script:<line>.``;
  an error reply returned by the script does not.

Left out: the ``cjson``, ``cmsgpack``, ``bit`` and ``struct`` modules (kvstore's scripts never
parse JSON), ``redis.setresp(3)`` (the memory driver speaks RESP2), and a script's time limit.
Known differences: ``redis.call`` and ``redis.pcall`` are Python callables (``type()`` says
``userdata``, and an error caught by ``xpcall`` is one too); an error raised by the
sandbox's own Lua helpers (``rawset`` or ``setmetatable`` on a read-only table, a bad
``math.random`` argument) names the line of the script only if the helper was not
tail-called; ``-0.0`` reaches a command as ``0`` (lupa hands integral numbers to Python as
integers); a script may touch only the keys it declares (see ``_driver``); an error reply
inside a returned array fails the script (the driver contract has no such reply), and a
reply nested deeper than 500 arrays is refused (``reached lua stack limit``, which Redis
says only far deeper).

Speed. Crossing between Python and Lua costs about a microsecond each way through lupa, so
a script's reply is converted in Lua and handed over as one MessagePack string (decoded by
msgspec), and a script's keys and arguments travel as the arguments of one call.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

import msgspec

from kvstore.errors import CommandError

if TYPE_CHECKING:
    from collections.abc import Callable

    from kvstore.drivers.base import Reply

try:
    from lupa import lua51
except ImportError as exc:  # pragma: no cover - lupa's wheels ship Lua 5.1 on every platform
    raise ImportError(
        "kvstore's memory driver needs lupa with Lua 5.1 (pip install 'lupa>=2.2')"
    ) from exc

__all__ = ["LuaEngine"]

# Runs once per engine: builds the sandbox around the Python bridge and returns the
# functions that compile and run scripts in it.
_SETUP = r"""
function(call, pcall_, unwrap, format_error, sha1hex, lrand48, srand48)
  local G = _G
  local getinfo, setfenv, loadstring, load = debug.getinfo, setfenv, loadstring, load
  local xpcall, type, tostring, error, rawget, rawset, tonumber, floor =
    xpcall, type, tostring, error, rawget, rawset, tonumber, math.floor
  local setmetatable, getmetatable = setmetatable, getmetatable
  local INTERNAL = getinfo(1, 'S').source
  local READONLY = 'Attempt to modify a readonly table'


  -- Read-only tables: an empty proxy in front of each, refusing writes.
  local protected = {}
  local function refuse()
    error(READONLY, 2)
  end
  local function protect(t)
    local proxy = setmetatable({}, {__index = t, __newindex = refuse, __metatable = {}})
    protected[proxy] = true
    return proxy
  end

  local function error_reply(message)
    if type(message) ~= 'string' then
      return {err = 'ERR wrong number or type of arguments'}
    end
    return {err = format_error(message)}
  end
  local function status_reply(message)
    if type(message) ~= 'string' then
      return {err = 'ERR wrong number or type of arguments'}
    end
    return {ok = message}
  end
  local redis = {
    -- Python callables, which Lua calls as C functions, as Redis's are: a script's
    -- ``return redis.call(...)`` is then no tail call, and keeps its line for errors.
    call = call,
    pcall = pcall_,
    error_reply = error_reply,
    status_reply = status_reply,
    sha1hex = function(text)
      if type(text) ~= 'string' and type(text) ~= 'number' then
        error('wrong number of arguments', 0)
      end
      return sha1hex(tostring(text))
    end,
    log = function() end,
    LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
    setresp = function(version)
      if version ~= 2 then
        error("the memory driver's scripts speak RESP2 only", 0)
      end
    end,
    set_repl = function() end,
    replicate_commands = function() return true end,
    breakpoint = function() return false end,
    debug = function() end,
    REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
    REDIS_VERSION = '7.0.0', REDIS_VERSION_NUM = 458752,
  }
  -- Redis's PRNG (rand48), one sequence across scripts, as in Redis 7.
  local function random(...)
    local r = (lrand48() % 2147483647) / 2147483647
    local n = select('#', ...)
    if n == 0 then
      return r
    end
    local low, high = 1, tonumber((...))
    if n == 2 then
      low, high = tonumber((...)), tonumber((select(2, ...)))
    elseif n > 2 then
      error('wrong number of arguments', 2)
    end
    if low == nil or high == nil then
      error("bad argument #1 to 'random' (number expected)", 2)
    end
    if low > high then
      error("bad argument #" .. n .. " to 'random' (interval is empty)", 2)
    end
    return floor(r * (high - low + 1)) + low
  end
  local math = {}
  for name, f in pairs(G.math) do
    math[name] = f
  end
  math.random = random
  math.randomseed = function(seed) srand48(tonumber(seed) or 0) end

  -- The scripts' globals: a copy of the standard ones (lupa reads the real ones itself),
  -- in which reading an unknown name is an error, behind a read-only proxy.
  local S = {}
  for name, value in pairs(G) do
    S[name] = value
  end
  for _, name in ipairs({'os', 'io', 'package', 'require', 'dofile', 'loadfile', 'debug',
                         'python', 'module', 'print', 'getfenv', 'setfenv', 'newproxy'}) do
    S[name] = nil
  end
  local env
  local function sandboxed(chunk, message)
    if chunk then
      setfenv(chunk, env)
    end
    return chunk, message
  end
  -- Redis's pcall: an error table (or redis.call's error reply) is caught as its message.
  local builtin_pcall, unpack = pcall, unpack
  local function pack(...)
    return {n = select('#', ...), ...}
  end
  S.pcall = function(...)
    local r = pack(builtin_pcall(...))
    if not r[1] then
      local e = r[2]
      if type(e) == 'userdata' then
        r[2] = unwrap(e) or e
      elseif type(e) == 'table' then
        local message = rawget(e, 'err')
        if type(message) == 'string' or type(message) == 'number' then
          r[2] = message
        end
      end
    end
    return unpack(r, 1, r.n)
  end
  S.loadstring = function(...) return sandboxed(loadstring(...)) end
  S.load = function(...) return sandboxed(load(...)) end
  S.rawset = function(t, k, v)
    if protected[t] then
      error(READONLY, 0)
    end
    return rawset(t, k, v)
  end
  S.setmetatable = function(t, m)
    if protected[t] then
      error(READONLY, 0)
    end
    return setmetatable(t, m)
  end
  S.redis = protect(redis)
  S.math = protect(math)
  for _, name in ipairs({'string', 'table', 'coroutine'}) do
    S[name] = protect(G[name])
  end
  setmetatable(S, {__index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'",
      2)
  end})
  env = protect(S)
  S._G = env

  -- Redis's error handler: the error as a table, with where the script raised it.
  local function handler(err)
    local level = 2
    local info = getinfo(level, 'Sl')
    while info and (info.what == 'C' or info.source == INTERNAL) do
      level = level + 1
      info = getinfo(level, 'Sl')
    end
    if type(err) == 'userdata' then
      -- redis.call's error reply, raised from Python
      local text = unwrap(err)
      err = text and {err = text} or {err = 'ERR ' .. tostring(err)}
    elseif type(err) ~= 'table' then
      err = {err = 'ERR ' .. tostring(err)}
    end
    if info then
      rawset(err, 'source', info.source)
      rawset(err, 'line', info.currentline)
    end
    return err
  end

  local function compile(source)
    return sandboxed(loadstring(source, '@user_script'))
  end

  -- The script's reply, converted as Redis converts it, serialized as MessagePack in one
  -- string: Python decodes that in C (msgspec), where reading the table from Python would
  -- cross into Lua once per element. An error reply anywhere in it (nested ones too, as
  -- the Python conversion did) ends the conversion with its message instead.
  local char, concat, byte = string.char, table.concat, string.byte
  local NIL, TRUE = '\192', '\1'
  local INT64_MIN = '\211\128\0\0\0\0\0\0\0'
  local TWO32, TWO63 = 4294967296, 2^63
  -- Headers of strings shorter than 256 bytes, of arrays shorter than 16, and the
  -- integers MessagePack stores in one byte: the common cases, looked up, not built.
  local BIN8, ARRAY4, FIXINT = {}, {}, {}
  for n = 0, 255 do
    BIN8[n] = char(196, n)
  end
  for n = 0, 15 do
    ARRAY4[n] = char(144 + n)
  end
  for n = 0, 127 do
    FIXINT[n] = char(n)
  end
  for n = -32, -1 do
    FIXINT[n] = char(256 + n)
  end
  local function bytes4(n)
    return char(floor(n / 16777216), floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
  end
  local function bin_header(size)
    if size < 256 then
      return BIN8[size]
    elseif size < 65536 then
      return char(197, floor(size / 256), size % 256)
    end
    return '\198' .. bytes4(size)
  end
  -- A Lua number as Redis's (long long) cast makes it on x86: truncated; NaN and
  -- numbers out of range become the smallest 64-bit integer.
  local function integer(n)
    if n ~= n or n >= TWO63 or n < -TWO63 then
      return INT64_MIN
    end
    if n >= 0 then
      n = floor(n)
    else
      n = -floor(-n)
    end
    local small = FIXINT[n]
    if small then
      return small
    end
    -- Both halves are exact: n is an integer below 2^63 in magnitude.
    local high = floor(n / TWO32)
    local low = n - high * TWO32
    if high < 0 then
      high = high + TWO32
    end
    return '\211' .. bytes4(high) .. bytes4(low)
  end
  -- The array part of a table with a metatable, read raw.
  local function raw_copy(t)
    local copy, i = {}, 1
    local item = rawget(t, 1)
    while item ~= nil do
      copy[i] = item
      i = i + 1
      item = rawget(t, i)
    end
    return copy
  end
  -- Deeper replies are refused rather than risking the recursion limit of the decoder.
  local MAX_DEPTH = 500
  local failure
  local function encode(value, out, n, depth)
    local kind = type(value)
    if kind == 'string' then
      out[n + 1] = bin_header(#value)
      out[n + 2] = value
      return n + 2
    elseif kind == 'number' then
      out[n + 1] = integer(value)
      return n + 1
    elseif kind == 'table' then
      -- Raw reads, as Redis's: a read-only table would answer unknown names with an error.
      -- A table without a metatable (a script's own) is read directly, which is faster.
      local raw = getmetatable(value) ~= nil
      local message, status
      if raw then
        message, status = rawget(value, 'err'), rawget(value, 'ok')
      else
        message, status = value.err, value.ok
      end
      if type(message) == 'string' then
        failure = message
        return nil
      end
      if type(status) == 'string' then
        out[n + 1] = bin_header(#status)
        out[n + 2] = status
        return n + 2
      end
      if depth >= MAX_DEPTH then
        failure = 'ERR reached lua stack limit'
        return nil
      end
      if raw then
        value = raw_copy(value)
      end
      -- An array up to its first nil.
      local size = 0
      while value[size + 1] ~= nil do
        size = size + 1
      end
      if size < 16 then
        out[n + 1] = ARRAY4[size]
      elseif size < 65536 then
        out[n + 1] = char(220, floor(size / 256), size % 256)
      else
        out[n + 1] = '\221' .. bytes4(size)
      end
      n = n + 1
      for i = 1, size do
        local item = value[i]
        if type(item) == 'string' then  -- inlined: the common element
          local length = #item
          out[n + 1] = length < 256 and BIN8[length] or bin_header(length)
          out[n + 2] = item
          n = n + 2
        else
          n = encode(item, out, n, depth + 1)
          if not n then
            return nil
          end
        end
      end
      return n
    elseif value == true then
      out[n + 1] = TRUE
      return n + 1
    elseif kind == 'userdata' then
      -- pcall(redis.call, ...)'s error reply, returned: an error
      local text = unwrap(value)
      if text then
        failure = text
        return nil
      end
    end
    out[n + 1] = NIL  -- nil, false, functions and other userdata: Redis replies nil
    return n + 1
  end

  -- Runs a compiled script with KEYS and ARGV. Returns the reply serialized, or false and
  -- the error's message, the source and line where the script raised it (none for an
  -- error reply the script returned).
  local function run(chunk, keys, argv)
    S.KEYS, S.ARGV = keys, argv
    local ok, result = xpcall(chunk, handler)
    if ok then
      if type(result) == 'string' then  -- the common case, without a table
        return bin_header(#result) .. result
      end
      local out = {}
      if encode(result, out, 0, 0) then
        return concat(out)
      end
      local message = failure
      failure = nil
      return false, message, nil, nil
    end
    local message = rawget(result, 'err')
    if type(message) ~= 'string' and type(message) ~= 'number' then
      message = nil
    end
    return false, message and tostring(message), rawget(result, 'source'),
      rawget(result, 'line')
  end
  -- run, with the keys and arguments passed as arguments after their count: one call
  -- from Python instead of three (two tables, then the run).
  local function run_args(chunk, nkeys, ...)
    local all, keys, argv = {...}, {}, {}
    for i = 1, nkeys do
      keys[i] = all[i]
    end
    for i = nkeys + 1, select('#', ...) do
      argv[i - nkeys] = all[i]
    end
    return run(chunk, keys, argv)
  end
  return compile, run, run_args
end
"""

_decode_reply = msgspec.msgpack.Decoder().decode
_INT64 = 2**63
_INT64_MIN = -(2**63)
# Commands whose reply is a status (``+OK``), which scripts see as ``{ok=...}``.
_STATUS = {b"MSET", b"FLUSHDB", b"FLUSHALL", b"TYPE", b"SELECT", b"RENAME", b"HMSET"}
_A48, _C48, _MASK48 = 0x5DEECE66D, 0xB, (1 << 48) - 1
# Keys and arguments passed to a script as Lua call arguments at most (Lua 5.1's C stack
# takes about 8,000); more travel as two tables.
_MAX_SPREAD = 200
_STATUS_SPELLINGS = 1024


def _number_arg(value: float) -> bytes:
    """A Lua number as Redis spells it in a command (``%.17g``, glibc's ``-nan``)."""
    if math.isnan(value):
        return b"-nan" if math.copysign(1.0, value) < 0 else b"nan"
    return b"%.17g" % value


def _argument(value: object) -> bytes:
    """A ``redis.call`` argument other than a string: a number, spelled as Redis does."""
    kind = type(value)
    if kind is int or kind is float:
        return _number_arg(float(value))  # type: ignore[arg-type]
    raise CommandError("ERR Lua redis lib command arguments must be strings or integers")


def _integer(value: float) -> int:
    """A Lua number as Redis's ``(long long)`` cast makes it on x86."""
    if isinstance(value, int):
        return value if _INT64_MIN <= value < _INT64 else _INT64_MIN
    if not math.isfinite(value) or not _INT64_MIN <= value < _INT64:
        return _INT64_MIN
    return int(value)


def error_text(message: str) -> str:
    """An error reply as Redis's Lua bridge words it for a script: ``CODE message``, the
    code being the first word (``ERR`` when there is only one), without a final newline."""
    code, space, rest = message.partition(" ")
    if not space:
        code, rest = "ERR", message
    return f"{code} {rest}".rstrip("\r\n")


def _flat(message: str) -> str:
    """Redis replaces newlines in an error reply with spaces."""
    return message.replace("\r", " ").replace("\n", " ")


class _ErrorReply(Exception):  # noqa: N818 - it is an error reply, not an error of ours
    """An error reply of ``redis.call``, raised through Lua to the script's error handler.

    A script that catches it with ``pcall`` can read ``e.err``, as with Redis's table.
    """

    def __init__(self, err: bytes) -> None:
        super().__init__(err.decode("utf-8", errors="replace"))
        self.err = err

    @staticmethod
    def text_of(error: object) -> bytes | None:
        return error.err if type(error) is _ErrorReply else None


def _format_error_reply(message: bytes) -> bytes:
    """``redis.error_reply``'s wording of ``message``."""
    return error_text(message.decode("utf-8", errors="replace").removeprefix("-")).encode()


class LuaEngine:
    """One Lua state that compiles scripts once and runs them with Redis's conventions.

    Args:
        call: Runs one command (name and arguments as bytes) and returns its reply, or
            raises :class:`CommandError`; it stands for ``redis.call``. The caller holds
            whatever lock makes a script atomic.
    """

    __slots__ = (
        "_call",
        "_compile",
        "_functions",
        "_rand",
        "_run",
        "_run_args",
        "_runtime",
        "_status",
        "_table_from",
    )

    def __init__(self, call: Callable[[list[bytes]], Reply]) -> None:
        self._call = call
        self._rand = 0x1234ABCD330E  # rand48's initial state
        self._runtime = lua51.LuaRuntime(
            encoding=None,
            unpack_returned_tuples=False,
            register_eval=False,
            register_builtins=False,
        )
        self._compile, self._run, self._run_args = self._runtime.eval(_SETUP)(
            self._raising_call,
            self._protected_call,
            _ErrorReply.text_of,
            _format_error_reply,
            self._sha1hex,
            self._lrand48,
            self._srand48,
        )
        self._functions: dict[str, Any] = {}
        self._table_from = self._runtime.table_from
        # Whether a command's bytes reply is a status, by its name as scripts spell it.
        self._status: dict[bytes, bool] = {}

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
        sha = sha.lower()
        function = self._functions[sha]
        if len(keys) + len(args) <= _MAX_SPREAD:
            outcome = self._run_args(function, len(keys), *keys, *args)
        else:  # beyond what Lua's stack takes as arguments
            table_from = self._table_from
            outcome = self._run(function, table_from(keys), table_from(args))
        if type(outcome) is bytes:
            return self._to_reply(outcome)
        _, message, source, line = outcome
        if message is None:
            # Redis 7.0 crashes on such an error object (error({})); say what happened.
            text = "ERR the script raised an error object without a message"
        else:
            text = message.decode("utf-8", errors="replace")
        if source is not None and line is not None:
            where = source.decode("utf-8", errors="replace")
            text += f" script: {sha}, on {where}:{_integer(line)}."
        raise CommandError(_flat(text))

    def _compile_source(self, source: bytes) -> tuple[Any, str]:
        compiled = self._compile(source)
        if isinstance(compiled, tuple):
            function, error = compiled
            return function, error.decode("utf-8", errors="replace") if error else ""
        return compiled, ""

    # -- what the sandbox calls --------------------------------------------------------------

    @staticmethod
    def _sha1hex(text: bytes) -> bytes:
        return hashlib.sha1(text).hexdigest().encode()

    def _lrand48(self) -> int:
        self._rand = (_A48 * self._rand + _C48) & _MASK48
        return self._rand >> 17

    def _srand48(self, seed: float) -> None:
        low32 = _integer(seed) & 0xFFFFFFFF
        self._rand = (low32 << 16) | 0x330E

    def _raising_call(self, *command: Any) -> Any:
        """``redis.call``: run one command; an error reply is raised in the script."""
        reply = self._command(command)
        if type(reply) is _ErrorReply:
            raise reply
        return reply

    def _protected_call(self, *command: Any) -> Any:
        """``redis.pcall``: run one command; an error reply is returned as ``{err=...}``."""
        reply = self._command(command)
        if type(reply) is _ErrorReply:
            return self._runtime.table_from({b"err": reply.err})
        return reply

    def _command(self, command: tuple[Any, ...]) -> Any:
        try:
            # Scripts pass strings (bytes) mostly; the comprehension keeps them as they are.
            args = [value if type(value) is bytes else _argument(value) for value in command]
            if not args:
                raise CommandError(
                    "ERR Please specify at least one argument for this redis lib call"
                )
            reply = self._call(args)
        except CommandError as exc:
            return _ErrorReply(error_text(exc.message).encode())
        kind = type(reply)
        if kind is bytes:
            if self._is_status(args):
                return self._table_from({b"ok": reply})
            return reply
        if kind is list:
            return self._to_lua(reply)
        return False if reply is None else reply

    def _is_status(self, args: list[bytes]) -> bool:
        status = self._status.get(args[0])
        if status is not None:
            return status
        name = args[0].upper()
        if name == b"SET":  # not cached: it depends on the arguments
            return not any(a.upper() == b"GET" for a in args[3:])
        if name == b"PING":
            return len(args) == 1
        status = name in _STATUS
        if len(self._status) < _STATUS_SPELLINGS:  # scripts choose spellings: bounded
            self._status[args[0]] = status
        return status

    def _to_lua(self, reply: Reply) -> Any:
        if type(reply) is list:
            to_lua = self._to_lua
            return self._table_from(
                [item if type(item) is bytes else to_lua(item) for item in reply]
            )
        return False if reply is None else reply

    def _to_reply(self, payload: bytes) -> Reply:
        """The script's reply, which Lua converted and serialized (see ``encode``)."""
        return _decode_reply(payload)  # type: ignore[no-any-return]
