"""Section 6: space: bytes per stored message in Redis, JSON against MessagePack.

A thread of 0.7 KB messages (text and a tool call) is saved through `save_messages` with
each codec, in its own namespace, on the private Redis. In key layout 2 two structures grow
with each message (see `kvstore.domains.memory`):

* the thread's sorted set `messages:<thread id>`, whose member *is* the message: a 12-digit
  sequence, the id and the packed record;
* the bucket's pointers hash `message_threads`: message id -> its thread and score, how a
  message is found by its id alone.

Per message: `MEMORY USAGE` (`SAMPLES 0`: every element counted) of each, divided by the
number of messages (the namespace holds only this thread, so the pointers hash is all
its). For context, the same records as one msgspec JSON string each in a Redis list, which
is how the list-based peers store messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from benchmarks import _data
from benchmarks._env import Env, SkipSection, missing
from benchmarks._harness import Report, bar_chart, fmt_bytes
from kvstore import Storage, Thread

if TYPE_CHECKING:
    from kvstore.codec import FormatName

NAME = "space"
TITLE = "6. Space: bytes per stored message in Redis"


async def run(env: Env) -> Report:
    report = Report(NAME, TITLE, env.out)
    if note := missing("redis"):
        raise SkipSection(note)
    import redis.asyncio as aioredis

    from kvstore.drivers.redis import RedisDriver

    report.text(__doc__.split("\n\n", 1)[1])
    count = 200 if env.mode.quick else 2_000
    client = aioredis.Redis.from_url(env.fresh_redis(), protocol=2)
    rows: list[list[Any]] = []
    totals: dict[str, float] = {}
    try:
        messages = [_data.message(i, "space") for i in range(count)]
        codecs: tuple[FormatName, ...] = ("json", "msgpack")
        for codec in codecs:
            store = Storage(RedisDriver(client), namespace=f"space-{codec}", codec=codec)
            await store.memory.save_thread(Thread(id="space", resource_id="user-1"))
            for start in range(0, count, 500):
                await store.memory.save_messages(messages[start : start + 500])
            keys = await store.keys()
            thread = keys.thread("space")
            zset = await _usage(client, thread.messages)
            pointers = await _usage(client, thread.bucket.pointers)
            (member,) = await client.zrange(thread.messages, 0, 0)
            zset_encoding = (await client.object("encoding", thread.messages)).decode()
            hash_encoding = (await client.object("encoding", thread.bucket.pointers)).decode()
            per_zset, per_pointer = zset / count, pointers / count
            totals[f"kvstore ({codec})"] = per_zset + per_pointer
            rows.append(
                [
                    f"kvstore ({codec})",
                    fmt_bytes(len(member)),
                    f"{fmt_bytes(per_zset)} ({zset_encoding})",
                    f"{fmt_bytes(per_pointer)} ({hash_encoding})",
                    f"**{fmt_bytes(per_zset + per_pointer)}**",
                ]
            )
        encoder = msgspec.json.Encoder()
        await client.rpush("space:list", *(encoder.encode(m) for m in messages))
        listed = await _usage(client, "space:list") / count
        totals["JSON strings in a list"] = listed
        rows.append(
            [
                "one JSON string per message, in a list",
                fmt_bytes(len(encoder.encode(messages[0]))),
                f"{fmt_bytes(listed)} ({(await client.object('encoding', 'space:list')).decode()})",
                "—",
                f"**{fmt_bytes(listed)}**",
            ]
        )
    finally:
        await client.aclose()
    report.text(f"{count:,} messages of {len(msgspec.json.encode(messages[0]))} bytes as JSON.")
    report.table(
        [
            "stored as",
            "one stored message (sorted-set member / list item)",
            "per message: the thread's sorted set (encoding)",
            "per message: the pointers hash (encoding)",
            "bytes per message",
        ],
        rows,
    )
    report.text(
        "What the overhead is: a sorted set keeps a member that is longer than "
        "`zset-max-listpack-value` (64 bytes) in a skiplist and a dict (`skiplist` encoding): "
        "one SDS string, a skiplist node and a dict entry per message. The pointers hash "
        "holds a short field and value per message (a `hashtable` once it has more than "
        "`hash-max-listpack-entries`, 128, of them). `MEMORY USAGE` counts what the allocator "
        "hands out, in jemalloc's size classes (640, 768, 896 bytes...), so members of 650 "
        "and 750 bytes can cost the same. Layout 1 kept a hash per message (a keyspace "
        "entry and a field per attribute) and a sorted-set entry besides."
    )
    chart = "space.png"
    bar_chart(
        env.out / chart,
        title="bytes per stored 0.7 KB message (MEMORY USAGE)",
        groups=list(totals),
        series={"bytes per message": list(totals.values())},
        ylabel="bytes",
    )
    report.image(chart, "bytes per message")
    json_total, mp_total = totals["kvstore (json)"], totals["kvstore (msgpack)"]
    report.headline(
        "bytes per stored message in Redis (JSON → MessagePack)",
        "context",
        f"{json_total:,.0f} B → {mp_total:,.0f} B ({mp_total / json_total:.0%})",
        None,
    )
    return report


async def _usage(client: Any, key: str) -> int:
    """``MEMORY USAGE key SAMPLES 0``: every element counted."""
    return int(await client.memory_usage(key, samples=0) or 0)
