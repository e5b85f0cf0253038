"""The long-term store's script (layout 2): one call per bucket and batch.

Conventions (see :mod:`kvstore.domains.langgraph_items` for the key schema):

* ``id`` is an item's id: the JSON array of its namespace's labels and its key, which holds
  no NUL, so it can end a lex index member.
* An item record is a packed field list (:mod:`kvstore.domains._lua`): ``_i`` its id, ``_d``
  the encoded value, ``_c`` and ``_s`` the creation and update sort keys
  (:func:`kvstore.keys.lex_time`),
  ``_t`` its time to live in ms (``''``: none), ``_e`` when it expires in ms (``''``: never),
  ``_n`` and ``_r`` its namespace encoded (labels + NUL each) and reversed, ``_l`` the index
  levels (every prefix of its namespace, encoded, + NUL) and ``_k`` its filter tokens, both
  as length-prefixed lists (``%08x`` + bytes each). Its index entries are every
  ``<level><token><_s>\\0<id>``, so a record carries what it takes to unindex it.
"""

from __future__ import annotations

from kvstore.domains._lua import script

__all__ = ["ITEM_BATCH"]

ITEM_BATCH = script(
    "item_batch",
    r"""
-- KEYS: the bucket's items hash, item index, expiry set, namespace index, reversed
--       namespace index, namespace counts hash
-- ARGV: now (ms), now (sort key), how many expired items to purge first, then operations:
--   'g', id, refresh ('1'/'0')                          -> packed record or false
--   's', n, n prefixes, driver (1-based, 0: choose), after (the walk's last entry
--        without its prefix, '': from the top), need, budget, refresh, refresh from
--                                                       -> {where to resume ('': the end),
--                                                           driver, id, record, ...}
--   'n', index ('p'/'r'), min, max, skip, count         -> namespace members
--   'p', id, value, ttl (ms, ''), levels, tokens, namespace, reversed namespace -> 1
--   'r', id, value, created, updated (sort keys), ttl, expires (ms, ''), levels, tokens,
--        namespace, reversed namespace (a restore: times as given)   -> 1
--   'd', id                                             -> 1
-- Returns {more expired items left ('1'/'0'), the reply of each operation...}. Reads come
-- first in ARGV, so they see the bucket as it was before the batch's writes.
local items, index, expiry, spaces, rspaces, counts =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now = tonumber(ARGV[1])
local now_key = ARGV[2]

local function list_of(s)
  local out, pos = {}, 1
  while pos <= #s do
    local n = tonumber(string.sub(s, pos, pos + 7), 16)
    out[#out + 1] = string.sub(s, pos + 8, pos + 7 + n)
    pos = pos + 8 + n
  end
  return out
end

-- unpack() is bounded by Lua's C stack: large argument lists go in slices.
local function in_slices(command, key, list, pairs_of_zero)
  local i = 1
  while i <= #list do
    local args = {}
    for j = i, math.min(i + 499, #list) do
      if pairs_of_zero then
        args[#args + 1] = 0
      end
      args[#args + 1] = list[j]
    end
    redis.call(command, key, unpack(args))
    i = i + 500
  end
end

local function entries(values, id)
  local out = {}
  local tail = values['_s'] .. '\0' .. id
  local tokens = list_of(values['_k'])
  for _, level in ipairs(list_of(values['_l'])) do
    for _, token in ipairs(tokens) do
      out[#out + 1] = level .. token .. tail
    end
  end
  return out
end

local function live(values)
  return values['_e'] == '' or tonumber(values['_e']) > now
end

local function remove(id)
  local packed = redis.call('HGET', items, id)
  if not packed then
    return
  end
  local _, values = fields_of(packed)
  in_slices('ZREM', index, entries(values, id), false)
  redis.call('HDEL', items, id)
  redis.call('ZREM', expiry, id)
  local ns = values['_n']
  if redis.call('HINCRBY', counts, ns, -1) <= 0 then
    redis.call('HDEL', counts, ns)
    redis.call('ZREM', spaces, ns)
    redis.call('ZREM', rspaces, values['_r'])
  end
end

local function refreshed(id, packed, values)
  if values['_t'] == '' then
    return packed
  end
  local expires = string.format('%.0f', now + tonumber(values['_t']))
  packed = set_fields(packed, {'_e', expires}, 1, 2)
  redis.call('HSET', items, id, packed)
  redis.call('ZADD', expiry, expires, id)
  return packed
end

-- Write an item; created and expires nil: keep the stored creation time, expire ttl from now.
local function write(id, value, created, updated, ttl, expires, levels, tokens, ns, rns)
  local old = redis.call('HGET', items, id)
  if old then
    local _, old_values = fields_of(old)
    created = created or old_values['_c']
    in_slices('ZREM', index, entries(old_values, id), false)
  elseif redis.call('HINCRBY', counts, ns, 1) == 1 then
    redis.call('ZADD', spaces, 0, ns)
    redis.call('ZADD', rspaces, 0, rns)
  end
  if not expires then
    expires = ''
    if ttl ~= '' then
      expires = string.format('%.0f', now + tonumber(ttl))
    end
  end
  if expires ~= '' then
    redis.call('ZADD', expiry, expires, id)
  else
    redis.call('ZREM', expiry, id)
  end
  local names = {'_i', '_d', '_c', '_s', '_t', '_e', '_n', '_r', '_l', '_k'}
  local values = {_i = id, _d = value, _c = created or updated, _s = updated, _t = ttl,
    _e = expires, _n = ns, _r = rns, _l = levels, _k = tokens}
  redis.call('HSET', items, id, packed_of(names, values))
  in_slices('ZADD', index, entries(values, id), true)
end

local function search(prefixes, driver, after, need, budget, refresh, refresh_from)
  if driver == 0 then
    -- Walk the rarest condition; check the others entry by entry.
    local best = nil
    for i, p in ipairs(prefixes) do
      local n = redis.call('ZLEXCOUNT', index, '[' .. p, '(' .. string.sub(p, 1, -2) .. '\1')
      if best == nil or n < best then
        best, driver = n, i
      end
    end
  end
  local p = prefixes[driver]
  -- Resume below the last entry walked (not at a rank: purges and writes move ranks).
  local high = '(' .. string.sub(p, 1, -2) .. '\1'
  if after ~= '' then
    high = '(' .. p .. after
  end
  local _, members = lex_page(index, '[' .. p, high, 0, budget, '1')
  local out = {'', driver}
  local found = 0
  for _, member in ipairs(members) do
    local tail = string.sub(member, #p + 1)
    out[1] = tail
    local ok = true
    for i, q in ipairs(prefixes) do
      if i ~= driver and not redis.call('ZSCORE', index, q .. tail) then
        ok = false
        break
      end
    end
    if ok then
      local id = id_of(member)
      local packed = redis.call('HGET', items, id)
      if packed then
        local _, values = fields_of(packed)
        if live(values) then
          found = found + 1
          if refresh and found > refresh_from then
            packed = refreshed(id, packed, values)
          end
          out[#out + 1] = id
          out[#out + 1] = packed
          if found >= need then
            return out
          end
        end
      end
    end
  end
  if #members < budget then
    out[1] = ''
  end
  return out
end

local limit = tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  remove(id)
end
local more = '0'
if #expired == limit and redis.call('ZCOUNT', expiry, '-inf', now) > 0 then
  more = '1'
end
local out = {more}
local pos = 4
while pos <= #ARGV do
  local op = ARGV[pos]
  if op == 'g' then
    local id = ARGV[pos + 1]
    local packed = redis.call('HGET', items, id)
    local reply = false
    if packed then
      local _, values = fields_of(packed)
      if live(values) then
        reply = packed
        if ARGV[pos + 2] == '1' then
          reply = refreshed(id, packed, values)
        end
      end
    end
    out[#out + 1] = reply
    pos = pos + 3
  elseif op == 's' then
    local n = tonumber(ARGV[pos + 1])
    local prefixes = {}
    for i = 1, n do
      prefixes[i] = ARGV[pos + 1 + i]
    end
    local at = pos + 2 + n
    out[#out + 1] = search(prefixes, tonumber(ARGV[at]), ARGV[at + 1],
      tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), ARGV[at + 4] == '1',
      tonumber(ARGV[at + 5]))
    pos = at + 6
  elseif op == 'n' then
    local key = ARGV[pos + 1] == 'r' and rspaces or spaces
    out[#out + 1] = redis.call('ZRANGEBYLEX', key, ARGV[pos + 2], ARGV[pos + 3], 'LIMIT',
      tonumber(ARGV[pos + 4]), tonumber(ARGV[pos + 5]))
    pos = pos + 6
  elseif op == 'p' then
    write(ARGV[pos + 1], ARGV[pos + 2], nil, now_key, ARGV[pos + 3], nil, ARGV[pos + 4],
      ARGV[pos + 5], ARGV[pos + 6], ARGV[pos + 7])
    out[#out + 1] = 1
    pos = pos + 8
  elseif op == 'r' then
    write(ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4], ARGV[pos + 5],
      ARGV[pos + 6], ARGV[pos + 7], ARGV[pos + 8], ARGV[pos + 9], ARGV[pos + 10])
    out[#out + 1] = 1
    pos = pos + 11
  elseif op == 'd' then
    remove(ARGV[pos + 1])
    out[#out + 1] = 1
    pos = pos + 2
  else
    return redis.error_reply('unknown item operation ' .. tostring(op))
  end
end
return out
""",
)
