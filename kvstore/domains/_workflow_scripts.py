"""The workflows domain's scripts: each Lua source sits next to its Python twin.

Conventions (see also :mod:`kvstore.domains._memory_scripts`):

* ``KEYS[1]`` is the run's hash; other keys are built from prefixes the caller takes from
  :mod:`kvstore.keys` (every key of a namespace shares one hash slot).
* A run's *member* (``escape(workflow name) + ":" + run id``) names it in every index;
  prepending the run prefix gives its hash.
* Internal hash fields: ``_v`` the version (a decimal, so Lua can add to it whatever the
  codec), ``_c`` the creation score, ``_r`` and ``_s`` the escaped resource id and status
  (``''`` for none) from which the run's index keys are rebuilt.
"""

from __future__ import annotations

from kvstore.domains._base import INDEX_LUA, lattice, zadd_all, zrem_all
from kvstore.drivers.base import Reply, Script, ScriptCall

__all__ = ["DELETE_RUN", "GET_RUN_BY_ID", "RESTORE_RUNS", "WRITE_RUN"]

#: WRITE_RUN's replies, as the first item of its array.
NOT_FOUND = -1
CONFLICT = 0
WRITTEN = 1

_WRITE_RUN = (
    INDEX_LUA
    + """
-- KEYS[1] the run's hash
-- ARGV: mode ('persist' creates a missing run, 'update' refuses it), expected version
--       ('' for any), member, creation score (for a new run), index prefix, the index's
--       three filter names (workflow, resource, status), escaped workflow name, escaped
--       resource id ('' keeps the stored one), escaped status ('' keeps the stored one),
--       the run-id index key, count of fields a new run starts with, those fields, then
--       the fields to set.
-- Returns {1, new version} ('persist') or {1, new version, fields} ('update');
-- {0, actual version} when the expected version does not match; {-1, 0} when 'update'
-- finds no run. Nothing is written unless the first item is 1.
local v = redis.call('HGET', KEYS[1], '_v')
if not v and ARGV[1] == 'update' then
  return {-1, 0}
end
local version = tonumber(v or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= version then
  return {0, version}
end
local member, prefix = ARGV[3], ARGV[5]
local names = {ARGV[6], ARGV[7], ARGV[8]}
local old = redis.call('HMGET', KEYS[1], '_r', '_s', '_c')
local r_old, s_old = old[1] or '', old[2] or ''
local r, s = ARGV[10], ARGV[11]
if r == '' then
  r = r_old
end
if s == '' then
  s = s_old
end
local created = old[3] or ARGV[4]
local ncreate = tonumber(ARGV[13])
if not v then
  redis.call('HSET', KEYS[1], '_c', created, unpack(ARGV, 14, 13 + ncreate))
  redis.call('ZADD', ARGV[12], created, member)
  zadd_all(lattice(prefix, names, {ARGV[9], r, s}), created, member)
elseif r ~= r_old or s ~= s_old then
  zrem_all(lattice(prefix, names, {ARGV[9], r_old, s_old}), member)
  zadd_all(lattice(prefix, names, {ARGV[9], r, s}), created, member)
end
redis.call('HSET', KEYS[1], '_v', version + 1, '_r', r, '_s', s, unpack(ARGV, 14 + ncreate))
if ARGV[1] == 'update' then
  return {1, version + 1, redis.call('HGETALL', KEYS[1])}
end
return {1, version + 1}
"""
)


def _write_run(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    mode, expected, member, created_arg, prefix = args[:5]
    names = args[5:8]
    workflow, r_new, s_new, run_index, ncreate_arg = args[8:13]
    v = call("HGET", keys[0], b"_v")
    if v is None and mode == b"update":
        return [NOT_FOUND, 0]
    version = int(v or b"0")
    if expected != b"" and int(expected) != version:
        return [CONFLICT, version]
    r_old, s_old, created = call("HMGET", keys[0], b"_r", b"_s", b"_c")
    r_old, s_old = r_old or b"", s_old or b""
    r = r_new or r_old
    s = s_new or s_old
    created = created or created_arg
    ncreate = int(ncreate_arg)
    if v is None:
        call("HSET", keys[0], b"_c", created, *args[13 : 13 + ncreate])
        call("ZADD", run_index, created, member)
        zadd_all(call, lattice(prefix, names, [workflow, r, s]), created, member)
    elif r != r_old or s != s_old:
        zrem_all(call, lattice(prefix, names, [workflow, r_old, s_old]), member)
        zadd_all(call, lattice(prefix, names, [workflow, r, s]), created, member)
    call("HSET", keys[0], b"_v", version + 1, b"_r", r, b"_s", s, *args[13 + ncreate :])
    if mode == b"update":
        return [WRITTEN, version + 1, call("HGETALL", keys[0])]
    return [WRITTEN, version + 1]


WRITE_RUN = Script("write_run", _WRITE_RUN, _write_run)

_GET_RUN_BY_ID = """
-- KEYS[1] the run-id index (the runs with this id, by creation time)
-- ARGV: run prefix
-- Returns {member, fields} of the newest run with the id, or {} when there is none.
local newest = redis.call('ZRANGE', KEYS[1], 0, 0, 'REV')
if not newest[1] then
  return {}
end
return {newest[1], redis.call('HGETALL', ARGV[1] .. newest[1])}
"""


def _get_run_by_id(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    newest = call("ZRANGE", keys[0], 0, 0, b"REV")
    if not newest:
        return []
    return [newest[0], call("HGETALL", args[0] + newest[0])]


GET_RUN_BY_ID = Script("get_run_by_id", _GET_RUN_BY_ID, _get_run_by_id)

# Shared by DELETE_RUN and RESTORE_RUNS: delete a run's hash and its filter index entries
# (not its run-id index entry); whether it existed.
_DROP_RUN_LUA = (
    INDEX_LUA
    + """
local function drop_run(key, member, prefix, names, workflow)
  local old = redis.call('HMGET', key, '_v', '_r', '_s')
  if not old[1] then
    return false
  end
  zrem_all(lattice(prefix, names, {workflow, old[2] or '', old[3] or ''}), member)
  redis.call('DEL', key)
  return true
end
"""
)


def _drop_run(
    call: ScriptCall,
    key: bytes,
    *,
    member: bytes,
    prefix: bytes,
    names: list[bytes],
    workflow: bytes,
) -> bool:
    """Twin of ``drop_run``."""
    v, r, s = call("HMGET", key, b"_v", b"_r", b"_s")
    if v is None:
        return False
    zrem_all(call, lattice(prefix, names, [workflow, r or b"", s or b""]), member)
    call("DEL", key)
    return True


_DELETE_RUN = (
    _DROP_RUN_LUA
    + """
-- KEYS[1] the run's hash
-- ARGV: member, index prefix, the three filter names, escaped workflow name, the run-id
--       index key
-- Returns 1 if the run existed, else 0.
if not drop_run(KEYS[1], ARGV[1], ARGV[2], {ARGV[3], ARGV[4], ARGV[5]}, ARGV[6]) then
  return 0
end
redis.call('ZREM', ARGV[7], ARGV[1])
return 1
"""
)


def _delete_run(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    member, prefix = args[:2]
    names = args[2:5]
    workflow, run_index = args[5:7]
    if not _drop_run(call, keys[0], member=member, prefix=prefix, names=names, workflow=workflow):
        return 0
    call("ZREM", run_index, member)
    return 1


DELETE_RUN = Script("delete_run", _DELETE_RUN, _delete_run)

_RESTORE_RUNS = (
    _DROP_RUN_LUA
    + """
-- KEYS[1] the first run's hash
-- ARGV: run prefix, index prefix, the three filter names, run count, then per run:
--       member, escaped workflow name, escaped resource id ('' for none), escaped status
--       ('' for none), the run-id index key, version, creation score, field count,
--       fields...
-- Replaces each run with the one given, version and times included. Returns the count.
local run_prefix, prefix = ARGV[1], ARGV[2]
local names = {ARGV[3], ARGV[4], ARGV[5]}
local count = tonumber(ARGV[6])
local pos = 7
for _ = 1, count do
  local member, workflow, r, s = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3]
  local created, nfields = ARGV[pos + 6], tonumber(ARGV[pos + 7])
  local key = run_prefix .. member
  drop_run(key, member, prefix, names, workflow)
  redis.call('HSET', key, '_v', ARGV[pos + 5], '_c', created, '_r', r, '_s', s,
    unpack(ARGV, pos + 8, pos + 7 + nfields))
  redis.call('ZADD', ARGV[pos + 4], created, member)
  zadd_all(lattice(prefix, names, {workflow, r, s}), created, member)
  pos = pos + 8 + nfields
end
return count
"""
)


def _restore_runs(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    del keys
    run_prefix, prefix = args[:2]
    names = args[2:5]
    count = int(args[5])
    pos = 6
    for _ in range(count):
        member, workflow, r, s, run_index, version, created, nfields_arg = args[pos : pos + 8]
        nfields = int(nfields_arg)
        key = run_prefix + member
        _drop_run(call, key, member=member, prefix=prefix, names=names, workflow=workflow)
        fields = args[pos + 8 : pos + 8 + nfields]
        call("HSET", key, b"_v", version, b"_c", created, b"_r", r, b"_s", s, *fields)
        call("ZADD", run_index, created, member)
        zadd_all(call, lattice(prefix, names, [workflow, r, s]), created, member)
        pos += 8 + nfields
    return count


RESTORE_RUNS = Script("restore_runs", _RESTORE_RUNS, _restore_runs)
