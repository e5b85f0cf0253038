"""The memory domain's scripts: each Lua source sits next to its Python twin.

Conventions shared by every script here:

* ``KEYS[1]`` is the main key of the call; it routes the script on a cluster. Other keys are
  built inside the script from prefixes the caller takes from :mod:`kvstore.keys` (every
  key of a namespace shares one hash slot, so they are legal on a cluster too).
* Internal hash fields start with ``_``: ``_rid`` (a thread's resource id), ``_tid`` and
  ``_member`` (a message's thread and its member in the thread's sorted set).
* A message's member is its 16-hex-digit insertion number followed by its id, so that
  messages with equal timestamps sort in insertion order (sorted sets break score ties by
  member). ``string.sub(member, 17)`` recovers the id.
"""

from __future__ import annotations

from kvstore.domains._base import WINDOW_LUA, window
from kvstore.drivers.base import Reply, Script, ScriptCall

__all__ = [
    "DELETE_MESSAGES",
    "DELETE_THREAD",
    "LIST_MESSAGES",
    "POP_MESSAGE",
    "SAVE_MESSAGES",
    "UPDATE_MESSAGES",
    "UPDATE_RESOURCE",
    "UPDATE_THREAD",
    "WRITE_THREADS",
]

# The Lua sources spell these out: '%016x', string.sub(member, 17), chunks of 1000.
SEQ_DIGITS = 16
# DEL gets at most this many keys at a time: Lua's unpack() has a stack limit near 8000.
_DEL_CHUNK = 1000


def _int(value: bytes) -> int:
    return int(value)


# -- threads --------------------------------------------------------------------------------

# Writes one thread of WRITE_THREADS and its index entries. The record's fields are
# ARGV[first..last].
_WRITE_THREAD_LUA = """
local function write_thread(key, tid, rid, created, updated, by_created, by_updated, all,
                            first, last)
  local old = redis.call('HGET', key, '_rid')
  if old and old ~= rid then
    redis.call('ZREM', by_created .. old, tid)
    redis.call('ZREM', by_updated .. old, tid)
  end
  redis.call('DEL', key)
  redis.call('HSET', key, '_rid', rid, unpack(ARGV, first, last))
  redis.call('ZADD', by_created .. rid, created, tid)
  redis.call('ZADD', by_updated .. rid, updated, tid)
  redis.call('ZADD', all, created, tid)
end
"""


def _write_thread(
    call: ScriptCall,
    key: bytes,
    thread: list[bytes],
    indexes: list[bytes],
    fields: list[bytes],
) -> None:
    """Twin of ``write_thread``: ``thread`` is (id, resource id, created, updated score),
    ``indexes`` the by-created and by-updated prefixes and the all-threads key."""
    tid, rid, created, updated = thread
    by_created, by_updated, all_threads = indexes
    old = call("HGET", key, b"_rid")
    if old is not None and old != rid:
        call("ZREM", by_created + old, tid)
        call("ZREM", by_updated + old, tid)
    call("DEL", key)
    call("HSET", key, b"_rid", rid, *fields)
    call("ZADD", by_created + rid, created, tid)
    call("ZADD", by_updated + rid, updated, tid)
    call("ZADD", all_threads, created, tid)


_WRITE_THREADS = (
    _WRITE_THREAD_LUA
    + """
-- KEYS[1] the first thread's key
-- ARGV: thread prefix, by-created prefix, by-updated prefix, all-threads key, thread
--       count, then per thread: id, resource id, created score, updated score, field
--       count, fields...
-- Creates or replaces each thread, moving it between resources' indexes. Returns the
-- number of threads written.
local count = tonumber(ARGV[5])
local pos = 6
for _ = 1, count do
  local nfields = tonumber(ARGV[pos + 4])
  write_thread(ARGV[1] .. ARGV[pos], ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3],
    ARGV[2], ARGV[3], ARGV[4], pos + 5, pos + 4 + nfields)
  pos = pos + 5 + nfields
end
return count
"""
)


def _write_threads(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    del keys
    prefix, count = args[0], _int(args[4])
    pos = 5
    for _ in range(count):
        nfields = _int(args[pos + 4])
        fields = args[pos + 5 : pos + 5 + nfields]
        _write_thread(call, prefix + args[pos], args[pos : pos + 4], args[1:4], fields)
        pos += 5 + nfields
    return count


WRITE_THREADS = Script("write_threads", _WRITE_THREADS, _write_threads)

_UPDATE_THREAD = """
-- KEYS[1] thread key
-- ARGV: thread id, updated score, by-updated prefix, then the fields to set
-- Returns the thread's fields after the update, or nil when there is no such thread.
local rid = redis.call('HGET', KEYS[1], '_rid')
if not rid then
  return false
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', ARGV[3] .. rid, ARGV[2], ARGV[1])
return redis.call('HGETALL', KEYS[1])
"""


def _update_thread(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    tid, updated, by_updated = args[:3]
    rid = call("HGET", keys[0], b"_rid")
    if rid is None:
        return None
    call("HSET", keys[0], *args[3:])
    call("ZADD", by_updated + rid, updated, tid)
    fields: list[Reply] = call("HGETALL", keys[0])
    return fields


UPDATE_THREAD = Script("update_thread", _UPDATE_THREAD, _update_thread)

_DELETE_THREAD = """
-- KEYS[1] thread key
-- ARGV: thread id, the thread's messages key, message prefix, by-created prefix,
--       by-updated prefix, all-threads key
-- Returns 1 if the thread existed, else 0.
local rid = redis.call('HGET', KEYS[1], '_rid')
if not rid then
  return 0
end
local members = redis.call('ZRANGE', ARGV[2], 0, -1)
for i = 1, #members, 1000 do
  local chunk = {}
  for j = i, math.min(i + 999, #members) do
    chunk[#chunk + 1] = ARGV[3] .. string.sub(members[j], 17)
  end
  redis.call('DEL', unpack(chunk))
end
redis.call('DEL', KEYS[1], ARGV[2])
redis.call('ZREM', ARGV[4] .. rid, ARGV[1])
redis.call('ZREM', ARGV[5] .. rid, ARGV[1])
redis.call('ZREM', ARGV[6], ARGV[1])
return 1
"""


def _delete_thread(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    tid, messages_key, message_prefix, by_created, by_updated, all_threads = args
    rid = call("HGET", keys[0], b"_rid")
    if rid is None:
        return 0
    members = call("ZRANGE", messages_key, 0, -1)
    for i in range(0, len(members), _DEL_CHUNK):
        chunk = members[i : i + _DEL_CHUNK]
        call("DEL", *(message_prefix + m[SEQ_DIGITS:] for m in chunk))
    call("DEL", keys[0], messages_key)
    call("ZREM", by_created + rid, tid)
    call("ZREM", by_updated + rid, tid)
    call("ZREM", all_threads, tid)
    return 1


DELETE_THREAD = Script("delete_thread", _DELETE_THREAD, _delete_thread)

# -- messages -------------------------------------------------------------------------------

# Shared head of the scripts that change messages: bumping a thread's update time.
_TOUCH_THREADS_LUA = """
local function touch(touched, thread_prefix, by_updated, now_score, now_field)
  for tid, _ in pairs(touched) do
    local rid = redis.call('HGET', thread_prefix .. tid, '_rid')
    if rid then
      redis.call('HSET', thread_prefix .. tid, 'updated_at', now_field)
      redis.call('ZADD', by_updated .. rid, now_score, tid)
    end
  end
end
"""


def _touch_threads(
    call: ScriptCall,
    *,
    touched: dict[bytes, None],
    thread_prefix: bytes,
    by_updated: bytes,
    now_score: bytes,
    now_field: bytes,
) -> None:
    # dict, not set: Lua's pairs() order differs anyway, and no reply depends on the order.
    for tid in touched:
        rid = call("HGET", thread_prefix + tid, b"_rid")
        if rid is not None:
            call("HSET", thread_prefix + tid, b"updated_at", now_field)
            call("ZADD", by_updated + rid, now_score, tid)


_SAVE_MESSAGES = (
    _TOUCH_THREADS_LUA
    + """
-- KEYS[1] the insertion counter
-- ARGV: message prefix, thread prefix, thread-messages prefix, by-updated prefix,
--       now score ('' leaves the threads' updated_at alone, for a restore), now as a
--       stored updated_at value, message count, then per message: id, thread id, created
--       score, field count, fields...
-- Returns {1} on success, or {0, thread id} when a thread does not exist (nothing written).
local mp, tp, tmp, up = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local count = tonumber(ARGV[7])
local pos = 8
local messages = {}
for i = 1, count do
  local nfields = tonumber(ARGV[pos + 3])
  messages[i] = {ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], pos + 4, pos + 3 + nfields}
  pos = pos + 4 + nfields
end
for _, m in ipairs(messages) do
  if redis.call('EXISTS', tp .. m[2]) == 0 then
    return {0, m[2]}
  end
end
local touched = {}
for _, m in ipairs(messages) do
  local id, tid = m[1], m[2]
  local key = mp .. id
  local old = redis.call('HMGET', key, '_tid', '_member')
  local member = old[2]
  if member then
    if old[1] ~= tid then
      redis.call('ZREM', tmp .. old[1], member)
      touched[old[1]] = true
    end
    redis.call('DEL', key)
  else
    member = string.format('%016x', redis.call('INCR', KEYS[1])) .. id
  end
  redis.call('HSET', key, '_tid', tid, '_member', member, unpack(ARGV, m[4], m[5]))
  redis.call('ZADD', tmp .. tid, m[3], member)
  touched[tid] = true
end
if ARGV[5] ~= '' then
  touch(touched, tp, up, ARGV[5], ARGV[6])
end
return {1}
"""
)


def _save_messages(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    mp, tp, tmp, up, now_score, now_field, count = args[:7]
    messages = []
    pos = 7
    for _ in range(_int(count)):
        nfields = _int(args[pos + 3])
        messages.append(
            (args[pos], args[pos + 1], args[pos + 2], args[pos + 4 : pos + 4 + nfields])
        )
        pos += 4 + nfields
    for _, tid, _, _ in messages:
        if call("EXISTS", tp + tid) == 0:
            return [0, tid]
    touched: dict[bytes, None] = {}
    for id_, tid, created, fields in messages:
        key = mp + id_
        old_tid, member = call("HMGET", key, b"_tid", b"_member")
        if member is not None:
            if old_tid != tid:
                call("ZREM", tmp + old_tid, member)
                touched[old_tid] = None
            call("DEL", key)
        else:
            seq = call("INCR", keys[0])
            member = b"%0*x" % (SEQ_DIGITS, seq) + id_
        call("HSET", key, b"_tid", tid, b"_member", member, *fields)
        call("ZADD", tmp + tid, created, member)
        touched[tid] = None
    if now_score != b"":
        _touch_threads(
            call,
            touched=touched,
            thread_prefix=tp,
            by_updated=up,
            now_score=now_score,
            now_field=now_field,
        )
    return [1]


SAVE_MESSAGES = Script("save_messages", _SAVE_MESSAGES, _save_messages)

_LIST_MESSAGES = (
    WINDOW_LUA
    + """
-- KEYS[1] the thread's messages key
-- ARGV: message prefix, thread-messages prefix, min score, max score, score bound just
--       below min ('' when min is -inf), mode ('last' or 'page'), offset, count,
--       include count, then per include: message id, before, after
-- Returns {total, member, fields, member, fields, ...}: the page first, then the included
-- messages not already on it.
local mp, tmp = ARGV[1], ARGV[2]
local first, total = window(KEYS[1], ARGV[3], ARGV[4], ARGV[5])
local last = first + total - 1
local count = tonumber(ARGV[8])
local start, stop
if ARGV[6] == 'last' then
  stop = last
  start = math.max(first, last - count + 1)
else
  start = first + tonumber(ARGV[7])
  stop = math.min(start + count - 1, last)
end
local out = {total}
local seen = {}
local function add(tkey, from, to)
  if from > to then
    return
  end
  for _, member in ipairs(redis.call('ZRANGE', tkey, from, to)) do
    if not seen[member] then
      seen[member] = true
      out[#out + 1] = member
      out[#out + 1] = redis.call('HGETALL', mp .. string.sub(member, 17))
    end
  end
end
add(KEYS[1], start, stop)
local pos = 10
for _ = 1, tonumber(ARGV[9]) do
  local where = redis.call('HMGET', mp .. ARGV[pos], '_tid', '_member')
  if where[2] then
    local tkey = tmp .. where[1]
    local rank = redis.call('ZRANK', tkey, where[2])
    if rank then
      add(tkey, math.max(0, rank - tonumber(ARGV[pos + 1])), rank + tonumber(ARGV[pos + 2]))
    end
  end
  pos = pos + 3
end
return out
"""
)


def _list_messages(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    mp, tmp, lo, hi, below, mode, offset, count_arg, n_includes = args[:9]
    first, total = window(call, keys[0], lo, hi, below)
    last = first + total - 1
    count = _int(count_arg)
    if mode == b"last":
        stop = last
        start = max(first, last - count + 1)
    else:
        start = first + _int(offset)
        stop = min(start + count - 1, last)
    out: list[Reply] = [total]
    seen: set[bytes] = set()

    def add(tkey: bytes, from_: int, to: int) -> None:
        if from_ > to:
            return
        for member in call("ZRANGE", tkey, from_, to):
            if member not in seen:
                seen.add(member)
                out.extend((member, call("HGETALL", mp + member[SEQ_DIGITS:])))

    add(keys[0], start, stop)
    pos = 9
    for _ in range(_int(n_includes)):
        tid, member = call("HMGET", mp + args[pos], b"_tid", b"_member")
        if member is not None:
            tkey = tmp + tid
            rank = call("ZRANK", tkey, member)
            if rank is not None:
                add(tkey, max(0, rank - _int(args[pos + 1])), rank + _int(args[pos + 2]))
        pos += 3
    return out


LIST_MESSAGES = Script("list_messages", _LIST_MESSAGES, _list_messages)

_UPDATE_MESSAGES = (
    _TOUCH_THREADS_LUA
    + """
-- KEYS[1] the first message's key
-- ARGV: message prefix, thread prefix, by-updated prefix, now score, now as a stored
--       updated_at value, patch count, then per patch: id, field count, fields...
-- Returns {0, id} when a message does not exist (nothing written), else {1, fields...}
-- with each updated message's fields.
local mp, tp, up = ARGV[1], ARGV[2], ARGV[3]
local patches = {}
local pos = 7
for i = 1, tonumber(ARGV[6]) do
  local nfields = tonumber(ARGV[pos + 1])
  patches[i] = {ARGV[pos], pos + 2, pos + 1 + nfields}
  pos = pos + 2 + nfields
end
for _, p in ipairs(patches) do
  if redis.call('EXISTS', mp .. p[1]) == 0 then
    return {0, p[1]}
  end
end
local touched = {}
for _, p in ipairs(patches) do
  if p[3] >= p[2] then
    redis.call('HSET', mp .. p[1], unpack(ARGV, p[2], p[3]))
  end
  touched[redis.call('HGET', mp .. p[1], '_tid')] = true
end
touch(touched, tp, up, ARGV[4], ARGV[5])
local out = {1}
for i, p in ipairs(patches) do
  out[i + 1] = redis.call('HGETALL', mp .. p[1])
end
return out
"""
)


def _update_messages(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    del keys
    mp, tp, up, now_score, now_field, count = args[:6]
    patches = []
    pos = 6
    for _ in range(_int(count)):
        nfields = _int(args[pos + 1])
        patches.append((args[pos], args[pos + 2 : pos + 2 + nfields]))
        pos += 2 + nfields
    for id_, _ in patches:
        if call("EXISTS", mp + id_) == 0:
            return [0, id_]
    touched: dict[bytes, None] = {}
    for id_, fields in patches:
        if fields:
            call("HSET", mp + id_, *fields)
        tid = call("HGET", mp + id_, b"_tid")
        touched[tid] = None
    _touch_threads(
        call,
        touched=touched,
        thread_prefix=tp,
        by_updated=up,
        now_score=now_score,
        now_field=now_field,
    )
    return [1, *(call("HGETALL", mp + id_) for id_, _ in patches)]


UPDATE_MESSAGES = Script("update_messages", _UPDATE_MESSAGES, _update_messages)

_DELETE_MESSAGES = (
    _TOUCH_THREADS_LUA
    + """
-- KEYS[1] the first message's key
-- ARGV: message prefix, thread prefix, thread-messages prefix, by-updated prefix,
--       now score, now as a stored updated_at value, then the ids
-- Returns how many messages existed and were deleted.
local mp, tp, tmp, up = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local deleted = 0
local touched = {}
for i = 7, #ARGV do
  local where = redis.call('HMGET', mp .. ARGV[i], '_tid', '_member')
  if where[2] then
    redis.call('ZREM', tmp .. where[1], where[2])
    redis.call('DEL', mp .. ARGV[i])
    touched[where[1]] = true
    deleted = deleted + 1
  end
end
touch(touched, tp, up, ARGV[5], ARGV[6])
return deleted
"""
)


def _delete_messages(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    del keys
    mp, tp, tmp, up, now_score, now_field = args[:6]
    deleted = 0
    touched: dict[bytes, None] = {}
    for id_ in args[6:]:
        tid, member = call("HMGET", mp + id_, b"_tid", b"_member")
        if member is not None:
            call("ZREM", tmp + tid, member)
            call("DEL", mp + id_)
            touched[tid] = None
            deleted += 1
    _touch_threads(
        call,
        touched=touched,
        thread_prefix=tp,
        by_updated=up,
        now_score=now_score,
        now_field=now_field,
    )
    return deleted


DELETE_MESSAGES = Script("delete_messages", _DELETE_MESSAGES, _delete_messages)

# TEMP (issue 11): the atomic pop behind the openai-agents session's pop_item. The lead
# re-implements it on key layout v2; its contract is tested in
# tests/conformance/memory_pop_suite.py through the public API only.

# How many members without a record (there are none on this layout) a pop skips, at most.
_POP_SKIP_LIMIT = 16

_POP_MESSAGE = (
    _TOUCH_THREADS_LUA
    + """
-- KEYS[1] the thread's messages key
-- ARGV: message prefix, thread prefix, by-updated prefix, thread id, now score, now as a
--       stored updated_at value
-- Removes the thread's newest message (the last member of its sorted set) and returns
-- {member, fields}, or nil when the thread has no message.
for _ = 1, 16 do
  local members = redis.call('ZRANGE', KEYS[1], -1, -1)
  local member = members[1]
  if not member then
    return false
  end
  local key = ARGV[1] .. string.sub(member, 17)
  local fields = redis.call('HGETALL', key)
  redis.call('ZREM', KEYS[1], member)
  if #fields > 0 then
    redis.call('DEL', key)
    touch({[ARGV[4]] = true}, ARGV[2], ARGV[3], ARGV[5], ARGV[6])
    return {member, fields}
  end
end
return false
"""
)


def _pop_message(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    mp, tp, up, tid, now_score, now_field = args
    for _ in range(_POP_SKIP_LIMIT):
        members = call("ZRANGE", keys[0], -1, -1)
        if not members:
            return None
        member = members[0]
        key = mp + member[SEQ_DIGITS:]
        fields = call("HGETALL", key)
        call("ZREM", keys[0], member)
        if fields:
            call("DEL", key)
            _touch_threads(
                call,
                touched={tid: None},
                thread_prefix=tp,
                by_updated=up,
                now_score=now_score,
                now_field=now_field,
            )
            return [member, fields]
    return None


POP_MESSAGE = Script("pop_message", _POP_MESSAGE, _pop_message)

# -- resources ------------------------------------------------------------------------------

_UPDATE_RESOURCE = """
-- KEYS[1] resource key
-- ARGV: resource id, now score, all-resources key, count of fields that a new resource
--       starts with, those fields, then the fields to set
-- Returns the resource's fields after the update.
local ncreate = tonumber(ARGV[4])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 5, 4 + ncreate))
  redis.call('ZADD', ARGV[3], ARGV[2], ARGV[1])
end
if #ARGV > 4 + ncreate then
  redis.call('HSET', KEYS[1], unpack(ARGV, 5 + ncreate))
end
return redis.call('HGETALL', KEYS[1])
"""


def _update_resource(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    rid, now_score, all_resources, ncreate_arg = args[:4]
    ncreate = _int(ncreate_arg)
    if call("EXISTS", keys[0]) == 0:
        call("HSET", keys[0], *args[4 : 4 + ncreate])
        call("ZADD", all_resources, now_score, rid)
    if len(args) > 4 + ncreate:
        call("HSET", keys[0], *args[4 + ncreate :])
    fields: list[Reply] = call("HGETALL", keys[0])
    return fields


UPDATE_RESOURCE = Script("update_resource", _UPDATE_RESOURCE, _update_resource)
