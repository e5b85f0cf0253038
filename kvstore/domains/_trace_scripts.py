"""The traces domain's scripts (layout 2). Each touches the keys of one bucket only.

Conventions (see :mod:`kvstore.domains.traces` for the key schema):

* ``T`` is a trace id escaped for lex members; a trace's keys are named from its raw id.
* A trace summary is a packed field list (:mod:`kvstore.domains._lua`): the
  :class:`~kvstore.records.TraceSummary` attributes, plus internal fields ``_rp``, ``_rs``,
  ``_ri`` (the rank of its root candidate: has a parent ``1``/``0``, start in microseconds,
  span id; lower is more root-like), ``_st``/``_sk`` (its start in microseconds and as a sort
  key), ``_en`` (its end in microseconds), ``_l`` (the last stream id given out in its
  stream) and ``_e`` (the index prefixes it is listed under, packed as ``<length>:<prefix>``
  each, because a root's attributes make that list open-ended).
* The bucket's span total lives in the summaries hash under the field ``\\0n`` (no escaped
  id holds a NUL), so retention can tell when a bucket holds too many spans.
* Stream ids are ``<ms>-<seq>``: a span's start, lowered to now (a skewed clock must not
  push later ids into the future) and raised to the last id given out (``XADD`` refuses an
  id at or below the stream's last one), so exporters that deliver children before parents
  still get increasing ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvstore.domains._lua import script

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["DELETE_TRACES", "SAVE_SPANS", "TOTAL_FIELD", "pack_prefixes"]

#: The field of the summaries hash that counts the bucket's spans.
TOTAL_FIELD = "\x00n"


def pack_prefixes(prefixes: Iterable[str]) -> bytes:
    """Index prefixes packed into one value, each as ``<byte length>:<prefix>``."""
    out = b""
    for prefix in prefixes:
        raw = prefix.encode()
        out += b"%d:%s" % (len(raw), raw)
    return out


_TRACE_LUA = r"""
local function unpack_prefixes(packed)
  local out = {}
  local pos = 1
  while pos <= #packed do
    local colon = string.find(packed, ':', pos, true)
    local len = tonumber(string.sub(packed, pos, colon - 1))
    out[#out + 1] = string.sub(packed, colon + 1, colon + len)
    pos = colon + len + 1
  end
  return out
end

-- The trace's entries in the bucket's trace index: one per prefix, and 'T' (by start) for
-- retention and export.
local function trace_entries(values, t)
  local tail = '\0' .. values['_sk'] .. '\0' .. t
  local out = {'T' .. tail}
  for _, prefix in ipairs(unpack_prefixes(values['_e'] or '')) do
    out[#out + 1] = prefix .. tail
  end
  return out
end

local function drop_trace(summaries, index, stream, ids, t)
  local packed = redis.call('HGET', summaries, t)
  local existed = packed and 1 or 0
  local spans = redis.call('HLEN', ids)
  if packed then
    local _, values = fields_of(packed)
    redis.call('ZREM', index, unpack(trace_entries(values, t)))
    redis.call('HDEL', summaries, t)
  end
  if spans > 0 then
    redis.call('HINCRBY', summaries, '\0n', -spans)
  end
  -- UNLINK: a long trace's stream is freed off the main thread on Redis.
  redis.call('UNLINK', stream, ids)
  return existed, spans
end
"""

SAVE_SPANS = script(
    "save_spans",
    _TRACE_LUA
    + r"""
-- KEYS: the bucket's summaries hash, its trace index, then per trace its spans stream and
--       its span ids hash (span id -> stream id), in the order of ARGV
-- ARGV: now (ms), trace count, then per trace: T, span count, its best root candidate's
--       rank (has parent, start, span id), its earliest start (microseconds, sort key,
--       stored start_time), its latest end (microseconds or '', stored end_time), the
--       candidate's index prefixes (packed), root field count, root fields, then per span:
--       span id, start (ms), packed span
-- Returns {spans in the bucket, start sort key of its oldest trace or ''}.
local summaries, index = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local pos = 3
local added = 0
for i = 1, tonumber(ARGV[2]) do
  local stream, ids = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local t, nspans = ARGV[pos], tonumber(ARGV[pos + 1])
  local rp, rs, ri = ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4]
  local st, sk, st_field = ARGV[pos + 5], ARGV[pos + 6], ARGV[pos + 7]
  local en, en_field, prefixes = ARGV[pos + 8], ARGV[pos + 9], ARGV[pos + 10]
  local nroot = tonumber(ARGV[pos + 11])
  local root_first, root_last = pos + 12, pos + 11 + nroot
  pos = root_last + 1
  local old = redis.call('HGET', summaries, t)
  local packed = old or '\1'
  local _, values = fields_of(packed)
  local old_entries = old and trace_entries(values, t) or nil
  -- spans
  local last = values['_l'] or '0-0'
  local dash = string.find(last, '-', 1, true)
  local last_ms, last_seq = tonumber(string.sub(last, 1, dash - 1)),
    tonumber(string.sub(last, dash + 1))
  for _ = 1, nspans do
    local sid, ms, span = ARGV[pos], math.min(tonumber(ARGV[pos + 1]), now), ARGV[pos + 2]
    pos = pos + 3
    if ms > last_ms then
      last_ms, last_seq = ms, 0
    else
      last_seq = last_seq + 1
    end
    local previous = redis.call('HGET', ids, sid)
    if previous then
      redis.call('XDEL', stream, previous)
    else
      added = added + 1
    end
    local id = string.format('%d-%d', last_ms, last_seq)
    redis.call('XADD', stream, id, 's', sid, 'd', span)
    redis.call('HSET', ids, sid, id)
  end
  local set = {'_l', string.format('%d-%d', last_ms, last_seq),
               '_n', tostring(redis.call('HLEN', ids))}
  -- summary: earliest start, latest end, most root-like span
  if not values['_st'] or tonumber(st) < tonumber(values['_st']) then
    set[#set + 1] = '_st'
    set[#set + 1] = st
    set[#set + 1] = '_sk'
    set[#set + 1] = sk
    set[#set + 1] = 'start_time'
    set[#set + 1] = st_field
  end
  if en ~= '' and (not values['_en'] or tonumber(en) > tonumber(values['_en'])) then
    set[#set + 1] = '_en'
    set[#set + 1] = en
    set[#set + 1] = 'end_time'
    set[#set + 1] = en_field
  end
  local better = not values['_rp'] or ri == values['_ri']
  if not better then
    local p0, p1 = tonumber(values['_rp']), tonumber(rp)
    better = p1 < p0 or (p1 == p0 and tonumber(rs) < tonumber(values['_rs']))
  end
  if better then
    for _, v in ipairs({'_rp', rp, '_rs', rs, '_ri', ri, '_e', prefixes}) do
      set[#set + 1] = v
    end
    for j = root_first, root_last do
      set[#set + 1] = ARGV[j]
    end
  end
  packed = set_fields(packed, set, 1, #set)
  local _, new_values = fields_of(packed)
  local new_entries = trace_entries(new_values, t)
  if not old_entries or table.concat(old_entries, '\1') ~= table.concat(new_entries, '\1') then
    if old_entries then
      redis.call('ZREM', index, unpack(old_entries))
    end
    local args = {}
    for _, member in ipairs(new_entries) do
      args[#args + 1] = 0
      args[#args + 1] = member
    end
    redis.call('ZADD', index, unpack(args))
  end
  redis.call('HSET', summaries, t, packed)
end
local total = redis.call('HINCRBY', summaries, '\0n', added)
local oldest = redis.call('ZRANGE', index, '[T\0', '(T\1', 'BYLEX', 'LIMIT', 0, 1)
local oldest_key = ''
if oldest[1] then
  oldest_key = string.sub(oldest[1], 3, 18)
end
return {total, oldest_key}
""",
)

DELETE_TRACES = script(
    "delete_traces",
    _TRACE_LUA
    + r"""
-- KEYS: the bucket's summaries hash, its trace index, then per trace its spans stream and
--       its span ids hash, in the order of ARGV
-- ARGV: T for each trace
-- Returns {traces that existed, spans deleted}.
local existed, deleted = 0, 0
for i = 1, #ARGV do
  local e, n = drop_trace(KEYS[1], KEYS[2], KEYS[1 + 2 * i], KEYS[2 + 2 * i], ARGV[i])
  existed = existed + e
  deleted = deleted + n
end
return {existed, deleted}
""",
)
