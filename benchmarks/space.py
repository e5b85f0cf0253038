"""Section 6: space: bytes per stored message in Redis, JSON against MessagePack.

A thread of 0.7 KB messages (text and a tool call) is saved through `save_messages` with
each codec, in its own namespace, on the private Redis. Per message: `MEMORY USAGE` of its
hash (`SAMPLES 0`: every field counted) plus its share of the thread's sorted set, the only
other structure that grows per message. For context, the same records as one msgspec JSON
string each in a Redis list, which is how the list-based peers store messages.
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
            keys = [store.keys.message(m.id) for m in messages]
            hashes = [await _usage(client, k) for k in keys]
            index = await _usage(client, store.keys.thread_messages("space"))
            fields = await client.hgetall(keys[0])
            payload = sum(len(k) + len(v) for k, v in fields.items())
            encoding = (await client.object("encoding", keys[0])).decode()
            per_hash = sum(hashes) / count
            per_index = index / count
            totals[f"kvstore ({codec})"] = per_hash + per_index
            rows.append(
                [
                    f"kvstore ({codec})",
                    fmt_bytes(payload),
                    fmt_bytes(per_hash),
                    encoding,
                    fmt_bytes(per_index),
                    f"**{fmt_bytes(per_hash + per_index)}**",
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
                "—",
                (await client.object("encoding", "space:list")).decode(),
                fmt_bytes(listed),
                f"**{fmt_bytes(listed)}**",
            ]
        )
    finally:
        await client.aclose()
    report.text(f"{count:,} messages of {len(msgspec.json.encode(messages[0]))} bytes as JSON.")
    report.table(
        [
            "stored as",
            "payload (field names + values)",
            "hash, MEMORY USAGE",
            "encoding",
            "share of the thread index",
            "bytes per message",
        ],
        rows,
    )
    report.text(
        "Why the hash costs more than its payload: Redis keeps a hash as a compact listpack "
        "only while every value is at most `hash-max-listpack-value` (64) bytes; a message's "
        "`content` is larger, so each message hash becomes a real hash table (`hashtable`), "
        "with a dict entry and an SDS string per field, plus the key itself in the keyspace."
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
