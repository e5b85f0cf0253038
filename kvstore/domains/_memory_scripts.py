"""The memory domain's scripts (layout 2). Each touches the keys of one bucket only.

Conventions (see :mod:`kvstore.domains.memory` for the key schema):

* ``T``, ``R``, ``M`` are a thread, resource and message id escaped for lex members
  (:func:`kvstore.keys.lex_escape`); they name records in their bucket's hashes.
* A thread record is a packed field list (:mod:`kvstore.domains._lua`) whose internal fields
  are ``_r`` (its resource, escaped), ``_c`` and ``_u`` (creation and last-update sort keys)
  and ``_q`` (the last message sequence number given out in the thread).
* A message is a member of its thread's sorted set, scored by its creation time:
  ``<12 hex digits: sequence><M>\\0<packed record>``. The sequence orders messages of equal
  timestamps by when they were first saved; a message saved again keeps its sequence.
* The bucket's pointers hash maps ``M`` to ``<T>\\0<score>`` for every message of the
  bucket's threads: how a message is found by its id.
"""

from __future__ import annotations

from kvstore.domains._lua import script

__all__ = [
    "DELETE_MESSAGES",
    "DELETE_THREAD",
    "NEIGHBOURS",
    "PATCH_MESSAGES",
    "SAVE_MESSAGES",
    "UPDATE_RESOURCE",
    "UPDATE_THREAD",
    "WRITE_RESOURCES",
    "WRITE_THREADS",
]

#: Hex digits of a message's sequence number at the start of its member.
SEQ_DIGITS = 12
#: Messages a script deletes at most in one call (a larger thread is deleted in slices).
DELETE_SLICE = 1000


# Thread index entries: by resource (c: created, u: updated) and across the namespace
# (C, U). Keeping the four in one helper keeps writers and deleters in step.
_THREAD_LUA = r"""
local function thread_entries(r, c, u, t)
  return {'c\0' .. r .. '\0' .. c .. '\0' .. t, 'u\0' .. r .. '\0' .. u .. '\0' .. t,
          'C\0' .. c .. '\0' .. t, 'U\0' .. u .. '\0' .. t}
end

local function reindex(index, old, new)
  if old then
    redis.call('ZREM', index, unpack(old))
  end
  local args = {}
  for _, member in ipairs(new) do
    args[#args + 1] = 0
    args[#args + 1] = member
  end
  redis.call('ZADD', index, unpack(args))
end

-- Bumps a thread's update time: its record (updated_at and _u) and its u/U entries.
local function touch(threads, index, t, packed, u, updated_at)
  local _, values = fields_of(packed)
  if values['_u'] == u then
    return packed
  end
  local old = thread_entries(values['_r'], values['_c'], values['_u'], t)
  packed = set_fields(packed, {'updated_at', updated_at, '_u', u}, 1, 4)
  redis.call('ZREM', index, old[2], old[4])
  redis.call('ZADD', index, 0, 'u\0' .. values['_r'] .. '\0' .. u .. '\0' .. t,
    0, 'U\0' .. u .. '\0' .. t)
  return packed
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
"""

WRITE_THREADS = script(
    "write_threads",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's threads hash, its thread index
-- ARGV: count, then per thread: T, R, created key, updated key, packed record
-- Creates or replaces each thread; a thread saved again keeps its message sequence.
local pos = 2
for _ = 1, tonumber(ARGV[1]) do
  local t, r, c, u, packed = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4]
  pos = pos + 5
  local old = redis.call('HGET', KEYS[1], t)
  local old_entries = nil
  if old then
    local _, values = fields_of(old)
    old_entries = thread_entries(values['_r'], values['_c'], values['_u'], t)
    if values['_q'] then
      packed = set_fields(packed, {'_q', values['_q']}, 1, 2)
    end
  end
  redis.call('HSET', KEYS[1], t, packed)
  reindex(KEYS[2], old_entries, thread_entries(r, c, u, t))
end
return 1
""",
)

UPDATE_THREAD = script(
    "update_thread",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's threads hash, its thread index
-- ARGV: T, updated key, the stored updated_at value, then the fields to set (name, value...)
-- Returns the thread's packed record after the update, or false if there is no thread.
local packed = redis.call('HGET', KEYS[1], ARGV[1])
if not packed then
  return false
end
packed = touch(KEYS[1], KEYS[2], ARGV[1], set_fields(packed, ARGV, 4, #ARGV), ARGV[2], ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], packed)
return packed
""",
)

DELETE_THREAD = script(
    "delete_thread",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's threads hash, its thread index, its pointers hash, the thread's messages
-- ARGV: T, '1' to delete the thread record (the first slice) or '0' (a later slice)
-- Deletes the record, then up to 1000 of the thread's messages and their pointers.
-- Returns {existed (1/0), messages left}.
local existed = 1
if ARGV[2] == '1' then
  local packed = redis.call('HGET', KEYS[1], ARGV[1])
  if not packed then
    existed = 0
  else
    local _, values = fields_of(packed)
    redis.call('ZREM', KEYS[2], unpack(thread_entries(values['_r'], values['_c'], values['_u'],
      ARGV[1])))
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
end
local members = redis.call('ZRANGE', KEYS[4], 0, 999)
if #members > 0 then
  local ids = {}
  for i, member in ipairs(members) do
    ids[i] = string.sub(member, 13, string.find(member, '\0', 13, true) - 1)
  end
  local pointers = redis.call('HMGET', KEYS[3], unpack(ids))
  local stale = {}
  for i, id in ipairs(ids) do
    if pointers[i] and split_pointer(pointers[i]) == ARGV[1] then
      stale[#stale + 1] = id
    end
  end
  if #stale > 0 then
    redis.call('HDEL', KEYS[3], unpack(stale))
  end
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, #members - 1)
end
return {existed, redis.call('ZCARD', KEYS[4])}
""",
)

SAVE_MESSAGES = script(
    "save_messages",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's threads hash, its thread index, its pointers hash, then the messages
--       key of each thread, in the order of ARGV
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
  threads[i] = {t, pos + 2, n, KEYS[3 + i]}
  pos = pos + 2 + 3 * n
end
local records = {}
for i, thread in ipairs(threads) do
  records[i] = redis.call('HGET', KEYS[1], thread[1])
  if not records[i] then
    return {0, thread[1]}
  end
end
local out = {1}
for i, thread in ipairs(threads) do
  local t, first, n, messages = thread[1], thread[2], thread[3], thread[4]
  local ids = {}
  for j = 1, n do
    ids[j] = ARGV[first + 3 * (j - 1)]
  end
  local pointers = redis.call('HMGET', KEYS[3], unpack(ids))
  local _, values = fields_of(records[i])
  local seq = tonumber(values['_q'] or '0')
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
  local record = set_fields(records[i], {'_q', tostring(seq)}, 1, 2)
  if u ~= '' then
    record = touch(KEYS[1], KEYS[2], t, record, u, updated_at)
  end
  redis.call('HSET', KEYS[1], t, record)
end
return out
""",
)

PATCH_MESSAGES = script(
    "patch_messages",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's threads hash, its thread index, its pointers hash, then the messages
--       key of each thread, in the order of ARGV
-- ARGV: updated key, the stored updated_at value, thread count, then per thread: T, patch
--       count, then per patch: M, score, field count, fields (name, value, ...)
-- Returns {0, M} when a message is not where its pointer said (nothing written), else
-- {1, member, member, ...} with each patched message's new member, in order.
local u, updated_at = ARGV[1], ARGV[2]
local plan = {}
local pos = 4
for i = 1, tonumber(ARGV[3]) do
  local t, n = ARGV[pos], tonumber(ARGV[pos + 1])
  pos = pos + 2
  local messages = KEYS[3 + i]
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
for t, _ in pairs(touched) do
  local record = redis.call('HGET', KEYS[1], t)
  if record then
    redis.call('HSET', KEYS[1], t, touch(KEYS[1], KEYS[2], t, record, u, updated_at))
  end
end
return out
""",
)

DELETE_MESSAGES = script(
    "delete_messages",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's threads hash, its thread index, its pointers hash, then the messages
--       key of each thread, in the order of ARGV
-- ARGV: updated key, the stored updated_at value, thread count, then per thread: T, id
--       count, then per id: M, score
-- Returns how many of the messages were found and deleted.
local u, updated_at = ARGV[1], ARGV[2]
local deleted = 0
local pos = 4
for i = 1, tonumber(ARGV[3]) do
  local t, n = ARGV[pos], tonumber(ARGV[pos + 1])
  pos = pos + 2
  local messages = KEYS[3 + i]
  local found = 0
  for _ = 1, n do
    local m, score = ARGV[pos], ARGV[pos + 1]
    pos = pos + 2
    local member = find_member(messages, m, score)
    if member then
      redis.call('ZREM', messages, member)
      found = found + 1
    end
    local pointer = redis.call('HGET', KEYS[3], m)
    if pointer and pointer == t .. '\0' .. score then
      redis.call('HDEL', KEYS[3], m)
    end
  end
  if found > 0 then
    deleted = deleted + found
    local record = redis.call('HGET', KEYS[1], t)
    if record then
      redis.call('HSET', KEYS[1], t, touch(KEYS[1], KEYS[2], t, record, u, updated_at))
    end
  end
end
return deleted
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

# Resource index entries: by creation (C) and last update (U) across the namespace.
_RESOURCE_LUA = r"""
local function resource_entries(c, u, r)
  return {'C\0' .. c .. '\0' .. r, 'U\0' .. u .. '\0' .. r}
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
