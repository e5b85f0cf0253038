"""The evals domain's scripts: each Lua source sits next to its Python twin.

Conventions (see also :mod:`kvstore.domains._memory_scripts`):

* ``KEYS[1]`` is the score's hash; index keys are built from prefixes the caller takes
  from :mod:`kvstore.keys` (every key of a namespace shares one hash slot).
* Internal hash fields hold what the score is indexed under, so that replacing or
  deleting it can find its index entries: ``_sc``, ``_en`` and ``_so`` the escaped values
  of its :class:`~kvstore.keys.IndexFamily` filters (scorer, entity, source), ``_ru`` its
  run id and ``_sp`` its span member (``''`` for none).
"""

from __future__ import annotations

from kvstore.domains._base import INDEX_LUA, lattice, zadd_all, zrem_all
from kvstore.drivers.base import Reply, Script, ScriptCall

__all__ = ["DELETE_SCORE", "SAVE_SCORE"]

_UNINDEX_LUA = (
    INDEX_LUA
    + """
-- Remove the score in KEYS[1] from every index it is in; whether it existed.
local function unindex(id, prefix, names, run_prefix, span_prefix)
  local old = redis.call('HMGET', KEYS[1], '_sc', '_en', '_so', '_ru', '_sp')
  if not old[1] then
    return false
  end
  zrem_all(lattice(prefix, names, {old[1], old[2] or '', old[3] or ''}), id)
  if old[4] and old[4] ~= '' then
    redis.call('ZREM', run_prefix .. old[4], id)
  end
  if old[5] and old[5] ~= '' then
    redis.call('ZREM', span_prefix .. old[5], id)
  end
  return true
end
"""
)


def _unindex(
    call: ScriptCall,
    key: bytes,
    *,
    id_: bytes,
    prefix: bytes,
    names: list[bytes],
    run_prefix: bytes,
    span_prefix: bytes,
) -> bool:
    sc, en, so, ru, sp = call("HMGET", key, b"_sc", b"_en", b"_so", b"_ru", b"_sp")
    if sc is None:
        return False
    zrem_all(call, lattice(prefix, names, [sc, en or b"", so or b""]), id_)
    if ru:
        call("ZREM", run_prefix + ru, id_)
    if sp:
        call("ZREM", span_prefix + sp, id_)
    return True


_SAVE_SCORE = (
    _UNINDEX_LUA
    + """
-- KEYS[1] the score's hash
-- ARGV: score id, creation score, index prefix, the three filter names (scorer, entity,
--       source), escaped scorer id, escaped entity ('' for none), escaped source,
--       run-index prefix, run id ('' for none), span-index prefix, span member ('' for
--       none), then the record's fields
-- Replaces any score with the same id. Returns 1.
local id = ARGV[1]
local names = {ARGV[4], ARGV[5], ARGV[6]}
if unindex(id, ARGV[3], names, ARGV[10], ARGV[12]) then
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], '_sc', ARGV[7], '_en', ARGV[8], '_so', ARGV[9],
  '_ru', ARGV[11], '_sp', ARGV[13], unpack(ARGV, 14))
zadd_all(lattice(ARGV[3], names, {ARGV[7], ARGV[8], ARGV[9]}), ARGV[2], id)
if ARGV[11] ~= '' then
  redis.call('ZADD', ARGV[10] .. ARGV[11], ARGV[2], id)
end
if ARGV[13] ~= '' then
  redis.call('ZADD', ARGV[12] .. ARGV[13], ARGV[2], id)
end
return 1
"""
)


def _save_score(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    id_, created, prefix = args[:3]
    names = args[3:6]
    sc, en, so, run_prefix, run_id, span_prefix, span = args[6:13]
    if _unindex(
        call,
        keys[0],
        id_=id_,
        prefix=prefix,
        names=names,
        run_prefix=run_prefix,
        span_prefix=span_prefix,
    ):
        call("DEL", keys[0])
    call(
        "HSET",
        keys[0],
        b"_sc",
        sc,
        b"_en",
        en,
        b"_so",
        so,
        b"_ru",
        run_id,
        b"_sp",
        span,
        *args[13:],
    )
    zadd_all(call, lattice(prefix, names, [sc, en, so]), created, id_)
    if run_id:
        call("ZADD", run_prefix + run_id, created, id_)
    if span:
        call("ZADD", span_prefix + span, created, id_)
    return 1


SAVE_SCORE = Script("save_score", _SAVE_SCORE, _save_score)

_DELETE_SCORE = (
    _UNINDEX_LUA
    + """
-- KEYS[1] the score's hash
-- ARGV: score id, index prefix, the three filter names, run-index prefix, span-index prefix
-- Returns 1 if the score existed, else 0.
if unindex(ARGV[1], ARGV[2], {ARGV[3], ARGV[4], ARGV[5]}, ARGV[6], ARGV[7]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
)


def _delete_score(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    id_, prefix = args[:2]
    names = args[2:5]
    run_prefix, span_prefix = args[5:7]
    if _unindex(
        call,
        keys[0],
        id_=id_,
        prefix=prefix,
        names=names,
        run_prefix=run_prefix,
        span_prefix=span_prefix,
    ):
        call("DEL", keys[0])
        return 1
    return 0


DELETE_SCORE = Script("delete_score", _DELETE_SCORE, _delete_score)
