"""Stream commands: XADD, XRANGE, XREVRANGE, XLEN, XDEL, XTRIM.

Trimming with ``~`` (approximate) trims *exactly* here, capped by ``LIMIT`` (default 10000
entries, Redis's default cap for ``~``). Redis trims only whole internal nodes and so may
keep more entries than asked; both honour what ``~`` promises (at least the threshold is
kept, and at most LIMIT entries go per call). Exact trimming (``=`` or no flag) is
identical to Redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from kvstore.drivers.memory._errors import SYNTAX, ReplyError, arity_error
from kvstore.drivers.memory._parse import UINT64_MAX, c_string, option, parse_int
from kvstore.drivers.memory._stream import (
    MAX_ID,
    Stream,
    format_id,
    parse_id,
    parse_interval_id,
)

if TYPE_CHECKING:
    from kvstore.drivers.base import Reply
    from kvstore.drivers.memory._keyspace import Keyspace

__all__ = ["HANDLERS", "TrimOptions", "parse_add_or_trim"]

#: How many entries an approximate trim removes at most without LIMIT (Redis: 100 times
#: stream-node-max-entries).
_APPROX_TRIM_LIMIT = 10_000


class TrimOptions(NamedTuple):
    """What Redis's ``streamParseAddOrTrimArgsOrReply`` extracts from XADD or XTRIM."""

    strategy: bytes | None  # b"MAXLEN", b"MINID" or None
    threshold: int  # the MAXLEN count or the packed MINID
    limit: int  # the most entries to trim, 0 for no limit
    nomkstream: bool
    id: int | None  # XADD's id, None for "*"
    seq_given: bool  # False for XADD's "<ms>-*"
    at: int  # where XADD's id is in args (its fields follow)


def parse_add_or_trim(args: list[bytes], *, xadd: bool) -> TrimOptions:
    """Parse the options of XADD (up to and including its id) or of XTRIM.

    Raises:
        ReplyError: with Redis's message for the first problem found.
    """
    strategy: bytes | None = None
    threshold = limit = 0
    approx = limit_given = nomkstream = False
    packed: int | None = None
    seq_given = True
    i, size = 1, len(args)
    while i < size:
        more = size - 1 - i
        raw = args[i]
        if xadd and c_string(raw) == b"*":
            break
        word = option(raw)
        if word in (b"MAXLEN", b"MINID") and more:
            if strategy is not None:
                raise ReplyError(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
                )
            flag = c_string(args[i + 1])
            approx = more >= 2 and flag == b"~"
            if more >= 2 and flag in (b"~", b"="):
                i += 1
            if word == b"MAXLEN":
                threshold = parse_int(args[i + 1])
                if threshold < 0:
                    raise ReplyError("ERR The MAXLEN argument must be >= 0.")
            else:
                threshold = parse_id(args[i + 1], strict=True)[0]
            strategy = word
            i += 1
        elif word == b"LIMIT" and more:
            limit = parse_int(args[i + 1])
            if limit < 0:
                raise ReplyError("ERR The LIMIT argument must be >= 0.")
            limit_given = True
            i += 1
        elif xadd and word == b"NOMKSTREAM":
            nomkstream = True
        elif xadd:
            packed, seq_given = parse_id(raw, strict=True, auto_seq=True)
            break
        else:
            raise ReplyError(SYNTAX)
        i += 1
    if limit and strategy is None:
        raise ReplyError(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
        )
    if not xadd and strategy is None:
        raise ReplyError("ERR syntax error, XTRIM must be called with a trimming strategy")
    if limit_given and not approx:
        raise ReplyError("ERR syntax error, LIMIT cannot be used without the special ~ option")
    if not limit_given:
        limit = _APPROX_TRIM_LIMIT if approx else 0
    return TrimOptions(strategy, threshold, limit, nomkstream, packed, seq_given, i)


def _trim(stream: Stream, opts: TrimOptions) -> int:
    if opts.strategy == b"MAXLEN":
        return stream.trim_maxlen(opts.threshold, opts.limit)
    return stream.trim_minid(opts.threshold, opts.limit)


_EXHAUSTED = "ERR The stream has exhausted the last possible ID, unable to add more items"
_TOO_SMALL = "ERR The ID specified in XADD is equal or smaller than the target stream top item"


#: XADD's options when its id comes first and is "*", the common case.
_AUTO_ID_ONLY = TrimOptions(None, 0, 0, False, None, True, 1)


def xadd(ks: Keyspace, args: list[bytes]) -> Reply:
    if args[1] == b"*" and len(args) % 2 == 0:
        # "XADD key * field value ...", the hot write: what the general path below does
        # when there are no options and the fields pair up.
        key = args[0]
        stream = ks.read(key, Stream)
        if stream is None:
            stream = Stream()
            ks.create(key, stream)
        last, now = stream.last_id, ks.now
        if now > last >> 64:
            stream.append(now << 64, tuple(args[2:]))
            return b"%d-0" % now
        if last == MAX_ID:
            raise ReplyError(_EXHAUSTED)
        stream.append(last + 1, tuple(args[2:]))
        return format_id(last + 1)
    opts = _AUTO_ID_ONLY if args[1] == b"*" else parse_add_or_trim(args, xadd=True)
    fields = args[opts.at + 1 :]
    if len(fields) < 2 or len(fields) % 2:
        raise arity_error("xadd")
    if opts.id == 0 and opts.seq_given:
        raise ReplyError("ERR The ID specified in XADD must be greater than 0-0")
    key = args[0]
    stream = ks.read(key, Stream)
    if stream is None:
        if opts.nomkstream:
            return None
        stream = Stream()
        ks.create(key, stream)
    last = stream.last_id
    if last == MAX_ID:
        raise ReplyError(_EXHAUSTED)
    if opts.id is None:  # "*": the clock, or the next sequence if the clock is behind
        packed = ks.now << 64 if ks.now > last >> 64 else last + 1
    elif opts.seq_given:
        packed = opts.id
    elif opts.id >> 64 == last >> 64:  # "<ms>-*" within the last id's millisecond
        if last & UINT64_MAX == UINT64_MAX:
            raise ReplyError(_TOO_SMALL)
        packed = last + 1
    else:
        packed = opts.id
    if packed <= last:
        raise ReplyError(_TOO_SMALL)
    stream.append(packed, tuple(fields))
    if opts.strategy is not None:
        _trim(stream, opts)
    return format_id(packed)


def xtrim(ks: Keyspace, args: list[bytes]) -> Reply:
    opts = parse_add_or_trim(args, xadd=False)
    stream = ks.read(args[0], Stream)
    return 0 if stream is None else _trim(stream, opts)


def _xrange(ks: Keyspace, args: list[bytes], *, reverse: bool) -> Reply:
    start_raw, end_raw = (args[2], args[1]) if reverse else (args[1], args[2])
    start, exclusive = parse_interval_id(start_raw, missing_seq=0)
    if exclusive:
        if start == MAX_ID:
            raise ReplyError("ERR invalid start ID for the interval")
        start += 1
    end, exclusive = parse_interval_id(end_raw, missing_seq=UINT64_MAX)
    if exclusive:
        if end == 0:
            raise ReplyError("ERR invalid end ID for the interval")
        end -= 1
    count = -1
    i = 3
    while i < len(args):
        if option(args[i]) == b"COUNT" and i + 1 < len(args):
            count = max(parse_int(args[i + 1]), 0)
            i += 2
        else:
            raise ReplyError(SYNTAX)
    stream = ks.read(args[0], Stream)
    if stream is None:
        return []
    if count == 0:
        return None  # Redis replies a null array to COUNT 0 (or below) on a stream
    first, stop = stream.span(start, end)
    if count > 0:
        if reverse:
            first = max(first, stop - count)
        else:
            stop = min(stop, first + count)
    return stream.replies(first, stop, reverse=reverse)


def xrange(ks: Keyspace, args: list[bytes]) -> Reply:
    return _xrange(ks, args, reverse=False)


def xrevrange(ks: Keyspace, args: list[bytes]) -> Reply:
    return _xrange(ks, args, reverse=True)


def xlen(ks: Keyspace, args: list[bytes]) -> Reply:
    stream = ks.read(args[0], Stream)
    return 0 if stream is None else len(stream)


def xdel(ks: Keyspace, args: list[bytes]) -> Reply:
    stream = ks.read(args[0], Stream)
    if stream is None:
        return 0
    # Every id is checked first, so that a bad one leaves the stream untouched.
    ids = [parse_id(raw, strict=True)[0] for raw in args[1:]]
    return sum(stream.delete(packed) for packed in ids)


HANDLERS = {
    "XADD": xadd,
    "XTRIM": xtrim,
    "XRANGE": xrange,
    "XREVRANGE": xrevrange,
    "XLEN": xlen,
    "XDEL": xdel,
}
