"""The workflows domain's scripts (layout 2). Each touches the keys of one bucket only.

Conventions (see :mod:`kvstore.domains.workflows` for the key schema):

* ``id`` is a run's member (:meth:`kvstore.keys.Keys.run_member`); ``W``, ``R``, ``S``, ``I``
  are the workflow name, resource id, status and run id escaped for lex members (``''``:
  none).
* A run record is a packed field list (:mod:`kvstore.domains._lua`), one field per attribute
  but the snapshot (which lives in the bucket's ``run_snapshots``), with internal fields
  ``_v`` (the version, a decimal so that Lua can add to it whatever the codec), ``_c`` (its
  creation sort key), ``_w``, ``_i``, ``_r`` and ``_s`` (what it is indexed under).
* A run's step results are a packed field list (step id -> encoded result) in the bucket's
  ``run_steps``; its lease is a string ``<token>\\0<owner>`` with a TTL
  (:meth:`kvstore.keys.Keys.run_lease`), its token taken from the bucket's ``run_tokens``.
"""

from __future__ import annotations

from kvstore.domains._lua import script

__all__ = [
    "CONFLICT",
    "DELETE_RUN",
    "DELETE_RUNS",
    "LEASE_RUN",
    "NOT_FOUND",
    "RESTORE_RUNS",
    "STALE",
    "WRITE_RUN",
    "WRITTEN",
]

#: WRITE_RUN's and LEASE_RUN's replies, as the first item of their array.
STALE = -2
NOT_FOUND = -1
CONFLICT = 0
WRITTEN = 1

# A run's index entries: every combination of its workflow (w), resource (r) and status
# (s), and its run id (i) for get_run without a workflow name.
_RUN_LUA = r"""
local function run_entries(values, id)
  local w, r, s, c = values['_w'], values['_r'] or '', values['_s'] or '', values['_c']
  local tail = '\0' .. c .. '\0' .. id
  local out = {'all' .. tail, 'w\0' .. w .. tail, 'i\0' .. values['_i'] .. tail}
  if r ~= '' then
    out[#out + 1] = 'r\0' .. r .. tail
    out[#out + 1] = 'wr\0' .. w .. '\0' .. r .. tail
  end
  if s ~= '' then
    out[#out + 1] = 's\0' .. s .. tail
    out[#out + 1] = 'ws\0' .. w .. '\0' .. s .. tail
  end
  if r ~= '' and s ~= '' then
    out[#out + 1] = 'rs\0' .. r .. '\0' .. s .. tail
    out[#out + 1] = 'wrs\0' .. w .. '\0' .. r .. '\0' .. s .. tail
  end
  return out
end

local function index_run(index, id, old_values, new_values)
  if old_values then
    redis.call('ZREM', index, unpack(run_entries(old_values, id)))
  end
  local args = {}
  for _, member in ipairs(run_entries(new_values, id)) do
    args[#args + 1] = 0
    args[#args + 1] = member
  end
  redis.call('ZADD', index, unpack(args))
end
"""

WRITE_RUN = script(
    "write_run",
    _RUN_LUA
    + r"""
-- KEYS: the bucket's runs hash, its run index, its run_snapshots hash, its run_steps hash,
--       the run's lease
-- ARGV: mode ('persist' creates a missing run, 'update' refuses it, 'step' refuses it and
--       sets one step result), expected version ('' for any), id, has snapshot ('1'/'0'),
--       snapshot, fencing token ('' for none), step id, step result, count of fields a new
--       run starts with (internal fields _c, _w, _i included), those fields, then the
--       fields to set (internal fields _r and _s included when they change)
-- Returns {1, new version} ('persist'), {1, new version, record, snapshot} ('update'),
-- {1, new version, steps} ('step'); {0, actual version} on a version mismatch; {-1, 0}
-- when 'update' or 'step' finds no run; {-2, token of the live lease or 0} when a fencing
-- token is given and is not the live lease's. Nothing is written unless the first item is 1.
local id = ARGV[3]
local old = redis.call('HGET', KEYS[1], id)
if ARGV[6] ~= '' then
  -- A fenced write needs the run and its live lease with this very token.
  local held = redis.call('GET', KEYS[5])
  local token = held and string.match(held, '^(%d+)') or '0'
  if not old or token ~= ARGV[6] then
    return {-2, tonumber(token)}
  end
end
if not old and ARGV[1] ~= 'persist' then
  return {-1, 0}
end
local old_values = nil
local version = 0
if old then
  local _
  _, old_values = fields_of(old)
  version = tonumber(old_values['_v'])
end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= version then
  return {0, version}
end
local ncreate = tonumber(ARGV[9])
local packed = old
if not packed then
  packed = set_fields('\1', ARGV, 10, 9 + ncreate)
  -- A lease left by a deleted run of this name must not fence the new one.
  redis.call('DEL', KEYS[5])
end
packed = set_fields(packed, ARGV, 10 + ncreate, #ARGV)
packed = set_fields(packed, {'_v', tostring(version + 1)}, 1, 2)
local _, values = fields_of(packed)
if not old or values['_r'] ~= old_values['_r'] or values['_s'] ~= old_values['_s'] then
  index_run(KEYS[2], id, old_values, values)
end
redis.call('HSET', KEYS[1], id, packed)
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[3], id, ARGV[5])
end
if ARGV[1] == 'step' then
  local steps = redis.call('HGET', KEYS[4], id) or '\1'
  steps = set_fields(steps, ARGV, 7, 8)
  redis.call('HSET', KEYS[4], id, steps)
  return {1, version + 1, steps}
end
if ARGV[1] == 'update' then
  return {1, version + 1, packed, redis.call('HGET', KEYS[3], id),
    redis.call('HGET', KEYS[4], id) or false}
end
return {1, version + 1}
""",
)

LEASE_RUN = script(
    "lease_run",
    r"""
-- KEYS: the bucket's runs hash, the run's lease, the bucket's run_tokens
-- ARGV: mode ('claim', 'renew', 'release'), id, owner ('claim') or token, ttl (ms)
-- Returns {1, token} when the lease is (still) held: claimed, renewed or released;
-- {0, token, owner} when 'claim' finds another owner's live lease; {-1, 0} when 'claim'
-- finds no run; {-2, token of the live lease or 0} when 'renew' or 'release' is given
-- another token than the live lease's (it expired, or was claimed by someone else since).
local held = redis.call('GET', KEYS[2])
local token, owner = nil, nil
if held then
  token, owner = string.match(held, '^(%d+)%z(.*)$')
end
if ARGV[1] == 'claim' then
  if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
    return {-1, 0}
  end
  if held and owner ~= ARGV[3] then
    return {0, tonumber(token), owner}
  end
  if not held then
    token = tostring(redis.call('INCR', KEYS[3]))
  end
  -- The same owner claiming again keeps its token: a claim may be retried.
  redis.call('SET', KEYS[2], token .. '\0' .. ARGV[3], 'PX', ARGV[4])
  return {1, tonumber(token)}
end
if not held or token ~= ARGV[3] then
  return {-2, tonumber(token or '0')}
end
if ARGV[1] == 'renew' then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
else
  redis.call('DEL', KEYS[2])
end
return {1, tonumber(token)}
""",
)

DELETE_RUN = script(
    "delete_run",
    _RUN_LUA
    + r"""
-- KEYS: the bucket's runs hash, its run index, its run_snapshots hash, its run_steps
--       hash, the run's lease
-- ARGV: id
-- Returns 1 if the run existed, else 0.
local packed = redis.call('HGET', KEYS[1], ARGV[1])
if not packed then
  return 0
end
local _, values = fields_of(packed)
redis.call('ZREM', KEYS[2], unpack(run_entries(values, ARGV[1])))
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[5])
return 1
""",
)

DELETE_RUNS = script(
    "delete_runs",
    _RUN_LUA
    + r"""
-- KEYS: the bucket's runs hash, its run index, its run_snapshots hash, its run_steps hash
-- ARGV: min, max (ZRANGE BYLEX bounds of the index entries to delete), slice (how many
--       runs at most)
-- Returns {runs deleted, index entries read}: fewer entries than the slice when none is
-- left. The runs' leases are left to expire: a run created again under the same name
-- voids them.
local members = redis.call('ZRANGE', KEYS[2], ARGV[1], ARGV[2], 'BYLEX', 'LIMIT', 0,
  tonumber(ARGV[3]))
local deleted = 0
for _, member in ipairs(members) do
  local id = id_of(member)
  local packed = redis.call('HGET', KEYS[1], id)
  if packed then
    local _, values = fields_of(packed)
    redis.call('ZREM', KEYS[2], unpack(run_entries(values, id)))
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    deleted = deleted + 1
  else
    -- An entry pointing at nothing: repair the index.
    redis.call('ZREM', KEYS[2], member)
  end
end
return {deleted, #members}
""",
)

RESTORE_RUNS = script(
    "restore_runs",
    _RUN_LUA
    + r"""
-- KEYS: the bucket's runs hash, its run index, its run_snapshots hash, its run_steps hash,
--       then each run's lease, in the order of ARGV
-- ARGV: count, then per run: id, packed record, snapshot, step results ('' for none)
-- A run created here drops a lease left under its name by a deleted run, as WRITE_RUN does.
local pos = 2
for n = 1, tonumber(ARGV[1]) do
  local id, packed = ARGV[pos], ARGV[pos + 1]
  local old = redis.call('HGET', KEYS[1], id)
  local old_values = nil
  if old then
    local _
    _, old_values = fields_of(old)
  end
  local _, values = fields_of(packed)
  index_run(KEYS[2], id, old_values, values)
  if not old then
    redis.call('DEL', KEYS[4 + n])
  end
  redis.call('HSET', KEYS[1], id, packed)
  redis.call('HSET', KEYS[3], id, ARGV[pos + 2])
  if ARGV[pos + 3] == '' then
    redis.call('HDEL', KEYS[4], id)
  else
    redis.call('HSET', KEYS[4], id, ARGV[pos + 3])
  end
  pos = pos + 4
end
return 1
""",
)
