"""Lua shared by the domains' scripts: packed records and lex index pages.

A domain script is ``PRELUDE`` followed by its own body (``script(name, body)``), so every
script carries the same helpers, and one Lua source is the only implementation of each
operation: Redis runs it, and the memory driver runs it in its embedded Lua.

Packed records (see :func:`kvstore.codec.pack_fields`)
    A record lives in one hash field as a *packed* field list: ``\\0`` followed by the
    encoded document when it is only a document, else ``\\1`` followed by entries
    ``<4 hex digits: name length><name><8 hex digits: value length><value>``.

    * ``fields_of(packed)`` -> ``names, values``: the entries in order and by name;
    * ``packed_of(names, values)``: the inverse;
    * ``set_fields(packed, list, first, last)``: ``packed`` with the name/value pairs
      ``list[first..last]`` set (an update merges without decoding JSON in Lua).

Lex pages
    ``lex_page(key, min, max, offset, count, reverse)`` -> ``total, members``: the members
    of a lex index between two ``ZRANGE BYLEX`` bounds, ``count`` of them from ``offset``
    (from the highest when ``reverse`` is ``'1'``), and how many lie between the bounds.
    Ranks make it O(log n + count) whatever the offset. ``id_of(member)``: the record id
    that ends a member.
"""

from __future__ import annotations

from kvstore.drivers.base import Script

__all__ = ["PRELUDE", "script"]

PRELUDE = r"""
local function fields_of(packed)
  local names, values = {}, {}
  if not packed then
    return names, values
  end
  if string.byte(packed, 1) == 0 then
    names[1] = '_d'
    values['_d'] = string.sub(packed, 2)
    return names, values
  end
  local pos, size = 2, #packed
  while pos <= size do
    local name_len = tonumber(string.sub(packed, pos, pos + 3), 16)
    local name = string.sub(packed, pos + 4, pos + 3 + name_len)
    pos = pos + 4 + name_len
    local value_len = tonumber(string.sub(packed, pos, pos + 7), 16)
    if values[name] == nil then
      names[#names + 1] = name
    end
    values[name] = string.sub(packed, pos + 8, pos + 7 + value_len)
    pos = pos + 8 + value_len
  end
  return names, values
end

local function packed_of(names, values)
  if #names == 1 and names[1] == '_d' then
    return '\0' .. values['_d']
  end
  local parts = {'\1'}
  for _, name in ipairs(names) do
    local value = values[name]
    if value then
      parts[#parts + 1] = string.format('%04x', #name) .. name
        .. string.format('%08x', #value) .. value
    end
  end
  return table.concat(parts)
end

local function set_fields(packed, list, first, last)
  local names, values = fields_of(packed)
  for i = first, last, 2 do
    local name = list[i]
    if values[name] == nil then
      names[#names + 1] = name
    end
    values[name] = list[i + 1]
  end
  return packed_of(names, values)
end

local function below(bound)
  if bound == '-' then
    return nil
  end
  local kind = string.sub(bound, 1, 1) == '[' and '(' or '['
  return kind .. string.sub(bound, 2)
end

local function lex_page(key, min, max, offset, count, reverse)
  local total = redis.call('ZLEXCOUNT', key, min, max)
  if offset >= total or count <= 0 then
    return total, {}
  end
  local first = 0
  local lower = below(min)
  if lower then
    first = redis.call('ZLEXCOUNT', key, '-', lower)
  end
  if reverse == '1' then
    local top = first + total - 1 - offset
    local members = redis.call('ZRANGE', key, math.max(first, top - count + 1), top)
    local out = {}
    for i = #members, 1, -1 do
      out[#out + 1] = members[i]
    end
    return total, out
  end
  local from = first + offset
  return total, redis.call('ZRANGE', key, from, math.min(from + count, first + total) - 1)
end

local function id_of(member)
  -- Anchored: the greedy head finds the last NUL in one pass (unanchored, the matcher
  -- retried from every byte: 0.7 us a member against 0.24).
  return string.match(member, '^.*%z(.*)$')
end
"""


def script(name: str, body: str) -> Script:
    """A registered :class:`Script` made of :data:`PRELUDE` and ``body``."""
    return Script(name, PRELUDE + body)
