"""What every domain shares: its driver, layout and format, checks, and listings.

Listings read the lex indexes of :mod:`kvstore.keys` with one script per bucket
(:data:`LIST_INDEX`), all of them in one batch: with one bucket the script returns the page
with its records; with several it returns each bucket's first candidates, which are merged
here, and the page's records are read with one ``HMGET`` per bucket in a second round trip.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import msgspec

from kvstore._checks import check_count, check_id, check_ids, check_optional_id, check_page
from kvstore.codec import Format, FormatName, get_format
from kvstore.domains._lua import script
from kvstore.errors import CorruptRecordError, DriverError, ValidationError
from kvstore.keys import lex_escape, lex_time
from kvstore.records import Chunk, Page

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from kvstore.codec import RecordCodec
    from kvstore.drivers.base import Arg, Driver, Reply, Script
    from kvstore.keys import Bucket, Keys
    from kvstore.layout import StoreLayout

__all__ = [
    "LIST_INDEX",
    "Domain",
    "as_list",
    "check_count",
    "check_id",
    "check_ids",
    "check_optional_id",
    "check_page",
    "decode_with_counters",
    "lex_bounds",
    "list_index",
    "make_page",
    "micros",
    "time_window",
    "walk_index",
]

S = TypeVar("S", bound=msgspec.Struct)
T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Domain:
    """Base of the domain stores: what a call needs to build its batch or script."""

    __slots__ = ("_driver", "_format", "_layout")

    def __init__(self, driver: Driver, layout: StoreLayout, format_name: FormatName) -> None:
        self._driver = driver
        self._layout = layout
        self._format: Format = get_format(format_name)

    async def _keys(self) -> Keys:
        """The namespace's keys; the first call of a store checks its layout."""
        keys = self._layout.opened
        return keys if keys is not None else await self._layout.keys()


# -- checks ---------------------------------------------------------------------------------


def micros(moment: datetime) -> int:
    """``moment`` as whole microseconds since the Unix epoch: the sort key of times.

    Integers below 2**53 are exact in a double, which covers the years 1685 to 2255.
    """
    if moment.tzinfo is None:
        raise ValidationError("datetimes must be timezone-aware", field="datetime")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def time_window(from_date: Any, to_date: Any) -> tuple[int | None, int | None]:
    """An inclusive time window in microseconds; either end may be None (open).

    Raises:
        ValidationError: naming ``from_date`` or ``to_date`` when it is not an aware
            datetime.
    """
    for name, value in (("from_date", from_date), ("to_date", to_date)):
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise ValidationError("expected a timezone-aware datetime", field=name)
    return (
        None if from_date is None else micros(from_date),
        None if to_date is None else micros(to_date),
    )


def as_list(reply: Reply) -> list[Any]:
    """``reply`` as the array a script or command was written to return."""
    if not isinstance(reply, list):
        raise DriverError(f"expected an array reply, got {type(reply).__name__}")
    return reply


def make_page(items: list[Any], total: int, page: int, per_page: int) -> Page[Any]:
    """A :class:`Page` of a listing by page number."""
    return Page(
        items=items,
        total=total,
        page=page,
        per_page=per_page,
        has_more=(page + 1) * per_page < total,
    )


def decode_with_counters(
    codec: RecordCodec[S], flat: Sequence[bytes], where: str, counters: Mapping[bytes, str]
) -> S:
    """Decode hash fields whose integer attributes live in internal decimal fields.

    Scripts keep counters (a run's version, a trace's span count) as plain decimals so that
    Lua can do arithmetic on them whatever the codec; ``counters`` maps each such internal
    field to the record attribute it fills.

    Raises:
        CorruptRecordError: naming ``where`` when a counter is not an integer or the record
            does not decode.
    """
    extra: list[bytes] = []
    for i in range(0, len(flat) - 1, 2):
        name = counters.get(flat[i])
        if name is not None:
            try:
                number = int(flat[i + 1])
            except ValueError:
                raise CorruptRecordError(where, f"{flat[i]!r} is not an integer") from None
            extra += (name.encode(), codec.encode(number))
    return codec.from_hash([*flat, *extra], where)


# -- lex index listings ---------------------------------------------------------------------


def lex_bounds(
    prefix: Sequence[str], low: int | None = None, high: int | None = None
) -> tuple[str, str]:
    """``ZRANGE BYLEX`` bounds of the members under ``prefix`` whose time lies in a window.

    Args:
        prefix: The member's leading fields (a filter name and its values, unescaped).
        low: The earliest time (microseconds, inclusive), or None.
        high: The latest time (microseconds, inclusive), or None.
    """
    head = "".join(lex_escape(part) + "\x00" for part in prefix)
    lower = "[" + head + ("" if low is None else lex_time(low))
    # Everything under the prefix sorts below the prefix with its last NUL raised to \x01.
    upper = "(" + (head[:-1] + "\x01" if high is None else head + lex_time(high + 1))
    return lower, upper


LIST_INDEX = script(
    "list_index",
    """
-- KEYS[1] a lex index, KEYS[2..] hashes of the records it lists (by id)
-- ARGV: min, max, offset, count, reverse ('1': highest first), then the ranks within this
--       page (from, to: 0-based, to excluded) whose records to read
-- Returns {total, member, values, member, values, ...}: values holds the member's field in
-- each hash (false where missing), or is false for a member outside the ranks asked for.
local total, members = lex_page(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]),
  tonumber(ARGV[4]), ARGV[5])
local from = math.min(tonumber(ARGV[6]), #members)
local to = math.min(tonumber(ARGV[7]), #members)
local columns = {}
if to > from and #KEYS > 1 then
  local ids = {}
  for i = from + 1, to do
    ids[#ids + 1] = id_of(members[i])
  end
  for k = 2, #KEYS do
    columns[k - 1] = redis.call('HMGET', KEYS[k], unpack(ids))
  end
end
local out = {total}
for i, member in ipairs(members) do
  out[#out + 1] = member
  if i > from and i <= to and #KEYS > 1 then
    local values = {}
    for k = 1, #columns do
      values[k] = columns[k][i - from]
    end
    out[#out + 1] = values
  else
    out[#out + 1] = false
  end
end
return out
""",
)


def _id_of(member: bytes) -> bytes:
    return member[member.rindex(b"\x00") + 1 :]


#: Names the hashes a listing reads in a bucket: the records first, then any others.
Columns: TypeAlias = "Sequence[Callable[[Bucket], str]]"


async def list_index(
    driver: Driver,
    buckets: Sequence[Bucket],
    index: Callable[[Bucket], str],
    columns: Columns,
    bounds: tuple[str, str],
    *,
    offset: int,
    count: int,
    newest_first: bool,
    script: Script = LIST_INDEX,
    extra: Sequence[Arg] = (),
) -> tuple[int, list[tuple[str, list[bytes | None]]]]:
    """One page of a lex index across ``buckets``, with each member's record.

    With one bucket: one script, ``count + 3`` commands (one more per extra column).
    With several: one script per bucket in one batch (one batch per node on a cluster),
    each returning its first ``offset + count`` members (the candidates, merged here) and
    the records of those around where the page is likely to fall in it (the page's share
    of the bucket, and some slack). A page record that falls outside every window (a very
    uneven spread) is read in a second round trip, one ``HMGET`` per bucket and column.

    Args:
        columns: The hashes to read each member's id from; a member whose id is missing
            from the first one (its record) is skipped.
        script: A script with :data:`LIST_INDEX`'s keys, arguments and reply, which may
            take ``extra`` arguments after them (a filtered listing).

    Returns:
        How many members lie between the bounds in all buckets, and for each member of the
        page in order, the key of its record (the first column's hash in its bucket, for
        errors) and its value in each column.
    """
    low, high = bounds
    reverse = "1" if newest_first else "0"
    if len(buckets) == 1:
        (bucket,) = buckets
        reply = await driver.run(
            script,
            [index(bucket), *(c(bucket) for c in columns)],
            [low, high, offset, count, reverse, 0, count, *extra],
            idempotent=True,
        )
        total, *flat = as_list(reply)
        where = columns[0](bucket)
        return total, [(where, v) for v in flat[1::2] if v[0] is not None]
    share = count // len(buckets)
    slack = max(4, share)
    first = max(0, offset // len(buckets) - slack)
    last = (offset + count) // len(buckets) + slack
    replies = await driver.execute(
        [
            script.command(
                [index(b), *(c(b) for c in columns)],
                [low, high, 0, offset + count, reverse, first, last, *extra],
            )
            for b in buckets
        ],
        idempotent=True,
    )
    total = 0
    runs: list[list[tuple[bytes, int, list[bytes | None] | None]]] = []
    for position, reply in enumerate(replies):
        bucket_total, *flat = as_list(reply)
        total += bucket_total
        runs.append([(flat[i], position, flat[i + 1]) for i in range(0, len(flat), 2)])
    merged = list(heapq.merge(*runs, key=lambda e: e[0], reverse=newest_first))
    page = merged[offset : offset + count]
    missing: dict[int, list[bytes]] = {}
    for member, position, values in page:
        if values is None:
            missing.setdefault(position, []).append(_id_of(member))
    fetched: dict[tuple[int, bytes], list[bytes | None]] = {}
    if missing:
        requests = [(p, c) for p in missing for c in columns]
        replies = await driver.execute(
            [("HMGET", c(buckets[p]), *missing[p]) for p, c in requests], idempotent=True
        )
        for (p, _), reply in zip(requests, replies, strict=True):
            for record_id, value in zip(missing[p], as_list(reply), strict=True):
                fetched.setdefault((p, record_id), []).append(value)
    rows: list[tuple[str, list[bytes | None]]] = []
    for member, position, values in page:
        row = values if values is not None else fetched[(position, _id_of(member))]
        if row[0] is not None:
            rows.append((columns[0](buckets[position]), row))
    return total, rows


# -- walks for export ----------------------------------------------------------------------


def _walk_cursor(cursor: Any, buckets: int) -> tuple[int, int]:
    """The (bucket, rank) a walk resumes at: its cursor is ``<bucket>:<rank>``."""
    if cursor is None:
        return 0, 0
    if isinstance(cursor, str):
        bucket, sep, rank = cursor.partition(":")
        digits = bucket.isascii() and bucket.isdigit() and rank.isascii() and rank.isdigit()
        if sep and digits and int(bucket) < buckets:
            return int(bucket), int(rank)
    raise ValidationError("expected a cursor returned by the same method", field="cursor")


async def walk_index(
    driver: Driver,
    keys: Keys,
    index: Callable[[Bucket], str],
    columns: Columns,
    *,
    prefix: Sequence[str],
    decode: Callable[[list[bytes | None], str], T],
    cursor: Any,
    count: Any,
) -> Chunk[T]:
    """One chunk of a walk through every record of a kind, bucket by bucket, oldest first.

    One round trip: one bucket's chunk (``count + 3`` commands) and a ``ZLEXCOUNT`` per
    bucket for the total. The cursor is a bucket and a rank, so a walk over indexes that do
    not change sees every member exactly once; a chunk may be short at a bucket's end.

    Args:
        prefix: The index prefix that lists every record of the kind once.
        columns: The hashes to read each member's id from (see :func:`list_index`).
        decode: Makes a record of its values in the columns and where it is stored.
    """
    check_count(count)
    position, rank = _walk_cursor(cursor, keys.buckets)
    buckets = keys.all_buckets
    bucket = buckets[position]
    low, high = lex_bounds(prefix)
    commands: list[Sequence[Arg]] = [
        LIST_INDEX.command(
            [index(bucket), *(c(bucket) for c in columns)], [low, high, rank, count, "0", 0, count]
        )
    ]
    commands += [("ZLEXCOUNT", index(b), low, high) for b in buckets]
    chunk, *counts = await driver.execute(commands, idempotent=True)
    _, *flat = as_list(chunk)
    sizes = [int(n) for n in counts]  # type: ignore[arg-type]
    where = columns[0](bucket)
    items = [decode(row, where) for row in flat[1::2] if row[0] is not None]
    next_cursor: str | None = None
    if rank + count < sizes[position]:
        next_cursor = f"{position}:{rank + count}"
    else:
        # The next bucket that has something, so that no chunk is spent on empty ones.
        later = [b for b in range(position + 1, len(buckets)) if sizes[b]]
        if later:
            next_cursor = f"{later[0]}:0"
    return Chunk(items=items, cursor=next_cursor, total=sum(sizes))
