"""What every domain shares: its driver, key schema and format, and small helpers.

Also the pieces of Lua that several domains' scripts use, each with its Python twin:
:data:`INDEX_LUA` (the indexes of an :class:`~kvstore.keys.IndexFamily` a record is in)
and :data:`PAGE_INDEX` (one page of a time index with each record's fields).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

# The argument checks live in kvstore._checks; domains import them from here.
from kvstore._checks import check_count, check_id, check_optional_id, check_page, offset_cursor
from kvstore.codec import Format, FormatName, get_format
from kvstore.drivers.base import Reply, Script, ScriptCall
from kvstore.errors import CorruptRecordError, DriverError, ValidationError
from kvstore.records import Chunk, Page

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from kvstore.codec import RecordCodec
    from kvstore.drivers.base import Arg, Driver
    from kvstore.keys import Keys

__all__ = [
    "INDEX_LUA",
    "PAGE_INDEX",
    "WINDOW_LUA",
    "Domain",
    "as_list",
    "check_count",
    "check_id",
    "check_optional_id",
    "check_page",
    "chunk_of_index",
    "decode_with_counters",
    "encode_record",
    "just_below",
    "lattice",
    "make_page",
    "micros",
    "next_offset_cursor",
    "offset_cursor",
    "page_of_index",
    "page_slice",
    "score_bound",
    "time_window",
    "window",
    "zadd_all",
    "zrem_all",
]

S = TypeVar("S", bound=msgspec.Struct)
T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Domain:
    """Base of the domain stores: holds what a call needs to build one batch or script."""

    __slots__ = ("_driver", "_format", "_keys")

    def __init__(self, driver: Driver, keys: Keys, format_name: FormatName = "json") -> None:
        self._driver = driver
        self._keys = keys
        self._format: Format = get_format(format_name)


def micros(moment: datetime) -> int:
    """``moment`` as whole microseconds since the Unix epoch: the score of time indexes.

    Integers below 2**53 are exact in a double, which covers the years 1685 to 2255.
    """
    if moment.tzinfo is None:
        raise ValidationError("datetimes must be timezone-aware", field="datetime")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def score_bound(moment: datetime | None, *, exclusive: bool, lower: bool) -> str:
    """A ``ZRANGE BYSCORE``-style bound for an optional time (``-inf``/``+inf`` when None)."""
    if moment is None:
        return "-inf" if lower else "+inf"
    return ("(" if exclusive else "") + str(micros(moment))


def page_slice(page: int, per_page: int) -> tuple[int, int]:
    """The inclusive rank range ``(start, stop)`` of a page."""
    start = page * per_page
    return start, start + per_page - 1


def as_list(reply: Reply) -> list[Any]:
    """``reply`` as the array a script or command was written to return."""
    if not isinstance(reply, list):
        raise DriverError(f"expected an array reply, got {type(reply).__name__}")
    return reply


def time_window(from_date: Any, to_date: Any) -> tuple[str, str]:
    """Score bounds of an inclusive time window; either end may be None (open).

    Raises:
        ValidationError: naming ``from_date`` or ``to_date`` when it is not an aware
            datetime.
    """
    for name, value in (("from_date", from_date), ("to_date", to_date)):
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise ValidationError("expected a timezone-aware datetime", field=name)
    return (
        score_bound(from_date, exclusive=False, lower=True),
        score_bound(to_date, exclusive=False, lower=False),
    )


def make_page(items: list[Any], total: int, page: int, per_page: int) -> Page[Any]:
    """A :class:`Page` of a listing by page number."""
    return Page(
        items=items,
        total=total,
        page=page,
        per_page=per_page,
        has_more=(page + 1) * per_page < total,
    )


def encode_record(codec: RecordCodec[S], record: S, where: str) -> list[bytes]:
    """``codec.to_fields(record)``, raising ValidationError for a value it cannot encode.

    :func:`~kvstore.codec.validate` proves a record encodes as JSON; MessagePack refuses a
    few values JSON takes (integers beyond 64 bits), which surface here.

    Raises:
        ValidationError: naming ``where`` and the attribute, e.g. ``spans[2].attributes``.
    """
    return codec.fields(record, where)


def decode_with_counters(
    codec: RecordCodec[S], flat: Sequence[bytes], key: str, counters: Mapping[bytes, str]
) -> S:
    """Decode a hash whose integer attributes live in internal decimal fields.

    Scripts keep counters (a run's version, a trace's span count) as plain decimals so that
    Lua can do arithmetic on them whatever the codec; ``counters`` maps each such internal
    field to the record attribute it fills.

    Raises:
        CorruptRecordError: naming ``key`` when a counter is not an integer or the record
            does not decode.
    """
    extra: list[bytes] = []
    for i in range(0, len(flat) - 1, 2):
        name = counters.get(flat[i])
        if name is not None:
            try:
                number = int(flat[i + 1])
            except ValueError:
                raise CorruptRecordError(key, f"{flat[i]!r} is not an integer") from None
            extra += (name.encode(), codec.encode(number))
    return codec.from_hash([*flat, *extra], key)


# -- indexes of an IndexFamily, in Lua and Python ------------------------------------------

#: Lua helpers for scripts that maintain an :class:`~kvstore.keys.IndexFamily`.
#: ``lattice(prefix, names, values)`` lists the family's sets that a record with these
#: filter values belongs to: ``values[i]`` is the escaped value of filter ``names[i]``
#: (:meth:`~kvstore.keys.IndexFamily.escaped`), or ``''`` when the record has none. It
#: builds exactly the keys :meth:`~kvstore.keys.IndexFamily.key` names.
INDEX_LUA = """
local function lattice(prefix, names, values)
  local keys = {}
  for mask = 0, 2 ^ #names - 1 do
    local tag, parts, complete = {}, '', true
    for i = 1, #names do
      if math.floor(mask / 2 ^ (i - 1)) % 2 == 1 then
        if values[i] == '' then
          complete = false
        end
        tag[#tag + 1] = names[i]
        parts = parts .. ':' .. values[i]
      end
    end
    if complete then
      if #tag == 0 then
        keys[#keys + 1] = prefix .. 'all'
      else
        keys[#keys + 1] = prefix .. table.concat(tag, '+') .. parts
      end
    end
  end
  return keys
end
local function zadd_all(keys, score, member)
  for _, key in ipairs(keys) do
    redis.call('ZADD', key, score, member)
  end
end
local function zrem_all(keys, member)
  for _, key in ipairs(keys) do
    redis.call('ZREM', key, member)
  end
end
"""


def lattice(prefix: bytes, names: Sequence[bytes], values: Sequence[bytes]) -> list[bytes]:
    """Twin of ``lattice`` in :data:`INDEX_LUA`."""
    keys: list[bytes] = []
    for mask in range(2 ** len(names)):
        chosen = [i for i in range(len(names)) if mask >> i & 1]
        if any(values[i] == b"" for i in chosen):
            continue
        if not chosen:
            keys.append(prefix + b"all")
        else:
            tag = b"+".join(names[i] for i in chosen)
            keys.append(prefix + tag + b"".join(b":" + values[i] for i in chosen))
    return keys


def zadd_all(call: ScriptCall, keys: Sequence[bytes], score: bytes, member: bytes) -> None:
    """Twin of ``zadd_all`` in :data:`INDEX_LUA`."""
    for key in keys:
        call("ZADD", key, score, member)


def zrem_all(call: ScriptCall, keys: Sequence[bytes], member: bytes) -> None:
    """Twin of ``zrem_all`` in :data:`INDEX_LUA`."""
    for key in keys:
        call("ZREM", key, member)


# -- one page of a time index ----------------------------------------------------------------

#: Lua helper shared by the listing scripts: where a score window sits in a sorted set.
#: ``window(key, lo, hi, below)`` returns the rank of the window's first member and how
#: many members it holds; ``below`` is the bound just under ``lo`` ('' when ``lo`` is
#: -inf, see :func:`just_below`). Ranks make any page O(log n + page size) for Redis,
#: where ``LIMIT offset`` would walk past every skipped member.
WINDOW_LUA = """
local function window(key, lo, hi, below)
  if lo == '-inf' and hi == '+inf' then
    return 0, redis.call('ZCARD', key)
  end
  local first = 0
  if below ~= '' then
    first = redis.call('ZCOUNT', key, '-inf', below)
  end
  return first, redis.call('ZCOUNT', key, lo, hi)
end
"""


def window(call: ScriptCall, key: bytes, lo: bytes, hi: bytes, below: bytes) -> tuple[int, int]:
    """Twin of ``window`` in :data:`WINDOW_LUA`."""
    if lo == b"-inf" and hi == b"+inf":
        return 0, call("ZCARD", key)
    first = 0 if below == b"" else call("ZCOUNT", key, b"-inf", below)
    return first, call("ZCOUNT", key, lo, hi)


def just_below(lower: str) -> str:
    """The score bound that selects everything below the window starting at ``lower``."""
    if lower == "-inf":
        return ""
    return lower[1:] if lower.startswith("(") else "(" + lower


_PAGE_INDEX = (
    WINDOW_LUA
    + """
-- KEYS[1] the index: a sorted set of record ids (or members) scored by time
-- ARGV: min score, max score, the bound just below min, offset, count, '1' for highest
--       score first, record key prefix, then the hash fields to read from each record
--       (none: all of them)
-- Returns {total, member, fields, member, fields, ...}: total counts the members within
-- the scores. fields is flat {field, value, ...} like HGETALL, with the named fields a
-- record lacks left out; empty when the record is gone.
local first, total = window(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
local offset, count = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {total}
if offset >= total then
  return out
end
-- Ranks count from the lowest score; a newest-first page is the same slice read backwards.
local from, to
if ARGV[6] == '1' then
  local top = first + total - 1 - offset
  from, to = math.max(first, top - count + 1), top
else
  from = first + offset
  to = math.min(from + count, first + total) - 1
end
local members = redis.call('ZRANGE', KEYS[1], from, to)
local i, last, step = 1, #members, 1
if ARGV[6] == '1' then
  i, last, step = #members, 1, -1
end
for n = i, last, step do
  local member = members[n]
  out[#out + 1] = member
  local key = ARGV[7] .. member
  if #ARGV > 7 then
    local values = redis.call('HMGET', key, unpack(ARGV, 8))
    local fields = {}
    for i = 8, #ARGV do
      if values[i - 7] then
        fields[#fields + 1] = ARGV[i]
        fields[#fields + 1] = values[i - 7]
      end
    end
    out[#out + 1] = fields
  else
    out[#out + 1] = redis.call('HGETALL', key)
  end
end
return out
"""
)


def _page_index(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    lo, hi, below, offset_arg, count_arg, newest_first, prefix = args[:7]
    names = args[7:]
    first, total = window(call, keys[0], lo, hi, below)
    offset, count = int(offset_arg), int(count_arg)
    out: list[Reply] = [total]
    if offset >= total:
        return out
    if newest_first == b"1":
        top = first + total - 1 - offset
        members = call("ZRANGE", keys[0], max(first, top - count + 1), top)[::-1]
    else:
        start = first + offset
        members = call("ZRANGE", keys[0], start, min(start + count, first + total) - 1)
    for member in members:
        out.append(member)
        if names:
            values = call("HMGET", prefix + member, *names)
            fields: list[Reply] = []
            for name, value in zip(names, values, strict=True):
                if value is not None:
                    fields += (name, value)
            out.append(fields)
        else:
            out.append(call("HGETALL", prefix + member))
    return out


PAGE_INDEX = Script("page_index", _PAGE_INDEX, _page_index)


async def page_of_index(
    driver: Driver,
    index: str,
    record_prefix: str,
    *,
    page: int,
    per_page: int,
    window: tuple[str, str] = ("-inf", "+inf"),
    fields: Sequence[str] = (),
    newest_first: bool = True,
) -> tuple[int, list[tuple[bytes, list[bytes]]]]:
    """One page of ``index`` with each record's hash: one round trip.

    Costs ``per_page + 2`` commands (``+ 3`` with a window) whatever the size of the index.

    Args:
        driver: The driver to run :data:`PAGE_INDEX` on.
        index: The sorted set, scored by time.
        record_prefix: Prepended to a member to name its record's hash.
        page: The page number, from 0 (already validated).
        per_page: The page size (already validated).
        window: Score bounds (see :func:`time_window`).
        fields: The hash fields to read; all of them when empty.
        newest_first: Highest score first (the default), else lowest first.

    Returns:
        The number of members within ``window``, and ``(member, flat fields)`` for each
        member of the page whose record exists (an index entry without a record is
        skipped).
    """
    start, _ = page_slice(page, per_page)
    return await _slice_of_index(
        driver,
        index,
        record_prefix,
        offset=start,
        count=per_page,
        window=window,
        fields=fields,
        newest_first=newest_first,
    )


async def _slice_of_index(
    driver: Driver,
    index: str,
    record_prefix: str,
    *,
    offset: int,
    count: int,
    window: tuple[str, str] = ("-inf", "+inf"),
    fields: Sequence[str] = (),
    newest_first: bool = True,
) -> tuple[int, list[tuple[bytes, list[bytes]]]]:
    """:func:`page_of_index` from any offset, not only a multiple of the page size."""
    lo, hi = window
    args: list[Arg] = [
        lo,
        hi,
        just_below(lo),
        offset,
        count,
        "1" if newest_first else "0",
        record_prefix,
        *fields,
    ]
    reply = as_list(await driver.run(PAGE_INDEX, [index], args, idempotent=True))
    total, *flat = reply
    return total, [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2) if flat[i + 1]]


# -- walks for export ----------------------------------------------------------------------


def next_offset_cursor(offset: int, count: int, total: int) -> str | None:
    """The cursor after a chunk of ``count`` ranks from ``offset``; None at the end."""
    end = offset + count
    return str(end) if end < total else None


async def chunk_of_index(
    driver: Driver,
    index: str,
    record_prefix: str,
    decode: Callable[[list[bytes], str], T],
    *,
    cursor: Any,
    count: Any,
) -> Chunk[T]:
    """One chunk of a walk through ``index``, oldest first: the records it points to.

    One round trip (``count + 2`` commands). The cursor is a rank, so records added
    with a later score than the walk has reached are seen, and a walk over an index that
    does not change sees every member exactly once.

    Args:
        decode: Makes a record of its hash's flat fields and its key.
    """
    offset = offset_cursor(cursor)
    check_count(count)
    total, found = await _slice_of_index(
        driver, index, record_prefix, offset=offset, count=count, newest_first=False
    )
    items = [
        decode(fields, record_prefix + member.decode(errors="replace")) for member, fields in found
    ]
    return Chunk(items=items, cursor=next_offset_cursor(offset, count, total), total=total)
