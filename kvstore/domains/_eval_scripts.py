"""The evals domain's scripts (layout 2). Each touches the keys of one bucket only.

A score record is a packed document (:mod:`kvstore.domains._lua`) with internal fields that
say what it is indexed under, escaped for lex members (``''``: none): ``_c`` (creation sort
key), ``_sc`` (scorer), ``_et``/``_ei`` (entity type and id), ``_so`` (source), ``_ru`` (run
id), ``_tr``/``_sp`` (trace and span ids).
"""

from __future__ import annotations

from kvstore.domains._lua import script

__all__ = ["DELETE_SCORE", "WRITE_SCORES"]

# A score's index entries: every combination of scorer (s), entity (e) and source (o), its
# run (r) and its span (p). Writers and deleters share this one list.
_SCORE_LUA = r"""
local function score_entries(v, id)
  local tail = '\0' .. v['_c'] .. '\0' .. id
  local sc, so = v['_sc'], v['_so']
  local e = ''
  if v['_et'] ~= '' then
    e = v['_et'] .. '\0' .. v['_ei']
  end
  local out = {'all' .. tail, 's\0' .. sc .. tail, 'o\0' .. so .. tail,
               'so\0' .. sc .. '\0' .. so .. tail}
  if e ~= '' then
    out[#out + 1] = 'e\0' .. e .. tail
    out[#out + 1] = 'se\0' .. sc .. '\0' .. e .. tail
    out[#out + 1] = 'eo\0' .. e .. '\0' .. so .. tail
    out[#out + 1] = 'seo\0' .. sc .. '\0' .. e .. '\0' .. so .. tail
  end
  if v['_ru'] ~= '' then
    out[#out + 1] = 'r\0' .. v['_ru'] .. tail
  end
  if v['_tr'] ~= '' then
    out[#out + 1] = 'p\0' .. v['_tr'] .. '\0' .. v['_sp'] .. tail
  end
  return out
end

local function unindex_score(index, id, packed)
  local _, values = fields_of(packed)
  redis.call('ZREM', index, unpack(score_entries(values, id)))
end
"""

WRITE_SCORES = script(
    "write_scores",
    _SCORE_LUA
    + r"""
-- KEYS: the bucket's scores hash, its score index
-- ARGV: count, then per score: its escaped id, its packed record
-- Creates or replaces each score and its index entries.
local pos = 2
for _ = 1, tonumber(ARGV[1]) do
  local id, packed = ARGV[pos], ARGV[pos + 1]
  pos = pos + 2
  local old = redis.call('HGET', KEYS[1], id)
  if old then
    unindex_score(KEYS[2], id, old)
  end
  local _, values = fields_of(packed)
  local args = {}
  for _, member in ipairs(score_entries(values, id)) do
    args[#args + 1] = 0
    args[#args + 1] = member
  end
  redis.call('ZADD', KEYS[2], unpack(args))
  redis.call('HSET', KEYS[1], id, packed)
end
return 1
""",
)

DELETE_SCORE = script(
    "delete_score",
    _SCORE_LUA
    + r"""
-- KEYS: the bucket's scores hash, its score index
-- ARGV: the score's escaped id
-- Returns 1 if the score existed, else 0.
local packed = redis.call('HGET', KEYS[1], ARGV[1])
if not packed then
  return 0
end
unindex_score(KEYS[2], ARGV[1], packed)
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
""",
)
