"""The workflows domain's scripts (layout 2). Each touches the keys of one bucket only.

Conventions (see :mod:`kvstore.domains.workflows` for the key schema):

* ``id`` is a run's member (:meth:`kvstore.keys.Keys.run_member`); ``W``, ``R``, ``S``, ``I``
  are the workflow name, resource id, status and run id escaped for lex members (``''``:
  none).
* A run record is a packed field list (:mod:`kvstore.domains._lua`), one field per attribute
  but the snapshot (which lives in the bucket's ``run_snapshots``), with internal fields
  ``_v`` (the version, a decimal so that Lua can add to it whatever the codec), ``_c`` (its
  creation sort key), ``_w``, ``_i``, ``_r`` and ``_s`` (what it is indexed under).
"""

from __future__ import annotations

from kvstore.domains._lua import script

__all__ = ["CONFLICT", "DELETE_RUN", "NOT_FOUND", "RESTORE_RUNS", "WRITE_RUN", "WRITTEN"]

#: WRITE_RUN's replies, as the first item of its array.
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
-- KEYS: the bucket's runs hash, its run index, its run_snapshots hash
-- ARGV: mode ('persist' creates a missing run, 'update' refuses it), expected version
--       ('' for any), id, has snapshot ('1'/'0'), snapshot, count of fields a new run
--       starts with (internal fields _c, _w, _i included), those fields, then the fields to
--       set (internal fields _r and _s included when they change)
-- Returns {1, new version} ('persist') or {1, new version, record, snapshot} ('update'); {0, actual
-- version} on a version mismatch; {-1, 0} when 'update' finds no run. Nothing is written
-- unless the first item is 1.
local id = ARGV[3]
local old = redis.call('HGET', KEYS[1], id)
if not old and ARGV[1] == 'update' then
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
local ncreate = tonumber(ARGV[6])
local packed = old
if not packed then
  packed = set_fields('\1', ARGV, 7, 6 + ncreate)
end
packed = set_fields(packed, ARGV, 7 + ncreate, #ARGV)
packed = set_fields(packed, {'_v', tostring(version + 1)}, 1, 2)
local _, values = fields_of(packed)
if not old or values['_r'] ~= old_values['_r'] or values['_s'] ~= old_values['_s'] then
  index_run(KEYS[2], id, old_values, values)
end
redis.call('HSET', KEYS[1], id, packed)
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[3], id, ARGV[5])
end
if ARGV[1] == 'update' then
  return {1, version + 1, packed, redis.call('HGET', KEYS[3], id)}
end
return {1, version + 1}
""",
)

DELETE_RUN = script(
    "delete_run",
    _RUN_LUA
    + r"""
-- KEYS: the bucket's runs hash, its run index, its run_snapshots hash
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
return 1
""",
)

RESTORE_RUNS = script(
    "restore_runs",
    _RUN_LUA
    + r"""
-- KEYS: the bucket's runs hash, its run index, its run_snapshots hash
-- ARGV: count, then per run: id, packed record, snapshot
local pos = 2
for _ = 1, tonumber(ARGV[1]) do
  local id, packed = ARGV[pos], ARGV[pos + 1]
  local old = redis.call('HGET', KEYS[1], id)
  local old_values = nil
  if old then
    local _
    _, old_values = fields_of(old)
  end
  local _, values = fields_of(packed)
  index_run(KEYS[2], id, old_values, values)
  redis.call('HSET', KEYS[1], id, packed)
  redis.call('HSET', KEYS[3], id, ARGV[pos + 2])
  pos = pos + 3
end
return 1
""",
)
