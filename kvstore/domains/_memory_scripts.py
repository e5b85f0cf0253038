"""The memory domain's scripts (layout 2). Each touches the keys of one bucket only.

Conventions (see :mod:`kvstore.domains.memory` for the key schema):

* ``T``, ``R``, ``M`` are a thread, resource and message id escaped for lex members
  (:func:`kvstore.keys.lex_escape`); they name records in their bucket's hashes.
* A thread is two values: its record (a packed field list, see :mod:`kvstore.domains._lua`:
  the document and the attributes ``update_thread`` set), which changes rarely, and its
  *activity*, which every message write changes and scripts read without parsing:
  ``<12 hex: last message sequence><created sort key><updated sort key><R>\0<stored
  updated_at>``. A thread exists if and only if it has an activity.
* A message is a member of its thread's sorted set, scored by its creation time:
  ``<12 hex digits: sequence><M>\0<packed record>``. The sequence orders messages of equal
  timestamps by when they were first saved; a message saved again keeps its sequence.
* The bucket's pointers hash maps ``M`` to ``<T>\0<score>`` for every message of the
  bucket's threads: how a message is found by its id.
"""

from __future__ import annotations

from kvstore.domains._lua import script

__all__ = [
    "DELETE_MESSAGES",
    "DELETE_THREAD",
    "NEIGHBOURS",
    "PATCH_MESSAGES",
    "POP_MESSAGE",
    "SAVE_MESSAGES",
    "UPDATE_RESOURCE",
    "UPDATE_THREAD",
    "WRITE_RESOURCES",
    "WRITE_THREADS",
]

#: Hex digits of a message's sequence number at the start of its member.
SEQ_DIGITS = 12
#: Messages a script deletes at most in one call (a larger thread is deleted in slices):
#: about a millisecond of Redis's time each.
DELETE_SLICE = 250

_THREAD_LUA = r"""
local function activity_of(value)
  local nul = string.find(value, '\0', 45, true)
  return tonumber(string.sub(value, 1, 12), 16), string.sub(value, 13, 28),
    string.sub(value, 29, 44), string.sub(value, 45, nul - 1), string.sub(value, nul + 1)
end

local function activity(seq, c, u, r, updated_at)
  return string.format('%012x', seq) .. c .. u .. r .. '\0' .. updated_at
end

-- A thread's index entries: by resource (c: created, u: updated) and across the
-- namespace (C, U).
local function thread_entries(r, c, u, t)
  return {'c\0' .. r .. '\0' .. c .. '\0' .. t, 'u\0' .. r .. '\0' .. u .. '\0' .. t,
          'C\0' .. c .. '\0' .. t, 'U\0' .. u .. '\0' .. t}
end

local function add_entries(index, entries)
  local args = {}
  for _, member in ipairs(entries) do
    args[#args + 1] = 0
    args[#args + 1] = member
  end
  redis.call('ZADD', index, unpack(args))
end

-- A thread's activity after a write at the update key u: its u and U entries move.
local function touch(index, t, value, seq, u, updated_at)
  local _, c, old_u, r = activity_of(value)
  if u ~= old_u then
    redis.call('ZREM', index, 'u\0' .. r .. '\0' .. old_u .. '\0' .. t, 'U\0' .. old_u .. '\0' .. t)
    redis.call('ZADD', index, 0, 'u\0' .. r .. '\0' .. u .. '\0' .. t, 0, 'U\0' .. u .. '\0' .. t)
  end
  return activity(seq, c, u, r, updated_at)
end

local function seq_of(member)
  return tonumber(string.sub(member, 1, 12), 16)
end

-- The member of message m in a thread's sorted set, found from its score.
local function find_member(messages, m, score)
  local prefix_len = 13 + #m
  for _, member in ipairs(redis.call('ZRANGE', messages, score, score, 'BYSCORE')) do
    if string.sub(member, 13, prefix_len) == m .. '\0' then
      return member
    end
  end
  return nil
end

local function split_pointer(pointer)
  local nul = string.find(pointer, '\0', 1, true)
  return string.sub(pointer, 1, nul - 1), string.sub(pointer, nul + 1)
end

-- Bumps the threads a write touched (a table of T -> true) to the update key u.
local function touch_all(activities, index, touched, u, updated_at)
  if u == '' then
    return
  end
  for t, _ in pairs(touched) do
    local value = redis.call('HGET', activities, t)
    if value then
      local seq = activity_of(value)
      redis.call('HSET', activities, t, touch(index, t, value, seq, u, updated_at))
    end
  end
end
"""

WRITE_THREADS = script(
    "write_threads",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's threads hash, its activities hash, its thread index
-- ARGV: count, then per thread: T, R, created key, updated key, stored updated_at, record
-- Creates or replaces each thread; a thread saved again keeps its message sequence.
local pos = 2
for _ = 1, tonumber(ARGV[1]) do
  local t, r, c, u, updated_at, record = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2],
    ARGV[pos + 3], ARGV[pos + 4], ARGV[pos + 5]
  pos = pos + 6
  local seq = 0
  local old = redis.call('HGET', KEYS[2], t)
  if old then
    local old_seq, old_c, old_u, old_r = activity_of(old)
    seq = old_seq
    redis.call('ZREM', KEYS[3], unpack(thread_entries(old_r, old_c, old_u, t)))
  end
  redis.call('HSET', KEYS[1], t, record)
  redis.call('HSET', KEYS[2], t, activity(seq, c, u, r, updated_at))
  add_entries(KEYS[3], thread_entries(r, c, u, t))
end
return 1
""",
)

UPDATE_THREAD = script(
    "update_thread",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's threads hash, its activities hash, its thread index
-- ARGV: T, updated key, stored updated_at, then the record fields to set (name, value...)
-- Returns {record, activity} after the update, or false if there is no thread.
local t = ARGV[1]
local value = redis.call('HGET', KEYS[2], t)
if not value then
  return false
end
local record = redis.call('HGET', KEYS[1], t)
if #ARGV > 3 then
  record = set_fields(record, ARGV, 4, #ARGV)
  redis.call('HSET', KEYS[1], t, record)
end
local seq = activity_of(value)
value = touch(KEYS[3], t, value, seq, ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], t, value)
return {record, value}
""",
)

DELETE_THREAD = script(
    "delete_thread",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's threads hash, its activities hash, its thread index, its pointers
--       hash, the thread's messages
-- ARGV: T, '1' to delete the thread itself (the first slice) or '0' (a later slice), the
--       slice size
-- Deletes the thread, then up to a slice of its messages and their pointers.
-- Returns {existed (1/0), messages left, M...} with the ids of the messages deleted.
local t = ARGV[1]
local existed = 1
if ARGV[2] == '1' then
  local value = redis.call('HGET', KEYS[2], t)
  if not value then
    existed = 0
  else
    local _, c, u, r = activity_of(value)
    redis.call('ZREM', KEYS[3], unpack(thread_entries(r, c, u, t)))
    redis.call('HDEL', KEYS[1], t)
    redis.call('HDEL', KEYS[2], t)
  end
end
local members = redis.call('ZRANGE', KEYS[5], 0, tonumber(ARGV[3]) - 1)
local ids = {}
if #members > 0 then
  for i, member in ipairs(members) do
    ids[i] = string.sub(member, 13, string.find(member, '\0', 13, true) - 1)
  end
  local pointers = redis.call('HMGET', KEYS[4], unpack(ids))
  local stale = {}
  for i, id in ipairs(ids) do
    if pointers[i] and split_pointer(pointers[i]) == t then
      stale[#stale + 1] = id
    end
  end
  if #stale > 0 then
    redis.call('HDEL', KEYS[4], unpack(stale))
  end
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, #members - 1)
end
return {existed, redis.call('ZCARD', KEYS[5]), unpack(ids)}
""",
)

SAVE_MESSAGES = script(
    "save_messages",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's activities hash, its thread index, its pointers hash, then the
--       messages key of each thread, in the order of ARGV
-- ARGV: updated key ('' leaves the threads' update time alone, for a restore), the stored
--       updated_at value, thread count, then per thread: T, message count, then per
--       message: M, score, packed record
-- Returns {0, T} when a thread does not exist (nothing written), else {1, moved...} where
-- moved lists M, old T, old score for each message that lived in another thread (which
-- the caller removes it from).
local u, updated_at = ARGV[1], ARGV[2]
local threads = {}
local pos = 4
for i = 1, tonumber(ARGV[3]) do
  local t, n = ARGV[pos], tonumber(ARGV[pos + 1])
  local value = redis.call('HGET', KEYS[1], t)
  if not value then
    return {0, t}
  end
  threads[i] = {t, pos + 2, n, KEYS[3 + i], value}
  pos = pos + 2 + 3 * n
end
local out = {1}
for _, thread in ipairs(threads) do
  local t, first, n, messages, value = thread[1], thread[2], thread[3], thread[4], thread[5]
  local ids = {}
  for j = 1, n do
    ids[j] = ARGV[first + 3 * (j - 1)]
  end
  local pointers = redis.call('HMGET', KEYS[3], unpack(ids))
  local seq = activity_of(value)
  local members, links = {}, {}
  for j = 1, n do
    local at = first + 3 * (j - 1)
    local m, score, packed = ARGV[at], ARGV[at + 1], ARGV[at + 2]
    local member_seq = nil
    if pointers[j] then
      local old_t, old_score = split_pointer(pointers[j])
      if old_t == t then
        local old = find_member(messages, m, old_score)
        if old then
          member_seq = seq_of(old)
          redis.call('ZREM', messages, old)
        end
      else
        out[#out + 1] = m
        out[#out + 1] = old_t
        out[#out + 1] = old_score
      end
    end
    if not member_seq then
      seq = seq + 1
      member_seq = seq
    end
    members[#members + 1] = score
    members[#members + 1] = string.format('%012x', member_seq) .. m .. '\0' .. packed
    links[#links + 1] = m
    links[#links + 1] = t .. '\0' .. score
  end
  redis.call('ZADD', messages, unpack(members))
  redis.call('HSET', KEYS[3], unpack(links))
  if u ~= '' then
    value = touch(KEYS[2], t, value, seq, u, updated_at)
  else
    local _, c, old_u, r, old_at = activity_of(value)
    value = activity(seq, c, old_u, r, old_at)
  end
  redis.call('HSET', KEYS[1], t, value)
end
return out
""",
)

PATCH_MESSAGES = script(
    "patch_messages",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's activities hash, its thread index, then the messages key of each
--       thread, in the order of ARGV
-- ARGV: updated key, the stored updated_at value, thread count, then per thread: T, patch
--       count, then per patch: M, score, field count, fields (name, value, ...)
-- Returns {0, M} when a message is not where its pointer said (nothing written), else
-- {1, member, member, ...} with each patched message's new member, in order.
local plan = {}
local pos = 4
for i = 1, tonumber(ARGV[3]) do
  local t, n = ARGV[pos], tonumber(ARGV[pos + 1])
  pos = pos + 2
  local messages = KEYS[2 + i]
  for _ = 1, n do
    local m, score, nfields = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2])
    local member = find_member(messages, m, score)
    if not member then
      return {0, m}
    end
    plan[#plan + 1] = {t, messages, member, score, pos + 3, pos + 2 + 2 * nfields}
    pos = pos + 3 + 2 * nfields
  end
end
local out = {1}
local touched = {}
for _, p in ipairs(plan) do
  local member = p[3]
  local cut = string.find(member, '\0', 13, true)
  local packed = set_fields(string.sub(member, cut + 1), ARGV, p[5], p[6])
  local new = string.sub(member, 1, cut) .. packed
  redis.call('ZREM', p[2], member)
  redis.call('ZADD', p[2], p[4], new)
  out[#out + 1] = new
  touched[p[1]] = true
end
touch_all(KEYS[1], KEYS[2], touched, ARGV[1], ARGV[2])
return out
""",
)

DELETE_MESSAGES = script(
    "delete_messages",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's activities hash, its thread index, its pointers hash, then the
--       messages key of each thread, in the order of ARGV
-- ARGV: updated key ('' leaves the threads alone), the stored updated_at value, thread
--       count, then per thread: T, id count, then per id: M, score
-- Returns how many of the messages were found and deleted.
local deleted = 0
local touched = {}
local pos = 4
for i = 1, tonumber(ARGV[3]) do
  local t, n = ARGV[pos], tonumber(ARGV[pos + 1])
  pos = pos + 2
  local messages = KEYS[3 + i]
  for _ = 1, n do
    local m, score = ARGV[pos], ARGV[pos + 1]
    pos = pos + 2
    local member = find_member(messages, m, score)
    if member then
      redis.call('ZREM', messages, member)
      deleted = deleted + 1
      touched[t] = true
    end
    local pointer = redis.call('HGET', KEYS[3], m)
    if pointer and pointer == t .. '\0' .. score then
      redis.call('HDEL', KEYS[3], m)
    end
  end
end
touch_all(KEYS[1], KEYS[2], touched, ARGV[1], ARGV[2])
return deleted
""",
)

POP_MESSAGE = script(
    "pop_message",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's activities hash, its thread index, its pointers hash, the thread's
--       messages
-- ARGV: T, updated key, the stored updated_at value
-- Removes the thread's newest message (the last in its order) and returns its member, or
-- false when the thread has none.
local t = ARGV[1]
local newest = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
if not newest[1] then
  return false
end
local member, score = newest[1], newest[2]
redis.call('ZREM', KEYS[4], member)
local m = string.sub(member, 13, string.find(member, '\0', 13, true) - 1)
local pointer = redis.call('HGET', KEYS[3], m)
if pointer and split_pointer(pointer) == t then
  redis.call('HDEL', KEYS[3], m)
end
touch_all(KEYS[1], KEYS[2], {[t] = true}, ARGV[2], ARGV[3])
return member
""",
)

NEIGHBOURS = script(
    "neighbours",
    _THREAD_LUA
    + r"""
-- KEYS: a thread's messages
-- ARGV: M, its score, how many messages before it, how many after it
-- Returns {member, score, member, score, ...}: the message and its neighbours, in order;
-- {} when the message is not there.
local member = find_member(KEYS[1], ARGV[1], ARGV[2])
if not member then
  return {}
end
local rank = redis.call('ZRANK', KEYS[1], member)
return redis.call('ZRANGE', KEYS[1], math.max(0, rank - tonumber(ARGV[3])),
  rank + tonumber(ARGV[4]), 'WITHSCORES')
""",
)

# Resource index entries: by creation (C), and by last update newest first (D: the update
# key of minus the time, so that equal times list by id).
_RESOURCE_LUA = r"""
local function resource_entries(c, d, r)
  return {'C\0' .. c .. '\0' .. r, 'D\0' .. d .. '\0' .. r}
end

local function write_resource(records, index, r, packed, c, u, old)
  if old then
    local _, values = fields_of(old)
    redis.call('ZREM', index, unpack(resource_entries(values['_c'], values['_u'], r)))
  end
  local entries = resource_entries(c, u, r)
  redis.call('ZADD', index, 0, entries[1], 0, entries[2])
  redis.call('HSET', records, r, packed)
end
"""

WRITE_RESOURCES = script(
    "write_resources",
    _RESOURCE_LUA
    + r"""
-- KEYS: the bucket's resources hash, its resource index
-- ARGV: count, then per resource: R, created key, updated key, packed record
local pos = 2
for _ = 1, tonumber(ARGV[1]) do
  local r = ARGV[pos]
  write_resource(KEYS[1], KEYS[2], r, ARGV[pos + 3], ARGV[pos + 1], ARGV[pos + 2],
    redis.call('HGET', KEYS[1], r))
  pos = pos + 4
end
return 1
""",
)

UPDATE_RESOURCE = script(
    "update_resource",
    _RESOURCE_LUA
    + r"""
-- KEYS: the bucket's resources hash, its resource index
-- ARGV: R, now key, the packed record of a new resource, then the fields to set
-- Returns the resource's packed record after the update (created when missing).
local r, u = ARGV[1], ARGV[2]
local old = redis.call('HGET', KEYS[1], r)
local packed = old or ARGV[3]
packed = set_fields(packed, ARGV, 4, #ARGV)
packed = set_fields(packed, {'_u', u}, 1, 2)
local _, values = fields_of(packed)
write_resource(KEYS[1], KEYS[2], r, packed, values['_c'], u, old)
return packed
""",
)
