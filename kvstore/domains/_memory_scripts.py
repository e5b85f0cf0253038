"""The memory domain's scripts (layout 2). Each touches the keys of one bucket only.

Conventions (see :mod:`kvstore.domains.memory` for the key schema):

* ``T``, ``R``, ``M`` are a thread, resource and message id escaped for lex members
  (:func:`kvstore.keys.lex_escape`); they name records in their bucket's hashes.
* A thread is two values: its record (a packed field list, see :mod:`kvstore.domains._lua`:
  the document and the attributes ``update_thread`` set), which changes rarely, and its
  *activity*, which every message write changes and scripts read without parsing:
  ``<12 hex: last message sequence><created sort key><updated sort key><R>\0<stored
  updated_at>``, with the thread's indexed metadata (``\1`` then ``K\2V\3`` per entry)
  and a ``\0`` before the stored ``updated_at`` when it has any. A thread exists if and
  only if it has an activity.
* A message is a member of its thread's sorted set, scored by its creation time:
  ``<12 hex digits: sequence><M>\0<packed record>``. The sequence orders messages of equal
  timestamps by when they were first saved; a message saved again keeps its sequence.
* The bucket's pointers hash maps ``M`` to ``<T>\0<score>`` for every message of the
  bucket's threads: how a message is found by its id.
"""

from __future__ import annotations

from kvstore.domains._lua import script

__all__ = [
    "CLONE_THREAD",
    "DELETE_MESSAGES",
    "DELETE_THREAD",
    "LIST_MATCHING",
    "MOVE_THREAD",
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
-- An activity may carry, between R and the stored updated_at, the thread's indexed
-- metadata: '\1' then 'K\2V\3' per entry (K, V: JSON, which holds no byte below 32).
-- A thread without any has the activity it had before metadata was indexed.
local function activity_of(value)
  local nul = string.find(value, '\0', 45, true)
  local rest, meta = nul + 1, ''
  if string.byte(value, rest) == 1 then
    local close = string.find(value, '\0', rest, true)
    meta = string.sub(value, rest, close - 1)
    rest = close + 1
  end
  return tonumber(string.sub(value, 1, 12), 16), string.sub(value, 13, 28),
    string.sub(value, 29, 44), string.sub(value, 45, nul - 1), string.sub(value, rest), meta
end

local function activity(seq, c, u, r, updated_at, meta)
  local head = string.format('%012x', seq) .. c .. u .. r .. '\0'
  if meta and meta ~= '' then
    head = head .. meta .. '\0'
  end
  return head .. updated_at
end

-- The {K, V} entries of an activity's metadata, in order.
local function meta_entries(meta)
  local out = {}
  for k, v in string.gmatch(string.sub(meta or '', 2), '([^\2\3]*)\2([^\2\3]*)\3') do
    out[#out + 1] = {k, v}
  end
  return out
end

local function meta_of(entries)
  if #entries == 0 then
    return ''
  end
  local parts = {'\1'}
  for _, kv in ipairs(entries) do
    parts[#parts + 1] = kv[1] .. '\2' .. kv[2] .. '\3'
  end
  return table.concat(parts)
end

-- meta with the pairs list[first..last] (K, V; V '' drops K) merged in; a new K is
-- indexed only while the thread has fewer than max entries.
local function merge_meta(meta, list, first, last, max)
  local entries = meta_entries(meta)
  for i = first, last, 2 do
    local k, v = list[i], list[i + 1]
    local found = nil
    for j, kv in ipairs(entries) do
      if kv[1] == k then
        found = j
        break
      end
    end
    if found and v == '' then
      table.remove(entries, found)
    elseif found then
      entries[found][2] = v
    elseif v ~= '' and #entries < max then
      entries[#entries + 1] = {k, v}
    end
  end
  return meta_of(entries)
end

-- The entries that carry a thread's update key u: by resource (u), across the namespace
-- (U), and per metadata entry, by resource (mu) and across the namespace (Mu).
local function updated_entries(r, u, t, meta)
  local out = {'u\0' .. r .. '\0' .. u .. '\0' .. t, 'U\0' .. u .. '\0' .. t}
  for _, kv in ipairs(meta_entries(meta)) do
    local kv0 = kv[1] .. '\0' .. kv[2] .. '\0'
    out[#out + 1] = 'mu\0' .. r .. '\0' .. kv0 .. u .. '\0' .. t
    out[#out + 1] = 'Mu\0' .. kv0 .. u .. '\0' .. t
  end
  return out
end

-- A thread's index entries: by resource (c: created, u: updated) and across the
-- namespace (C, U), and the same per metadata entry (mc, mu, Mc, Mu).
local function thread_entries(r, c, u, t, meta)
  local out = updated_entries(r, u, t, meta)
  out[#out + 1] = 'c\0' .. r .. '\0' .. c .. '\0' .. t
  out[#out + 1] = 'C\0' .. c .. '\0' .. t
  for _, kv in ipairs(meta_entries(meta)) do
    local kv0 = kv[1] .. '\0' .. kv[2] .. '\0'
    out[#out + 1] = 'mc\0' .. r .. '\0' .. kv0 .. c .. '\0' .. t
    out[#out + 1] = 'Mc\0' .. kv0 .. c .. '\0' .. t
  end
  return out
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
  local _, c, old_u, r, _, meta = activity_of(value)
  if u ~= old_u then
    redis.call('ZREM', index, unpack(updated_entries(r, old_u, t, meta)))
    add_entries(index, updated_entries(r, u, t, meta))
  end
  return activity(seq, c, u, r, updated_at, meta)
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
-- ARGV: count, then per thread: T, R, created key, updated key, stored updated_at, record,
--       indexed metadata (as activities carry it, '' for none)
-- Creates or replaces each thread; a thread saved again keeps its message sequence.
local pos = 2
for _ = 1, tonumber(ARGV[1]) do
  local t, r, c, u, updated_at, record, meta = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2],
    ARGV[pos + 3], ARGV[pos + 4], ARGV[pos + 5], ARGV[pos + 6]
  pos = pos + 7
  local seq = 0
  local old = redis.call('HGET', KEYS[2], t)
  if old then
    local old_seq, old_c, old_u, old_r, _, old_meta = activity_of(old)
    seq = old_seq
    redis.call('ZREM', KEYS[3], unpack(thread_entries(old_r, old_c, old_u, t, old_meta)))
  end
  redis.call('HSET', KEYS[1], t, record)
  redis.call('HSET', KEYS[2], t, activity(seq, c, u, r, updated_at, meta))
  add_entries(KEYS[3], thread_entries(r, c, u, t, meta))
end
return 1
""",
)

UPDATE_THREAD = script(
    "update_thread",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's threads hash, its activities hash, its thread index
-- ARGV: T, updated key, stored updated_at, the most metadata entries a thread indexes, a
--       count n, n metadata entries to index (K, V; V '' unindexes K), then the record
--       fields to set (name, value...)
-- Returns {record, activity} after the update, or false if there is no thread.
local t = ARGV[1]
local value = redis.call('HGET', KEYS[2], t)
if not value then
  return false
end
local n = tonumber(ARGV[5])
local first = 6 + 2 * n
local record = redis.call('HGET', KEYS[1], t)
if #ARGV >= first then
  record = set_fields(record, ARGV, first, #ARGV)
  redis.call('HSET', KEYS[1], t, record)
end
local seq, c, old_u, r, old_at, meta = activity_of(value)
if n > 0 then
  local new_meta = merge_meta(meta, ARGV, 6, first - 1, tonumber(ARGV[4]))
  if new_meta ~= meta then
    redis.call('ZREM', KEYS[3], unpack(thread_entries(r, c, old_u, t, meta)))
    add_entries(KEYS[3], thread_entries(r, c, old_u, t, new_meta))
    value = activity(seq, c, old_u, r, old_at, new_meta)
  end
end
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
    local _, c, u, r, _, meta = activity_of(value)
    redis.call('ZREM', KEYS[3], unpack(thread_entries(r, c, u, t, meta)))
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
    local _, c, old_u, r, old_at, meta = activity_of(value)
    value = activity(seq, c, old_u, r, old_at, meta)
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
-- One parse and one pack of the record (set_fields would parse it once per call).
local names, values = fields_of(old or ARGV[3])
local function set(name, value)
  if values[name] == nil then
    names[#names + 1] = name
  end
  values[name] = value
end
for i = 4, #ARGV, 2 do
  set(ARGV[i], ARGV[i + 1])
end
set('_u', u)
local packed = packed_of(names, values)
write_resource(KEYS[1], KEYS[2], r, packed, values['_c'], u, old)
return packed
""",
)

# -- metadata filters, moves and clones (issue 12) --------------------------------------------

LIST_MATCHING = script(
    "list_matching",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's thread index, its threads hash, its activities hash
-- ARGV: as list_index's (min and max unused), then the most members a filter may scan, then
--       one index prefix per metadata entry (each '<kind>\0[R\0]K\0V\0')
-- The threads whose indexed metadata holds every entry, in the order of the first
-- prefix's kind: the prefix with the fewest members is scanned (at most the bound) and
-- each member's activity checked for the other entries.
-- Returns list_index's shape, each member cut to '<sort key>\0T'; or {-1e15} when every
-- prefix has more members than the bound.
local offset, count, reverse = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local from, to, bound = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local wanted, best, best_size = {}, nil, nil
for i = 9, #ARGV do
  local p = ARGV[i]
  local size = redis.call('ZLEXCOUNT', KEYS[1], '[' .. p, '(' .. string.sub(p, 1, -2) .. '\1')
  if not best or size < best_size then
    best, best_size = p, size
  end
  -- The entry as meta_entries spells it: the prefix's last two fields.
  local v_end = #p - 1
  local k_end = v_end
  while string.byte(p, k_end) ~= 0 do
    k_end = k_end - 1
  end
  local k_start = k_end - 1
  while string.byte(p, k_start) ~= 0 do
    k_start = k_start - 1
  end
  wanted[string.sub(p, k_start + 1, k_end - 1) .. '\2' .. string.sub(p, k_end + 1, v_end)] = true
end
if best_size > bound then
  return {-1e15}
end
local kept = {}
if best_size > 0 then
  local first = redis.call('ZLEXCOUNT', KEYS[1], '-', '(' .. best)
  local members = redis.call('ZRANGE', KEYS[1], first, first + best_size - 1)
  local ids = {}
  for i, member in ipairs(members) do
    ids[i] = id_of(member)
  end
  local activities = redis.call('HMGET', KEYS[3], unpack(ids))
  for i, member in ipairs(members) do
    if activities[i] then
      local _, _, _, _, _, meta = activity_of(activities[i])
      local found = 0
      for _, kv in ipairs(meta_entries(meta)) do
        if wanted[kv[1] .. '\2' .. kv[2]] then
          found = found + 1
        end
      end
      if found == #ARGV - 8 then
        kept[#kept + 1] = {string.sub(member, #best + 1), ids[i]}
      end
    end
  end
end
local page = {}
if reverse == '1' then
  for i = #kept - offset, math.max(1, #kept - offset - count + 1), -1 do
    page[#page + 1] = kept[i]
  end
else
  for i = offset + 1, math.min(#kept, offset + count) do
    page[#page + 1] = kept[i]
  end
end
from, to = math.min(from, #page), math.min(to, #page)
local columns = {}
if to > from then
  local ids = {}
  for i = from + 1, to do
    ids[#ids + 1] = page[i][2]
  end
  columns[1] = redis.call('HMGET', KEYS[2], unpack(ids))
  columns[2] = redis.call('HMGET', KEYS[3], unpack(ids))
end
local out = {#kept}
for i, entry in ipairs(page) do
  out[#out + 1] = entry[1]
  if i > from and i <= to then
    out[#out + 1] = {columns[1][i - from], columns[2][i - from]}
  else
    out[#out + 1] = false
  end
end
return out
""",
)

MOVE_THREAD = script(
    "move_thread",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's threads hash, its activities hash, its thread index, the thread's
--       messages
-- ARGV: T, the new R, the encoded resource id, updated key, stored updated_at, '1' to move
--       the thread itself (the first slice) or '0' (a later slice), the rank the slice
--       starts at, the slice size
-- Moves the thread to R (record, activity, index entries), then sets resource_id on up to
-- a slice of its messages. A later slice does nothing once the thread is no longer at R
-- (a later move finishes the messages).
-- Returns {0} when there is no thread, {2} when a later slice finds it moved again, else
-- {1, the rank of the next slice or -1, record, activity}.
local t, r, resource = ARGV[1], ARGV[2], ARGV[3]
local value = redis.call('HGET', KEYS[2], t)
if not value then
  return {0}
end
local seq, c, old_u, old_r, old_at, meta = activity_of(value)
local record = redis.call('HGET', KEYS[1], t)
if ARGV[6] == '1' then
  redis.call('ZREM', KEYS[3], unpack(thread_entries(old_r, c, old_u, t, meta)))
  add_entries(KEYS[3], thread_entries(r, c, old_u, t, meta))
  value = touch(KEYS[3], t, activity(seq, c, old_u, r, old_at, meta), seq, ARGV[4], ARGV[5])
  redis.call('HSET', KEYS[2], t, value)
  record = set_fields(record, {'resource_id', resource}, 1, 2)
  redis.call('HSET', KEYS[1], t, record)
elseif old_r ~= r then
  return {2}
end
local start, size = tonumber(ARGV[7]), tonumber(ARGV[8])
local members = redis.call('ZRANGE', KEYS[4], start, start + size - 1, 'WITHSCORES')
local old, new = {}, {}
for i = 1, #members, 2 do
  local member = members[i]
  local cut = string.find(member, '\0', 13, true)
  local packed = string.sub(member, cut + 1)
  local moved = set_fields(packed, {'resource_id', resource}, 1, 2)
  if moved ~= packed then
    old[#old + 1] = member
    new[#new + 1] = members[i + 1]
    new[#new + 1] = string.sub(member, 1, cut) .. moved
  end
end
if #old > 0 then
  -- A member keeps its score and its sequence prefix, so its rank too.
  redis.call('ZREM', KEYS[4], unpack(old))
  redis.call('ZADD', KEYS[4], unpack(new))
end
local next_rank = -1
if redis.call('ZCARD', KEYS[4]) > start + size then
  next_rank = start + size
end
return {1, next_rank, record, value}
""",
)

CLONE_THREAD = script(
    "clone_thread",
    _THREAD_LUA
    + r"""
-- KEYS: the bucket's threads hash, its activities hash, its thread index, its pointers
--       hash, the new thread's messages
-- ARGV: T, R, created key, updated key, stored updated_at, record, indexed metadata, count
--       n, then per message (in order): M, score, packed record
-- Creates the thread with its n messages (sequences 1..n), unless the id is taken (a
-- thread, or messages a slice-wise delete has not dropped yet).
-- Returns 1, or 0 when the id is taken (nothing written).
local t = ARGV[1]
if redis.call('HEXISTS', KEYS[2], t) == 1 or redis.call('EXISTS', KEYS[5]) == 1 then
  return 0
end
local n = tonumber(ARGV[8])
redis.call('HSET', KEYS[1], t, ARGV[6])
redis.call('HSET', KEYS[2], t, activity(n, ARGV[3], ARGV[4], ARGV[2], ARGV[5], ARGV[7]))
add_entries(KEYS[3], thread_entries(ARGV[2], ARGV[3], ARGV[4], t, ARGV[7]))
if n > 0 then
  local members, links = {}, {}
  for j = 1, n do
    local at = 9 + 3 * (j - 1)
    members[#members + 1] = ARGV[at + 1]
    members[#members + 1] = string.format('%012x', j) .. ARGV[at] .. '\0' .. ARGV[at + 2]
    links[#links + 1] = ARGV[at]
    links[#links + 1] = t .. '\0' .. ARGV[at + 1]
  end
  redis.call('ZADD', KEYS[5], unpack(members))
  redis.call('HSET', KEYS[4], unpack(links))
end
return 1
""",
)
