"""The traces domain's scripts: each Lua source sits next to its Python twin.

Conventions (see also :mod:`kvstore.domains._memory_scripts`):

* ``KEYS[1]`` is the spans stream; other keys are built from prefixes the caller takes
  from :mod:`kvstore.keys` (every key of a namespace shares one hash slot).
* Each stream entry starts with the internal fields ``_t`` (trace id) and ``_s`` (span
  id), then the span record's fields. That lets trimming find the trace of each entry it
  removes.
* A trace's summary hash keeps, besides the :class:`~kvstore.records.TraceSummary`
  fields: ``_rp``, ``_rs``, ``_ri`` the rank of its root span (has a parent: ``1``/``0``,
  start score, span id; lower is more root-like), ``_st``/``_en`` its start and end scores,
  ``_n`` its span count, and ``_ix`` the index keys it is listed under, packed by
  :func:`pack_keys` (a root's attributes make that list open-ended, so it is stored rather
  than rebuilt).
* Stream ids are ``<ms>-<seq>`` where ``<ms>`` is the span's start, lowered to now (a span
  from a skewed clock must not push every later id into the future) and raised to the last
  id given out, which the clock key keeps (XADD refuses an id at or below the stream's last
  one, even a deleted one). Spans in the same millisecond get sequence numbers 0, 1, 2...:
  the ids Redis 7's ``<ms>-*`` would make, written out in full because some servers lack
  that syntax (Upstash documents it for Redis 8 only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvstore.domains._base import INDEX_LUA, zadd_all, zrem_all
from kvstore.drivers.base import Reply, Script, ScriptCall

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["DELETE_TRACES", "GET_TRACE", "SAVE_SPANS", "pack_keys", "unpack_keys"]


def pack_keys(keys: Iterable[str]) -> bytes:
    """Keys packed into one string, each as ``<byte length>:<key>``."""
    out = b""
    for key in keys:
        raw = key.encode()
        out += b"%d:%s" % (len(raw), raw)
    return out


_KEYS_LUA = (
    INDEX_LUA
    + """
local function unpack_keys(packed)
  local keys = {}
  local pos = 1
  while pos <= #packed do
    local colon = string.find(packed, ':', pos, true)
    local len = tonumber(string.sub(packed, pos, colon - 1))
    keys[#keys + 1] = string.sub(packed, colon + 1, colon + len)
    pos = colon + len + 1
  end
  return keys
end
"""
)


def unpack_keys(packed: bytes) -> list[bytes]:
    """Twin of ``unpack_keys`` in the scripts: the inverse of :func:`pack_keys`."""
    keys: list[bytes] = []
    pos = 0
    while pos < len(packed):
        colon = packed.index(b":", pos)
        length = int(packed[pos:colon])
        keys.append(packed[colon + 1 : colon + 1 + length])
        pos = colon + 1 + length
    return keys


_SAVE_SPANS = (
    _KEYS_LUA
    + """
-- KEYS[1] the spans stream
-- ARGV: clock key, trace prefix, trace-spans prefix, now (ms), max spans ('' for no
--       limit), min id (ms; '' for no age limit), the last ms below the min id, span
--       count, trace count, then per span: trace id, span id, start ms, field count,
--       fields...; then per trace: trace id, its best root candidate's rank (has parent,
--       start score, span id), start score and start_time field, end score ('' for none)
--       and end_time field, the candidate's packed index keys, root field count, root
--       fields...
-- Returns the number of spans trimmed by the retention limits.
local stream, clock, tp, sp = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local now, maxlen, minid, below_minid = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local nspans, ntraces = tonumber(ARGV[8]), tonumber(ARGV[9])
local pos = 10
local last = redis.call('GET', clock) or '0-0'
local dash = string.find(last, '-', 1, true)
local last_ms, last_seq = string.sub(last, 1, dash - 1), tonumber(string.sub(last, dash + 1))
for _ = 1, nspans do
  local tid, sid, ms, nfields = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], tonumber(ARGV[pos + 3])
  if tonumber(ms) > tonumber(now) then
    ms = now
  end
  if tonumber(ms) > tonumber(last_ms) then
    last_ms, last_seq = ms, 0
  else
    last_seq = last_seq + 1
  end
  local skey = sp .. tid
  local old = redis.call('HGET', skey, sid)
  if old then
    redis.call('XDEL', stream, old)
  end
  local id = redis.call('XADD', stream, last_ms .. '-' .. last_seq, '_t', tid, '_s', sid,
    unpack(ARGV, pos + 4, pos + 3 + nfields))
  redis.call('HSET', skey, sid, id)
  pos = pos + 4 + nfields
end
if nspans > 0 then
  redis.call('SET', clock, last_ms .. '-' .. last_seq)
end
for _ = 1, ntraces do
  local tid, rp, rs, rid = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3]
  local st, st_field, en, en_field = ARGV[pos + 4], ARGV[pos + 5], ARGV[pos + 6], ARGV[pos + 7]
  local ix, nroot = ARGV[pos + 8], tonumber(ARGV[pos + 9])
  local root_from, root_to = pos + 10, pos + 9 + nroot
  pos = pos + 10 + nroot
  local tkey = tp .. tid
  local cur = redis.call('HMGET', tkey, '_rp', '_rs', '_ri', '_st', '_en', '_ix')
  local score, rescore = cur[4], false
  if not score or tonumber(st) < tonumber(score) then
    redis.call('HSET', tkey, '_st', st, 'start_time', st_field)
    score, rescore = st, true
  end
  if en ~= '' and (not cur[5] or tonumber(en) > tonumber(cur[5])) then
    redis.call('HSET', tkey, '_en', en, 'end_time', en_field)
  end
  local better = not cur[1] or rid == cur[3]
  if not better then
    local p0, p1 = tonumber(cur[1]), tonumber(rp)
    better = p1 < p0 or (p1 == p0 and tonumber(rs) < tonumber(cur[2]))
  end
  local keys = unpack_keys(cur[6] or '')
  if better then
    redis.call('HSET', tkey, '_rp', rp, '_rs', rs, '_ri', rid, unpack(ARGV, root_from, root_to))
    if ix ~= (cur[6] or '') then
      zrem_all(keys, tid)
      keys = unpack_keys(ix)
      redis.call('HSET', tkey, '_ix', ix)
      rescore = true
    end
  end
  if rescore then
    zadd_all(keys, score, tid)
  end
  redis.call('HSET', tkey, '_n', redis.call('HLEN', sp .. tid))
end
-- Retention: find the entries a trim removes first, so that their traces forget them.
local trimmed = 0
local touched = {}
local function forget(entries)
  for _, entry in ipairs(entries) do
    local f = entry[2]
    if f[1] == '_t' and f[3] == '_s' then
      local skey = sp .. f[2]
      if redis.call('HGET', skey, f[4]) == entry[1] then
        redis.call('HDEL', skey, f[4])
        touched[f[2]] = true
      end
    end
  end
  trimmed = trimmed + #entries
end
if minid ~= '' then
  forget(redis.call('XRANGE', stream, '-', below_minid))
  redis.call('XTRIM', stream, 'MINID', '=', minid)
end
if maxlen ~= '' then
  local excess = redis.call('XLEN', stream) - tonumber(maxlen)
  if excess > 0 then
    forget(redis.call('XRANGE', stream, '-', '+', 'COUNT', excess))
    redis.call('XTRIM', stream, 'MAXLEN', '=', maxlen)
  end
end
for tid, _ in pairs(touched) do
  local n = redis.call('HLEN', sp .. tid)
  if n == 0 then
    zrem_all(unpack_keys(redis.call('HGET', tp .. tid, '_ix') or ''), tid)
    redis.call('DEL', tp .. tid)
  else
    redis.call('HSET', tp .. tid, '_n', n)
  end
end
return trimmed
"""
)


def _save_spans(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    stream = keys[0]
    clock, tp, sp, now, maxlen, minid, below_minid = args[:7]
    nspans, ntraces = int(args[7]), int(args[8])
    pos = 9
    last_ms, _, seq = (call("GET", clock) or b"0-0").partition(b"-")
    last_seq = int(seq)
    for _ in range(nspans):
        tid, sid, ms = args[pos : pos + 3]
        nfields = int(args[pos + 3])
        if int(ms) > int(now):
            ms = now
        if int(ms) > int(last_ms):
            last_ms, last_seq = ms, 0
        else:
            last_seq += 1
        skey = sp + tid
        old = call("HGET", skey, sid)
        if old is not None:
            call("XDEL", stream, old)
        fields = args[pos + 4 : pos + 4 + nfields]
        id_ = call("XADD", stream, b"%s-%d" % (last_ms, last_seq), b"_t", tid, b"_s", sid, *fields)
        call("HSET", skey, sid, id_)
        pos += 4 + nfields
    if nspans > 0:
        call("SET", clock, b"%s-%d" % (last_ms, last_seq))
    for _ in range(ntraces):
        tid, rp, rs, rid, st, st_field, en, en_field, ix = args[pos : pos + 9]
        nroot = int(args[pos + 9])
        root_fields = args[pos + 10 : pos + 10 + nroot]
        pos += 10 + nroot
        tkey = tp + tid
        cur = call("HMGET", tkey, b"_rp", b"_rs", b"_ri", b"_st", b"_en", b"_ix")
        score, rescore = cur[3], False
        if score is None or int(st) < int(score):
            call("HSET", tkey, b"_st", st, b"start_time", st_field)
            score, rescore = st, True
        if en != b"" and (cur[4] is None or int(en) > int(cur[4])):
            call("HSET", tkey, b"_en", en, b"end_time", en_field)
        better = cur[0] is None or rid == cur[2]
        if not better:
            p0, p1 = int(cur[0]), int(rp)
            better = p1 < p0 or (p1 == p0 and int(rs) < int(cur[1]))
        index_keys = unpack_keys(cur[5] or b"")
        if better:
            call("HSET", tkey, b"_rp", rp, b"_rs", rs, b"_ri", rid, *root_fields)
            if ix != (cur[5] or b""):
                zrem_all(call, index_keys, tid)
                index_keys = unpack_keys(ix)
                call("HSET", tkey, b"_ix", ix)
                rescore = True
        if rescore:
            zadd_all(call, index_keys, score, tid)
        call("HSET", tkey, b"_n", call("HLEN", sp + tid))
    trimmed = 0
    touched: dict[bytes, None] = {}

    def forget(entries: list[Any]) -> None:
        nonlocal trimmed
        for entry_id, f in entries:
            if len(f) >= 4 and f[0] == b"_t" and f[2] == b"_s":
                skey = sp + f[1]
                if call("HGET", skey, f[3]) == entry_id:
                    call("HDEL", skey, f[3])
                    touched[f[1]] = None
        trimmed += len(entries)

    if minid != b"":
        forget(call("XRANGE", stream, b"-", below_minid))
        call("XTRIM", stream, b"MINID", b"=", minid)
    if maxlen != b"":
        excess = call("XLEN", stream) - int(maxlen)
        if excess > 0:
            forget(call("XRANGE", stream, b"-", b"+", b"COUNT", excess))
            call("XTRIM", stream, b"MAXLEN", b"=", maxlen)
    for tid in touched:
        n = call("HLEN", sp + tid)
        if n == 0:
            zrem_all(call, unpack_keys(call("HGET", tp + tid, b"_ix") or b""), tid)
            call("DEL", tp + tid)
        else:
            call("HSET", tp + tid, b"_n", n)
    return trimmed


SAVE_SPANS = Script("save_spans", _SAVE_SPANS, _save_spans)

_GET_TRACE = """
-- KEYS[1] the spans stream, KEYS[2] the trace's spans (span id -> stream id)
-- Returns the fields of each span still in the stream; an entry trimmed away is skipped.
local ids = redis.call('HGETALL', KEYS[2])
local out = {}
for i = 2, #ids, 2 do
  local entry = redis.call('XRANGE', KEYS[1], ids[i], ids[i])
  if entry[1] then
    out[#out + 1] = entry[1][2]
  end
end
return out
"""


def _get_trace(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    del args
    ids = call("HGETALL", keys[1])
    out: list[Reply] = []
    for i in range(1, len(ids), 2):
        entry = call("XRANGE", keys[0], ids[i], ids[i])
        if entry:
            out.append(entry[0][1])
    return out


GET_TRACE = Script("get_trace", _GET_TRACE, _get_trace)

_DELETE_TRACES = (
    _KEYS_LUA
    + """
-- KEYS[1] the spans stream
-- ARGV: trace prefix, trace-spans prefix, then the trace ids
-- Returns how many of the traces existed.
local deleted = 0
for i = 3, #ARGV do
  local tid = ARGV[i]
  local ids = redis.call('HGETALL', ARGV[2] .. tid)
  for j = 2, #ids, 2 do
    redis.call('XDEL', KEYS[1], ids[j])
  end
  local ix = redis.call('HGET', ARGV[1] .. tid, '_ix')
  if ix or #ids > 0 then
    deleted = deleted + 1
  end
  zrem_all(unpack_keys(ix or ''), tid)
  redis.call('DEL', ARGV[1] .. tid, ARGV[2] .. tid)
end
return deleted
"""
)


def _delete_traces(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    tp, sp = args[:2]
    deleted = 0
    for tid in args[2:]:
        ids = call("HGETALL", sp + tid)
        for j in range(1, len(ids), 2):
            call("XDEL", keys[0], ids[j])
        ix = call("HGET", tp + tid, b"_ix")
        if ix is not None or ids:
            deleted += 1
        zrem_all(call, unpack_keys(ix or b""), tid)
        call("DEL", tp + tid, sp + tid)
    return deleted


DELETE_TRACES = Script("delete_traces", _DELETE_TRACES, _delete_traces)
