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

__all__ = ["DELETE_SCORE", "WRITE_SCORES"]

_UNINDEX_LUA = (
    INDEX_LUA
    + """
-- Remove the score in the hash ``key`` from every index it is in; whether it existed.
local function unindex(key, id, prefix, names, run_prefix, span_prefix)
  local old = redis.call('HMGET', key, '_sc', '_en', '_so', '_ru', '_sp')
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


# Writes one score of WRITE_SCORES. ``ix`` is {index prefix, the three filter names,
# run-index prefix, span-index prefix}; ``s`` is the score's part of ARGV from ``pos``:
# score id, creation score, escaped scorer id, escaped entity ('' for none), escaped source,
# run id ('' for none), span member ('' for none), then its fields up to ARGV[last].
_WRITE_SCORE_LUA = (
    _UNINDEX_LUA
    + """
local function write_score(key, ix, pos, last)
  local id, created = ARGV[pos], ARGV[pos + 1]
  local sc, en, so, run, span = ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4], ARGV[pos + 5],
    ARGV[pos + 6]
  local names = {ix[2], ix[3], ix[4]}
  if unindex(key, id, ix[1], names, ix[5], ix[6]) then
    redis.call('DEL', key)
  end
  redis.call('HSET', key, '_sc', sc, '_en', en, '_so', so, '_ru', run, '_sp', span,
    unpack(ARGV, pos + 7, last))
  zadd_all(lattice(ix[1], names, {sc, en, so}), created, id)
  if run ~= '' then
    redis.call('ZADD', ix[5] .. run, created, id)
  end
  if span ~= '' then
    redis.call('ZADD', ix[6] .. span, created, id)
  end
end
"""
)


def _write_score(call: ScriptCall, key: bytes, ix: list[bytes], score: list[bytes]) -> None:
    """Twin of ``write_score``: ``score`` is the score's part of ARGV, fields included."""
    prefix, names, run_prefix, span_prefix = ix[0], ix[1:4], ix[4], ix[5]
    id_, created, sc, en, so, run_id, span = score[:7]
    if _unindex(
        call,
        key,
        id_=id_,
        prefix=prefix,
        names=names,
        run_prefix=run_prefix,
        span_prefix=span_prefix,
    ):
        call("DEL", key)
    call(
        "HSET",
        key,
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
        *score[7:],
    )
    zadd_all(call, lattice(prefix, names, [sc, en, so]), created, id_)
    if run_id:
        call("ZADD", run_prefix + run_id, created, id_)
    if span:
        call("ZADD", span_prefix + span, created, id_)


_WRITE_SCORES = (
    _WRITE_SCORE_LUA
    + """
-- KEYS[1] the first score's hash
-- ARGV: score prefix, index prefix, the three filter names (scorer, entity, source),
--       run-index prefix, span-index prefix, score count, then per score: field count,
--       id, creation score, escaped scorer id, escaped entity ('' for none), escaped
--       source, run id ('' for none), span member ('' for none), then its fields
-- Replaces each score with the one given (any other score is kept). Returns the count.
local ix = {ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]}
local count = tonumber(ARGV[8])
local pos = 9
for _ = 1, count do
  local nfields = tonumber(ARGV[pos])
  write_score(ARGV[1] .. ARGV[pos + 1], ix, pos + 1, pos + 7 + nfields)
  pos = pos + 8 + nfields
end
return count
"""
)


def _write_scores(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    del keys
    score_prefix, ix, count = args[0], args[1:7], int(args[7])
    pos = 8
    for _ in range(count):
        nfields = int(args[pos])
        score = args[pos + 1 : pos + 8 + nfields]
        _write_score(call, score_prefix + score[0], ix, score)
        pos += 8 + nfields
    return count


WRITE_SCORES = Script("write_scores", _WRITE_SCORES, _write_scores)

_DELETE_SCORE = (
    _UNINDEX_LUA
    + """
-- KEYS[1] the score's hash
-- ARGV: score id, index prefix, the three filter names, run-index prefix, span-index prefix
-- Returns 1 if the score existed, else 0.
if unindex(KEYS[1], ARGV[1], ARGV[2], {ARGV[3], ARGV[4], ARGV[5]}, ARGV[6], ARGV[7]) then
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
