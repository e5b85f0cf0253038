"""The checkpoint domain's scripts (layout 2). Each touches the keys of one thread's bucket.

Conventions (see :mod:`kvstore.domains.checkpoints` for the key schema):

* ``T``, ``N``, ``I``, ``R`` are a thread id, a namespace, a checkpoint id and a run id
  escaped for lex members (:func:`kvstore.keys.lex_escape`): they hold no NUL, which
  separates fields. A checkpoint is named ``N\\0I`` in its thread's hashes.
* A checkpoint record is a packed field list (:mod:`kvstore.domains._lua`) with ``c`` (the
  checkpoint), ``m`` (its metadata), ``p`` (the parent id), ``b`` (its channel references:
  ``<channel>\\0<version>\\0`` pairs, escaped), ``e`` (its index entries, each as ``<8 hex
  digits: length><entry>``) and ``r`` (its run, escaped; may be empty).
* Index entries of a checkpoint: ``n\\0N\\0I`` (by namespace), ``a\\0I\\0N`` (every
  namespace, by id), ``m\\0N\\0K\\0V\\0I`` and ``M\\0K\\0V\\0I\\0N`` (metadata key ``K``
  equals the value whose token is ``V``), ``r\\0R\\0N\\0I`` (its run). ``s\\0N`` marks a
  namespace that has checkpoints.
* A channel value lives in the thread's blobs hash under ``N\\0<channel>\\0<version>``; the
  refs hash counts the checkpoints that refer to it, and the value goes with the last one.
* A pending write is a member of the thread's writes sorted set: ``N\\0I\\0<task path>\\0
  <task id>\\0<8 hex digits: index + 2^31>\\0<channel>\\0<value>``, so that one checkpoint's
  writes are one lex range, in LangGraph's order (task path, task id, index).
"""

from __future__ import annotations

from kvstore.domains._lua import script

__all__ = [
    "COPY_CHUNK",
    "DELETE_THREAD",
    "DROP_RUNS",
    "GET",
    "LIST",
    "PRUNE",
    "PUT",
    "PUT_WRITES",
    "SLICE",
]

#: Checkpoints (or runs, or namespaces) a deleting script handles at most in one call; a
#: larger job takes several calls, so that no call holds the server long.
SLICE = 200

_CHECKPOINT_LUA = r"""
-- KEYS of every checkpoint script: 1 index, 2 records, 3 blobs, 4 refs, 5 writes,
-- 6 the bucket's checkpoint threads, 7 the bucket's checkpoint runs.

local function call_many(command, key, list)
  for i = 1, #list, 1000 do
    redis.call(command, key, unpack(list, i, math.min(i + 999, #list)))
  end
end

local function zadd_many(key, members)
  local args = {}
  for _, member in ipairs(members) do
    args[#args + 1] = 0
    args[#args + 1] = member
  end
  for i = 1, #args, 2000 do
    redis.call('ZADD', key, unpack(args, i, math.min(i + 1999, #args)))
  end
end

local function list_of(s)
  local out, pos = {}, 1
  while pos <= #s do
    local n = tonumber(string.sub(s, pos, pos + 7), 16)
    out[#out + 1] = string.sub(s, pos + 8, pos + 7 + n)
    pos = pos + 8 + n
  end
  return out
end

local function ref_fields(ns, refs, out)
  out = out or {}
  refs = refs or ''
  local pos, size, head = 1, #refs, ns .. '\0'
  while pos <= size do
    local channel_end = string.find(refs, '\0', pos, true)
    local version_end = string.find(refs, '\0', channel_end + 1, true)
    out[#out + 1] = head .. string.sub(refs, pos, version_end - 1)
    pos = version_end + 1
  end
  return out
end

-- Adds delta (+1/-1 per occurrence) to the refs of these blob fields; a value nobody
-- refers to any more is deleted.
local function add_refs(fields, delta)
  if #fields == 0 then
    return
  end
  local change, unique = {}, {}
  for _, f in ipairs(fields) do
    if change[f] == nil then
      change[f] = 0
      unique[#unique + 1] = f
    end
    change[f] = change[f] + delta
  end
  local set, gone = {}, {}
  for i = 1, #unique, 1000 do
    local part = {unpack(unique, i, math.min(i + 999, #unique))}
    local counts = redis.call('HMGET', KEYS[4], unpack(part))
    for j, f in ipairs(part) do
      local n = (tonumber(counts[j]) or 0) + change[f]
      if n > 0 then
        set[#set + 1] = f
        set[#set + 1] = n
      else
        gone[#gone + 1] = f
      end
    end
  end
  for i = 1, #set, 1000 do
    redis.call('HSET', KEYS[4], unpack(set, i, math.min(i + 999, #set)))
  end
  call_many('HDEL', KEYS[4], gone)
  call_many('HDEL', KEYS[3], gone)
end

local function first_in(key, low, high)
  local found = redis.call('ZRANGEBYLEX', key, low, high, 'LIMIT', 0, 1)
  return found[1]
end

-- Removes the link run -> thread when the thread has no checkpoint of the run left.
local function forget_run(run, thread)
  if run and run ~= '' and not first_in(KEYS[1], '[r\0' .. run .. '\0', '(r\0' .. run .. '\1')
  then
    redis.call('ZREM', KEYS[7], run .. '\0' .. thread)
  end
end

-- Removes the namespace mark when the namespace has no checkpoint left.
local function forget_namespace(ns)
  if not first_in(KEYS[1], '[n\0' .. ns .. '\0', '(n\0' .. ns .. '\1') then
    redis.call('ZREM', KEYS[1], 's\0' .. ns)
  end
end

-- Deletes one checkpoint's record and index entries, and adds the blob fields it refers
-- to to blob_fields (to release with add_refs). Returns its run (escaped, maybe ''), or nil
-- when it did not exist.
local function unindex(ns, id, blob_fields)
  local field = ns .. '\0' .. id
  local record = redis.call('HGET', KEYS[2], field)
  if not record then
    return nil
  end
  local _, values = fields_of(record)
  call_many('ZREM', KEYS[1], list_of(values['e'] or ''))
  redis.call('HDEL', KEYS[2], field)
  ref_fields(ns, values['b'], blob_fields)
  return values['r'] or ''
end

-- unindex, and the checkpoint's pending writes too.
local function drop(ns, id, blob_fields)
  local field = ns .. '\0' .. id
  redis.call('ZREMRANGEBYLEX', KEYS[5], '[' .. field .. '\0', '(' .. field .. '\1')
  return unindex(ns, id, blob_fields)
end

local function thread_is_empty()
  return not first_in(KEYS[1], '[a\0', '(a\1')
end
"""

PUT = script(
    "checkpoint_put",
    _CHECKPOINT_LUA
    + r"""
-- KEYS: 1-7 (see above)
-- ARGV: N, I, record, T, count of blob values, then <channel>\0<version> and value for
--       each, then the pending writes to add (whole members)
-- Stores the checkpoint (replacing one of the same id), its index entries and blobs, and
-- registers the thread and its run in the bucket.
local ns, id, record, thread = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local field = ns .. '\0' .. id
local _, values = fields_of(record)
local new_refs = ref_fields(ns, values['b'])
add_refs(new_refs, 1)
local old_refs = {}
local old_run = unindex(ns, id, old_refs)
add_refs(old_refs, -1)
redis.call('HSET', KEYS[2], field, record)
local entries = list_of(values['e'] or '')
entries[#entries + 1] = 's\0' .. ns
zadd_many(KEYS[1], entries)
local nblobs = tonumber(ARGV[5])
if nblobs > 0 then
  local args = {}
  for i = 6, 5 + 2 * nblobs, 2 do
    args[#args + 1] = ns .. '\0' .. ARGV[i]
    args[#args + 1] = ARGV[i + 1]
  end
  for i = 1, #args, 1000 do
    redis.call('HSET', KEYS[3], unpack(args, i, math.min(i + 999, #args)))
  end
end
local writes = {}
for i = 6 + 2 * nblobs, #ARGV do
  writes[#writes + 1] = ARGV[i]
end
zadd_many(KEYS[5], writes)
redis.call('ZADD', KEYS[6], 0, thread)
local run = values['r'] or ''
if run ~= '' then
  redis.call('ZADD', KEYS[7], 0, run .. '\0' .. thread)
end
if old_run and old_run ~= run then
  forget_run(old_run, thread)
end
return 1
""",
)

PUT_WRITES = script(
    "checkpoint_put_writes",
    r"""
-- KEYS: the thread's writes
-- ARGV: the task's prefix N\0I\0<path>\0<task>\0, then per write: its index (8 hex
--       digits), '1' to overwrite a stored write at that index or '0' to keep it, and the
--       rest of its member (<channel>\0<value>)
-- Returns how many writes were stored.
local prefix = ARGV[1]
local stored = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. prefix,
  '(' .. string.sub(prefix, 1, -2) .. '\1')
local have = {}
for _, member in ipairs(stored) do
  have[string.sub(member, #prefix + 1, #prefix + 8)] = member
end
local new, order = {}, {}
for i = 2, #ARGV, 3 do
  local idx = ARGV[i]
  if ARGV[i + 1] == '1' or (have[idx] == nil and new[idx] == nil) then
    if new[idx] == nil then
      order[#order + 1] = idx
    end
    new[idx] = prefix .. idx .. '\0' .. ARGV[i + 2]
  end
end
local args, old = {}, {}
for _, idx in ipairs(order) do
  if have[idx] ~= nil and have[idx] ~= new[idx] then
    old[#old + 1] = have[idx]
  end
  args[#args + 1] = 0
  args[#args + 1] = new[idx]
end
if #old > 0 then
  redis.call('ZREM', KEYS[1], unpack(old))
end
if #args > 0 then
  redis.call('ZADD', KEYS[1], unpack(args))
end
return #args / 2
""",
)

GET = script(
    "checkpoint_get",
    _CHECKPOINT_LUA
    + r"""
-- KEYS: 1-5 (see above)
-- ARGV: N, I ('' for the namespace's newest)
-- Returns false, or {I, record, blob values in the order of the record's references,
-- pending writes}.
local ns, id = ARGV[1], ARGV[2]
if id == '' then
  local top = redis.call('ZREVRANGEBYLEX', KEYS[1], '(n\0' .. ns .. '\1', '[n\0' .. ns .. '\0',
    'LIMIT', 0, 1)
  if #top == 0 then
    return false
  end
  id = string.sub(top[1], #ns + 4)
end
local field = ns .. '\0' .. id
local record = redis.call('HGET', KEYS[2], field)
if not record then
  return false
end
local _, values = fields_of(record)
local refs = ref_fields(ns, values['b'])
local blobs = {}
if #refs > 0 then
  blobs = redis.call('HMGET', KEYS[3], unpack(refs))
end
local writes = redis.call('ZRANGEBYLEX', KEYS[5], '[' .. field .. '\0', '(' .. field .. '\1')
return {id, record, blobs, writes}
""",
)

LIST = script(
    "checkpoint_list",
    _CHECKPOINT_LUA
    + r"""
-- KEYS: 1-5 (see above)
-- ARGV: scope ('n': one namespace, ARGV[2] = N; 'a': every namespace; 'i': one
--       checkpoint id in every namespace, ARGV[2] = I), upper bound (exclusive: I in scope
--       'n', I or I\0N in scope 'a'; '' for none), limit, budget (candidates to examine at
--       most), then the metadata filters K\0V
-- Returns {cursor ('' when the range is exhausted, else where the next call resumes, to pass
-- as the upper bound), {N, I, record, writes}... newest first, blob fields, blob values}.
local scope, arg, upper = ARGV[1], ARGV[2], ARGV[3]
local limit, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local tokens = {}
for i = 6, #ARGV do
  tokens[#tokens + 1] = ARGV[i]
end

local function token_prefix(t)
  if scope == 'n' then
    return 'm\0' .. arg .. '\0' .. t .. '\0'
  end
  return 'M\0' .. t .. '\0'
end

-- The range to walk: the smallest of the filters' (or every checkpoint's).
local prefix, driver = nil, 0
if scope == 'n' then
  prefix = 'n\0' .. arg .. '\0'
elseif scope == 'a' then
  prefix = 'a\0'
else
  prefix = 'a\0' .. arg .. '\0'
end
if scope ~= 'i' and #tokens > 0 then
  local best = nil
  for k, t in ipairs(tokens) do
    local p = token_prefix(t)
    local n = redis.call('ZLEXCOUNT', KEYS[1], '[' .. p, '(' .. string.sub(p, 1, -2) .. '\1')
    if best == nil or n < best then
      best, prefix, driver = n, p, k
    end
  end
end

local function split(rest)
  if scope == 'n' then
    return arg, rest
  elseif scope == 'i' then
    return rest, arg
  end
  local nul = string.find(rest, '\0', 1, true)
  return string.sub(rest, nul + 1), string.sub(rest, 1, nul - 1)
end

local function matches(ns, id)
  for k, t in ipairs(tokens) do
    if k ~= driver then
      local member
      if scope == 'n' then
        member = 'm\0' .. ns .. '\0' .. t .. '\0' .. id
      else
        member = 'M\0' .. t .. '\0' .. id .. '\0' .. ns
      end
      if not redis.call('ZSCORE', KEYS[1], member) then
        return false
      end
    end
  end
  return true
end

local low = '[' .. prefix
local high = '(' .. string.sub(prefix, 1, -2) .. '\1'
if upper ~= '' and scope ~= 'i' then
  high = '(' .. prefix .. upper
end
local found, cursor, examined = {}, '', 0
local chunk = math.max(limit, 16)
local exhausted = false
while #found < limit and examined < budget do
  local want = math.min(chunk, budget - examined)
  local members = redis.call('ZREVRANGEBYLEX', KEYS[1], high, low, 'LIMIT', 0, want)
  local used = 0
  for _, member in ipairs(members) do
    used = used + 1
    examined = examined + 1
    local rest = string.sub(member, #prefix + 1)
    local ns, id = split(rest)
    if matches(ns, id) then
      found[#found + 1] = {ns, id}
    end
    high = '(' .. member
    cursor = rest
    if #found >= limit then
      break
    end
  end
  if #members < want and used == #members then
    exhausted = true
    break
  end
end
if exhausted or scope == 'i' then
  cursor = ''
end

local out, blob_fields = {cursor}, {}
if #found > 0 then
  local fields = {}
  for i, f in ipairs(found) do
    fields[i] = f[1] .. '\0' .. f[2]
  end
  local records = redis.call('HMGET', KEYS[2], unpack(fields))
  local seen = {}
  for i, f in ipairs(found) do
    local record = records[i]
    if record then
      local _, values = fields_of(record)
      for _, b in ipairs(ref_fields(f[1], values['b'])) do
        if not seen[b] then
          seen[b] = true
          blob_fields[#blob_fields + 1] = b
        end
      end
      local writes = redis.call('ZRANGEBYLEX', KEYS[5], '[' .. fields[i] .. '\0',
        '(' .. fields[i] .. '\1')
      out[#out + 1] = {f[1], f[2], record, writes}
    end
  end
end
local blobs = {}
if #blob_fields > 0 then
  blobs = redis.call('HMGET', KEYS[3], unpack(blob_fields))
end
out[#out + 1] = blob_fields
out[#out + 1] = blobs
return out
""",
)

DELETE_THREAD = script(
    "checkpoint_delete_thread",
    _CHECKPOINT_LUA
    + r"""
-- KEYS: 1-7 (see above)
-- ARGV: T, how many runs to unlink at most in this call
-- Unlinks the thread's runs from the bucket, then deletes every key of the thread.
-- Returns 1 when done, 0 when runs are left (call again).
local thread, most = ARGV[1], tonumber(ARGV[2])
local done = 0
while true do
  local entry = first_in(KEYS[1], '[r\0', '(r\1')
  if not entry then
    break
  end
  if done >= most then
    return 0
  end
  local run = string.match(entry, '^r%z([^%z]*)%z')
  redis.call('ZREM', KEYS[7], run .. '\0' .. thread)
  redis.call('ZREMRANGEBYLEX', KEYS[1], '[r\0' .. run .. '\0', '(r\0' .. run .. '\1')
  done = done + 1
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[6], thread)
return 1
""",
)

DROP_RUNS = script(
    "checkpoint_drop_runs",
    _CHECKPOINT_LUA
    + r"""
-- KEYS: 1-7 (see above)
-- ARGV: T, how many checkpoints to delete at most in this call, then the runs R
-- Deletes the thread's checkpoints of these runs. Returns 1 when done, 0 when some are
-- left (call again).
local thread, most = ARGV[1], tonumber(ARGV[2])
local blob_fields, namespaces, dropped = {}, {}, 0
local complete = 1
for i = 3, #ARGV do
  local run = ARGV[i]
  local prefix = 'r\0' .. run .. '\0'
  local entries = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. prefix, '(r\0' .. run .. '\1',
    'LIMIT', 0, most - dropped + 1)
  for _, entry in ipairs(entries) do
    if dropped >= most then
      complete = 0
      break
    end
    local rest = string.sub(entry, #prefix + 1)
    local nul = string.find(rest, '\0', 1, true)
    local ns, id = string.sub(rest, 1, nul - 1), string.sub(rest, nul + 1)
    if drop(ns, id, blob_fields) == nil then
      redis.call('ZREM', KEYS[1], entry)
    end
    namespaces[ns] = true
    dropped = dropped + 1
  end
  forget_run(run, thread)
  if complete == 0 then
    break
  end
end
add_refs(blob_fields, -1)
for ns in pairs(namespaces) do
  forget_namespace(ns)
end
if thread_is_empty() then
  redis.call('ZREM', KEYS[6], thread)
end
return complete
""",
)

PRUNE = script(
    "checkpoint_prune",
    _CHECKPOINT_LUA
    + r"""
-- KEYS: 1-7 (see above)
-- ARGV: T, how many checkpoints to delete at most in this call, the namespace to start
--       from ('' for the first; exclusive: a lex bound '(s\0N' otherwise)
-- Keeps the newest checkpoint of each namespace of the thread and deletes the others.
-- Returns '' when done, else the bound to start the next call from.
local thread, most, start = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if start == '' then
  start = '[s\0'
end
local blob_fields, runs, dropped, visited = {}, {}, 0, 0
local resume = ''
while true do
  local mark = first_in(KEYS[1], start, '(s\1')
  if not mark then
    break
  end
  visited = visited + 1
  local ns = string.sub(mark, 3)
  local low, high = '[n\0' .. ns .. '\0', '(n\0' .. ns .. '\1'
  local top = redis.call('ZREVRANGEBYLEX', KEYS[1], high, low, 'LIMIT', 0, 1)
  if #top > 0 then
    local older = redis.call('ZRANGEBYLEX', KEYS[1], low, '(' .. top[1], 'LIMIT', 0,
      most - dropped + 1)
    for _, entry in ipairs(older) do
      if dropped >= most then
        resume = '[' .. mark
        break
      end
      local run = drop(ns, string.sub(entry, #ns + 4), blob_fields)
      if run == nil then
        redis.call('ZREM', KEYS[1], entry)
      elseif run ~= '' then
        runs[run] = true
      end
      dropped = dropped + 1
    end
  end
  if resume ~= '' then
    break
  end
  start = '(' .. mark
  if dropped >= most or visited >= most then
    resume = start
    break
  end
end
add_refs(blob_fields, -1)
for run in pairs(runs) do
  forget_run(run, thread)
end
return resume
""",
)

COPY_CHUNK = script(
    "checkpoint_copy_chunk",
    _CHECKPOINT_LUA
    + r"""
-- KEYS: 1-5 (see above)
-- ARGV: where to start (exclusive lower bound I\0N; '' from the oldest), how many
-- Returns {cursor ('' at the end), how many checkpoints the thread has, {N, I, record,
-- writes}... oldest first, blob fields, blob values}: what PUT needs to write the same
-- checkpoints into another thread (or store).
local after, count = ARGV[1], tonumber(ARGV[2])
local low = '[a\0'
if after ~= '' then
  low = '(a\0' .. after
end
local entries = redis.call('ZRANGEBYLEX', KEYS[1], low, '(a\1', 'LIMIT', 0, count)
local out = {'', redis.call('ZLEXCOUNT', KEYS[1], '[a\0', '(a\1')}
if #entries == count then
  out[1] = string.sub(entries[#entries], 3)
end
local blob_fields, seen = {}, {}
for _, entry in ipairs(entries) do
  local rest = string.sub(entry, 3)
  local nul = string.find(rest, '\0', 1, true)
  local id, ns = string.sub(rest, 1, nul - 1), string.sub(rest, nul + 1)
  local field = ns .. '\0' .. id
  local record = redis.call('HGET', KEYS[2], field)
  if record then
    local _, values = fields_of(record)
    for _, b in ipairs(ref_fields(ns, values['b'])) do
      if not seen[b] then
        seen[b] = true
        blob_fields[#blob_fields + 1] = b
      end
    end
    local writes = redis.call('ZRANGEBYLEX', KEYS[5], '[' .. field .. '\0', '(' .. field .. '\1')
    out[#out + 1] = {ns, id, record, writes}
  end
end
local blobs = {}
if #blob_fields > 0 then
  blobs = redis.call('HMGET', KEYS[3], unpack(blob_fields))
end
out[#out + 1] = blob_fields
out[#out + 1] = blobs
return out
""",
)
