"""The evals domain's scripts (layout 2). Each touches the keys of one bucket only.

A score record is a packed document (:mod:`kvstore.domains._lua`) with internal fields that
say what it is indexed under, escaped for lex members (``''``: none): ``_c`` (creation sort
key), ``_sc`` (scorer), ``_et``/``_ei`` (entity type and id), ``_so`` (source), ``_ru`` (run
id), ``_tr``/``_sp`` (trace and span ids). Scores saved since the value index and the
aggregates exist also carry ``_v`` (the value's sort key: 16 hex digits), ``_x`` (the value
in decimal, exact), ``_h`` and ``_dy`` (the sort keys of the hour and the day it was made
in), and ``_m``: its indexed metadata, a packed field list of escaped keys and their values
escaped in JSON. A record without ``_v`` or ``_m`` (saved before they existed) is in neither
the value index and the aggregates nor the metadata index, and leaves none when it goes.

Aggregates: per scorer and period (``h`` hour or ``d`` day), the bucket's ``score_values``
holds ``<period kind>\0<scorer>\0<period>\0<value>\0<id>`` for every score, so the lowest
and highest are the first and the last member under a prefix, exact after any delete; and
``score_sums`` holds ``<count> <partial> <partial>...``: the count and the exact sum as
non-overlapping doubles (Shewchuk's expansion, the one ``math.fsum`` keeps), so adding a
score and taking it away again leaves the sum exactly as it was. Work per score is bounded:
non-overlapping partials are bounded in number by the doubles' exponent range, not by the
number of scores.
"""

from __future__ import annotations

from kvstore.domains._lua import script

__all__ = ["DELETE_SCORE", "SCORE_STATS", "WRITE_SCORES"]

# A score's index entries: every combination of scorer (s), entity (e) and source (o) by time,
# and (``v`` + the same tag) by value, its metadata (m, sm), its run (r) and its span (p); and
# what it adds to the aggregates. Writers and deleters share this one list.
_SCORE_LUA = r"""
local function score_entries(v, id)
  local tail = '\0' .. v['_c'] .. '\0' .. id
  local vtail = v['_v'] and ('\0' .. v['_v'] .. tail)
  local sc, so = '\0' .. v['_sc'], '\0' .. v['_so']
  local combos = {{'', ''}, {'s', sc}, {'o', so}, {'so', sc .. so}}
  if v['_et'] ~= '' then
    local e = '\0' .. v['_et'] .. '\0' .. v['_ei']
    combos[5] = {'e', e}
    combos[6] = {'se', sc .. e}
    combos[7] = {'eo', e .. so}
    combos[8] = {'seo', sc .. e .. so}
  end
  local out = {}
  for _, c in ipairs(combos) do
    out[#out + 1] = (c[1] == '' and 'all' or c[1]) .. c[2] .. tail
    if vtail then
      out[#out + 1] = 'v' .. c[1] .. c[2] .. vtail
    end
  end
  if v['_m'] then
    -- Its indexed metadata: by key and value (m), and with its scorer (sm).
    local names, pairs_ = fields_of(v['_m'])
    for _, key in ipairs(names) do
      local m = '\0' .. key .. '\0' .. pairs_[key]
      out[#out + 1] = 'm' .. m .. tail
      out[#out + 1] = 'sm' .. sc .. m .. tail
    end
  end
  if v['_ru'] ~= '' then
    out[#out + 1] = 'r\0' .. v['_ru'] .. tail
  end
  if v['_tr'] ~= '' then
    out[#out + 1] = 'p\0' .. v['_tr'] .. '\0' .. v['_sp'] .. tail
  end
  return out
end

-- The score's periods: {sums field, values member} for its hour and its day.
local function score_periods(v, id)
  local out = {}
  for _, p in ipairs({{'h', v['_h']}, {'d', v['_dy']}}) do
    local field = p[1] .. '\0' .. v['_sc'] .. '\0' .. p[2]
    out[#out + 1] = {field, field .. '\0' .. v['_v'] .. '\0' .. id}
  end
  return out
end

-- Adds x to a period's count (by delta) and exact sum.
local function add_to_sums(key, field, x, delta)
  local old = redis.call('HGET', key, field)
  local count, partials = 0, {}
  if old then
    for word in string.gmatch(old, '%S+') do
      partials[#partials + 1] = tonumber(word)
    end
    count = table.remove(partials, 1)
  end
  count = count + delta
  if count <= 0 then
    redis.call('HDEL', key, field)
    return
  end
  local out = {}
  for _, y in ipairs(partials) do
    if math.abs(x) < math.abs(y) then
      x, y = y, x
    end
    local hi = x + y
    if hi == math.huge or hi == -math.huge then
      -- The sum leaves the doubles: keep both terms, whose sum is still the exact one.
      out[#out + 1] = y
    else
      local lo = y - (hi - x)
      if lo ~= 0 then
        out[#out + 1] = lo
      end
      x = hi
    end
  end
  if x ~= 0 then
    out[#out + 1] = x
  end
  local words = {string.format('%d', count)}
  for _, p in ipairs(out) do
    words[#words + 1] = string.format('%.17g', p)
  end
  redis.call('HSET', key, field, table.concat(words, ' '))
end

-- KEYS of the callers: scores hash, score index, score values, score sums.
local function unindex_score(id, packed)
  local _, values = fields_of(packed)
  redis.call('ZREM', KEYS[2], unpack(score_entries(values, id)))
  if values['_v'] then
    for _, p in ipairs(score_periods(values, id)) do
      redis.call('ZREM', KEYS[3], p[2])
      add_to_sums(KEYS[4], p[1], -tonumber(values['_x']), -1)
    end
  end
end

local function index_score(id, packed)
  local _, values = fields_of(packed)
  local args = {}
  for _, member in ipairs(score_entries(values, id)) do
    args[#args + 1] = 0
    args[#args + 1] = member
  end
  redis.call('ZADD', KEYS[2], unpack(args))
  for _, p in ipairs(score_periods(values, id)) do
    redis.call('ZADD', KEYS[3], 0, p[2])
    add_to_sums(KEYS[4], p[1], tonumber(values['_x']), 1)
  end
end
"""

WRITE_SCORES = script(
    "write_scores",
    _SCORE_LUA
    + r"""
-- KEYS: the bucket's scores hash, its score index, its score values, its score sums
-- ARGV: count, then per score: its escaped id, its packed record
-- Creates or replaces each score, its index entries and its share of the aggregates.
local pos = 2
for _ = 1, tonumber(ARGV[1]) do
  local id, packed = ARGV[pos], ARGV[pos + 1]
  pos = pos + 2
  local old = redis.call('HGET', KEYS[1], id)
  if old then
    unindex_score(id, old)
  end
  index_score(id, packed)
  redis.call('HSET', KEYS[1], id, packed)
end
return 1
""",
)

DELETE_SCORE = script(
    "delete_score",
    _SCORE_LUA
    + r"""
-- KEYS: the bucket's scores hash, its score index, its score values, its score sums
-- ARGV: the score's escaped id
-- Returns 1 if the score existed, else 0.
local packed = redis.call('HGET', KEYS[1], ARGV[1])
if not packed then
  return 0
end
unindex_score(ARGV[1], packed)
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
""",
)

SCORE_STATS = script(
    "score_stats",
    r"""
-- KEYS: the bucket's score values, its score sums
-- ARGV: the period kind ('h' or 'd'), the escaped scorer, then the periods' sort keys
-- Returns per period {sums or false, lowest value's sort key or false, highest's or false}:
-- 1 + 2 * periods commands whatever is stored.
local fields = {}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[1] .. '\0' .. ARGV[2] .. '\0' .. ARGV[i]
end
local sums = redis.call('HMGET', KEYS[2], unpack(fields))
local out = {}
for i, field in ipairs(fields) do
  local head = field .. '\0'
  local upper = '(' .. field .. '\1'
  local low = redis.call('ZRANGE', KEYS[1], '[' .. head, upper, 'BYLEX', 'LIMIT', 0, 1)
  local high = redis.call('ZRANGE', KEYS[1], upper, '[' .. head, 'BYLEX', 'REV', 'LIMIT', 0, 1)
  out[i] = {sums[i], low[1] and string.sub(low[1], #head + 1, #head + 16) or false,
            high[1] and string.sub(high[1], #head + 1, #head + 16) or false}
end
return out
""",
)
