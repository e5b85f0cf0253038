"""The traces domain's scripts (layout 2). Each touches the keys of one bucket only.

Conventions (see :mod:`kvstore.domains.traces` for the key schema):

* ``T`` is a trace id escaped for lex members; a trace's keys are named from its raw id.
* A trace summary is a packed field list (:mod:`kvstore.domains._lua`): the
  :class:`~kvstore.records.TraceSummary` attributes, plus internal fields ``_rp``, ``_rs``,
  ``_ri`` (the rank of its root candidate: has a parent ``1``/``0``, start in microseconds,
  span id; lower is more root-like), ``_st``/``_sk`` (its start in microseconds and as a sort
  key), ``_en`` (its end in microseconds), ``_l`` (the last stream id given out in its
  stream), ``_ne`` (how many of its spans have the status ``error``) and ``_x`` (its root's
  index *atoms*, packed as ``<length>:<atom>`` each, because a root's attributes make that
  list open-ended). An atom is one filter value of the root: ``n\0<name>``,
  ``c\0<scope>``, ``a\0<key>\0<JSON value>``, ``s\0<status code>``, ``g\0<tag>``,
  ``v\0<environment>``, ``S\0<service>`` (values escaped for lex members).
  ``index_prefixes`` makes the prefixes a trace is listed under from them: every
  combination of name, scope and one attribute, each other atom alone, and ``e`` while
  ``_ne`` is above 0. Summaries written before atoms existed keep their prefixes in ``_e``
  (the same packing), which is read when ``_x`` is missing.
* A span ids hash maps a span id to its stream id, followed by ``!`` when the span's status
  is ``error``, so that saving it again or updating it keeps ``_ne`` exact.
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

__all__ = [
    "DELETE_TRACES",
    "READ_SPAN",
    "SAVE_SPANS",
    "TOTAL_FIELD",
    "UPDATE_SPAN",
    "pack_prefixes",
]

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

-- The prefixes a root's atoms list its trace under: every combination of name, scope and
-- one attribute, and every other atom alone.
local function index_prefixes(atoms)
  local name, scope, attributes, out = nil, nil, {}, {}
  for _, atom in ipairs(atoms) do
    local kind, rest = string.sub(atom, 1, 1), string.sub(atom, 3)
    if kind == 'n' then
      name = rest
    elseif kind == 'c' then
      scope = rest
    elseif kind == 'a' then
      attributes[#attributes + 1] = rest
    else
      out[#out + 1] = atom
    end
  end
  if not name then
    return out
  end
  out[#out + 1] = 'n\0' .. name
  if scope then
    out[#out + 1] = 'c\0' .. scope
    out[#out + 1] = 'nc\0' .. name .. '\0' .. scope
  end
  for _, a in ipairs(attributes) do
    out[#out + 1] = 'a\0' .. a
    out[#out + 1] = 'na\0' .. name .. '\0' .. a
    if scope then
      out[#out + 1] = 'ca\0' .. scope .. '\0' .. a
      out[#out + 1] = 'nca\0' .. name .. '\0' .. scope .. '\0' .. a
    end
  end
  return out
end

-- The trace's entries in the bucket's trace index: one per prefix, 'e' while one of its
-- spans has an error, and 'T' (by start) for retention and export; sorted, so that two
-- lists compare as sets.
local function trace_entries(values, t)
  local tail = '\0' .. values['_sk'] .. '\0' .. t
  local prefixes
  if values['_x'] then
    prefixes = index_prefixes(unpack_prefixes(values['_x']))
  else
    prefixes = unpack_prefixes(values['_e'] or '')
  end
  if tonumber(values['_ne'] or '0') > 0 then
    prefixes[#prefixes + 1] = 'e'
  end
  local out = {'T' .. tail}
  for _, prefix in ipairs(prefixes) do
    out[#out + 1] = prefix .. tail
  end
  table.sort(out)
  return out
end

-- Move a trace's index entries from `old_entries` (nil: none yet) to its summary's.
local function reindex(index, old_entries, values, t)
  local new_entries = trace_entries(values, t)
  if old_entries and table.concat(old_entries, '\1') == table.concat(new_entries, '\1') then
    return
  end
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

-- A span ids hash value: (stream id, whether the span has an error).
local function span_entry(value)
  if string.sub(value, -1) == '!' then
    return string.sub(value, 1, -2), 1
  end
  return value, 0
end

-- The stream id after `last` (`<ms>-<seq>`) for a span starting at `ms` (nil: no later than
-- `last`): ids only grow.
local function next_id(last, ms)
  local dash = string.find(last, '-', 1, true)
  local last_ms, last_seq = tonumber(string.sub(last, 1, dash - 1)),
    tonumber(string.sub(last, dash + 1))
  if ms and ms > last_ms then
    return ms, 0
  end
  return last_ms, last_seq + 1
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
--       candidate's index atoms (packed), root field count, root fields, then per span:
--       span id, start (ms), '1' if its status is error else '0', packed span
-- Returns {spans in the bucket, start sort key of its oldest trace or ''}.
local summaries, index = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local pos = 3
local added = 0
-- Spans per HMGET and HSET: well within what unpack() takes (Lua's C stack, 8000 slots).
local SLICE = 1000
for i = 1, tonumber(ARGV[2]) do
  local stream, ids = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local t, nspans = ARGV[pos], tonumber(ARGV[pos + 1])
  local rp, rs, ri = ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4]
  local st, sk, st_field = ARGV[pos + 5], ARGV[pos + 6], ARGV[pos + 7]
  local en, en_field, atoms = ARGV[pos + 8], ARGV[pos + 9], ARGV[pos + 10]
  local nroot = tonumber(ARGV[pos + 11])
  local root_first, root_last = pos + 12, pos + 11 + nroot
  pos = root_last + 1
  local old = redis.call('HGET', summaries, t)
  local packed = old or '\1'
  local _, values = fields_of(packed)
  local old_entries = old and trace_entries(values, t) or nil
  -- spans
  local last = values['_l'] or '0-0'
  local errors = tonumber(values['_ne'] or '0')
  -- The span ids hash is read and written once per slice of spans, not once per span: a
  -- redis.call costs a script several times what the command itself does.
  for first = 0, nspans - 1, SLICE do
    local count = math.min(SLICE, nspans - first)
    local sids = {}
    for j = 0, count - 1 do
      sids[j + 1] = ARGV[pos + 4 * j]
    end
    local previous = redis.call('HMGET', ids, unpack(sids))
    local entries = {}
    for j = 1, count do
      local sid, ms, err, span = ARGV[pos], math.min(tonumber(ARGV[pos + 1]), now),
        ARGV[pos + 2], ARGV[pos + 3]
      pos = pos + 4
      local id_ms, id_seq = next_id(last, ms)
      last = string.format('%d-%d', id_ms, id_seq)
      if previous[j] then
        local entry, was_error = span_entry(previous[j])
        redis.call('XDEL', stream, entry)
        errors = errors - was_error
      else
        added = added + 1
      end
      redis.call('XADD', stream, last, 's', sid, 'd', span)
      entries[#entries + 1] = sid
      if err == '1' then
        errors = errors + 1
        entries[#entries + 1] = last .. '!'
      else
        entries[#entries + 1] = last
      end
    end
    redis.call('HSET', ids, unpack(entries))
  end
  local set = {'_l', last, '_n', tostring(redis.call('HLEN', ids)), '_ne', tostring(errors)}
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
    for _, v in ipairs({'_rp', rp, '_rs', rs, '_ri', ri, '_x', atoms}) do
      set[#set + 1] = v
    end
    for j = root_first, root_last do
      set[#set + 1] = ARGV[j]
    end
  end
  packed = set_fields(packed, set, 1, #set)
  local _, new_values = fields_of(packed)
  reindex(index, old_entries, new_values, t)
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

UPDATE_SPAN = script(
    "update_span",
    _TRACE_LUA
    + r"""
-- KEYS: the trace's bucket's summaries hash and trace index, its spans stream, its span ids
--       hash
-- ARGV: T, span id, override count, overrides (name, value, ...: the span's attributes
--       that change), appended events (an encoded list, or ''), end (microseconds or '',
--       and the stored end_time), error ('1' or '0', or '' when the status stays), root
--       field count, root fields (the summary's attributes that change if the span is the
--       trace's root), atoms to drop (packed prefixes: every atom starting with one goes),
--       atoms to add (packed)
-- Returns the span as now stored (packed), or false when the trace holds no such span.
local summaries, index, stream, ids = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local t, sid = ARGV[1], ARGV[2]
local previous = redis.call('HGET', ids, sid)
if not previous then
  return false
end
local entry, was_error = span_entry(previous)
local found = redis.call('XRANGE', stream, entry, entry)
if not found[1] then
  return false
end
local span
local fields = found[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 'd' then
    span = fields[i + 1]
  end
end
local noverrides = tonumber(ARGV[3])
local pos = 4 + 2 * noverrides
local list = {}
for i = 4, pos - 1 do
  list[#list + 1] = ARGV[i]
end
local events, en, en_field, err = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3]
local nroot = tonumber(ARGV[pos + 4])
local root_first, root_last = pos + 5, pos + 4 + nroot
local drops, adds = ARGV[root_last + 1], ARGV[root_last + 2]
if events ~= '' then
  -- Appended events are fields of their own, in order; readers append them to the list.
  local names = fields_of(span)
  local n = 0
  for _, name in ipairs(names) do
    if string.sub(name, 1, 7) == 'events+' then
      n = n + 1
    end
  end
  list[#list + 1] = string.format('events+%06d', n)
  list[#list + 1] = events
end
span = set_fields(span, list, 1, #list)
local old = redis.call('HGET', summaries, t)
local packed = old or '\1'
local _, values = fields_of(packed)
local old_entries = old and trace_entries(values, t) or nil
local id_ms, id_seq = next_id(values['_l'] or '0-0', nil)
local id = string.format('%d-%d', id_ms, id_seq)
redis.call('XDEL', stream, entry)
redis.call('XADD', stream, id, 's', sid, 'd', span)
local is_error = was_error
if err ~= '' then
  is_error = tonumber(err)
end
redis.call('HSET', ids, sid, is_error == 1 and id .. '!' or id)
local errors = tonumber(values['_ne'] or '0') + is_error - was_error
local set = {'_l', id, '_ne', tostring(errors)}
if en ~= '' and (not values['_en'] or tonumber(en) > tonumber(values['_en'])) then
  set[#set + 1] = '_en'
  set[#set + 1] = en
  set[#set + 1] = 'end_time'
  set[#set + 1] = en_field
end
if values['_ri'] == sid then
  for j = root_first, root_last do
    set[#set + 1] = ARGV[j]
  end
  if values['_x'] then
    local kept = {}
    local dropped = unpack_prefixes(drops)
    for _, atom in ipairs(unpack_prefixes(values['_x'])) do
      local keep = true
      for _, drop in ipairs(dropped) do
        if string.sub(atom, 1, #drop) == drop then
          keep = false
        end
      end
      if keep then
        kept[#kept + 1] = atom
      end
    end
    for _, atom in ipairs(unpack_prefixes(adds)) do
      kept[#kept + 1] = atom
    end
    local out = {}
    for _, atom in ipairs(kept) do
      out[#out + 1] = #atom .. ':' .. atom
    end
    set[#set + 1] = '_x'
    set[#set + 1] = table.concat(out)
  end
end
-- A span's trace always has its summary (one script writes both); never make half of one.
if old then
  packed = set_fields(packed, set, 1, #set)
  local _, new_values = fields_of(packed)
  reindex(index, old_entries, new_values, t)
  redis.call('HSET', summaries, t, packed)
end
return span
""",
)

READ_SPAN = script(
    "read_span",
    _TRACE_LUA
    + r"""
-- KEYS: the trace's bucket's summaries hash, its spans stream, its span ids hash
-- ARGV: T, then a span id, or '' for the trace's root (the summary's root span)
-- Returns the span (packed), or false.
local sid = ARGV[2]
if sid == '' then
  local packed = redis.call('HGET', KEYS[1], ARGV[1])
  if not packed then
    return false
  end
  local _, values = fields_of(packed)
  sid = values['_ri']
  if not sid then
    return false
  end
end
local value = redis.call('HGET', KEYS[3], sid)
if not value then
  return false
end
local entry = span_entry(value)
local found = redis.call('XRANGE', KEYS[2], entry, entry)
if not found[1] then
  return false
end
local fields = found[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 'd' then
    return fields[i + 1]
  end
end
return false
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
