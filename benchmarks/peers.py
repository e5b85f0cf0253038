"""Section 2: conversation memory against the Redis stores people use today.

All contenders talk to the same private Redis over loopback and are timed in the same
rounds, interleaved, as is a bare `redis.asyncio` GET of a 100-byte value: the floor of any
Redis round trip from Python, and the baseline of every ratio here. Two operations:

* **append 2**: store a user message and the assistant's answer (text and a tool call);
* **last 20**: read the newest 20 messages of a thread, oldest first, as records.

Each peer is used the way its docs show, through its public API, with its own message
shape for the same conversation turn:

* kvstore: `store.memory.save_messages([user, answer])` (one script, `save_messages`) and
  `store.memory.list_messages(thread, last=20)` (a pipelined `ZCARD` and `ZRANGE -20 -1`
  of the thread's sorted set, whose members carry the records: no Lua), on `RedisDriver`
  with key layout 2 (one bucket: the default on a single server). Each store's first call
  checks its layout; the warm-up makes it, so no timed call does;
* `openai-agents` `RedisSession`: `add_items([user, answer])` and `get_items(limit=20)`;
* `llama-index-storage-chat-store-redis` `RedisChatStore`: `async_add_message` per message
  (it has no bulk add) and `aget_messages(key)[-20:]` (it has no "last N": its memory
  buffer reads the whole list and trims);
* `langchain-community` `RedisChatMessageHistory`: `add_messages([user, answer])` and
  `messages[-20:]` (its API is blocking; it also reads the whole list), and its async
  twins `aadd_messages`/`aget_messages`, which an async agent calls (langchain-core runs
  the blocking calls in a thread pool).

Threads are grown from 10^2 to 10^5 messages; at each size the reads are timed first, then
the appends (which add a few hundred messages at most, a small fraction of the larger sizes).
Threads are filled fast through each store's own serialized form (kvstore: `save_messages`
of 500 at a time; the list-based peers: `RPUSH`/`LPUSH` of what their add would write).
"""

from __future__ import annotations

import itertools
import json
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import msgspec

from benchmarks import _data
from benchmarks._env import Env, SkipSection, missing
from benchmarks._harness import (
    TIMES,
    Contender,
    Report,
    Stats,
    fmt_int,
    fmt_ratio,
    fmt_time,
    interleave,
    line_chart,
)
from benchmarks._workload import APPENDED
from kvstore import Message, Storage, Thread
from kvstore.keys import lex_escape

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

NAME = "peers"
TITLE = "2. Operations against the peers: append 2 messages, read the last 20"

TARGET = 1.5
FLAT = 1.25
BASELINE = "redis.asyncio GET"
KV_JSON = "kvstore (json)"
APPEND, LAST = "append 2", "last 20"
FILL_CHUNK = 1_000


@dataclass
class Peer:
    """One contender: how it appends, reads the last 20, fills and measures its thread."""

    name: str
    append: Callable[[], Any]
    last20: Callable[[], Any]
    fill: Callable[[int, int], Awaitable[None]]
    length: Callable[[], Awaitable[int]]
    stored: Callable[[], Awaitable[int]]
    note: str = ""


def _kvstore_peer(name: str, store: Storage, thread: str) -> Peer:
    template = _data.message_pair(0, thread)
    counter = itertools.count(10_000_000)

    async def append() -> None:
        # A new turn, later than every message of the thread, as in a conversation.
        i = next(counter)
        at = APPENDED + timedelta(microseconds=2 * i)
        await store.memory.save_messages(
            [
                msgspec.structs.replace(
                    m, id=f"{m.id}-{i}", created_at=at + timedelta(microseconds=k)
                )
                for k, m in enumerate(template)
            ]
        )

    async def fill(start: int, stop: int) -> None:
        for first in range(start, stop, FILL_CHUNK // 2):
            batch: list[Message] = []
            for i in range(first, min(stop, first + FILL_CHUNK // 2)):
                batch += _data.message_pair(i, thread)
            await store.memory.save_messages(batch)

    async def length() -> int:
        return (await store.memory.list_messages(thread, per_page=1)).total

    async def stored() -> int:
        # In layout 2 a message is one member of its thread's sorted set: the sequence,
        # the id and the packed record. The answer of the first turn is among the first.
        key = (await store.keys()).thread(thread).messages
        (members,) = await store.driver.execute([("ZRANGE", key, 0, 9)])
        answer = lex_escape(template[1].id).encode() + b"\x00"
        return max(len(m) for m in cast("list[bytes]", members) if answer in m)

    return Peer(
        name,
        append,
        lambda: store.memory.list_messages(thread, last=20),
        lambda a, b: fill(a // 2, b // 2),
        length,
        stored,
    )


def _openai_peer(client: Any) -> Peer:
    from agents.extensions.memory import RedisSession

    session = RedisSession("bench", redis_client=client)
    turn = _data.turn(0)
    pair: list[Any] = [
        {"role": "user", "content": turn.user_text},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": turn.assistant_text, "annotations": []}],
        },
    ]
    key = session._messages_key

    async def fill(start: int, stop: int) -> None:
        for first in range(start, stop, FILL_CHUNK):
            await session.add_items(pair * (min(FILL_CHUNK, stop - first) // 2))

    return Peer(
        "openai-agents RedisSession",
        lambda: session.add_items(pair),
        lambda: session.get_items(limit=20),
        fill,
        lambda: client.llen(key),
        lambda: _list_item_bytes(client, key),
        note="the Responses API keeps a tool call in an item of its own, so the answer item "
        "carries the text only",
    )


def _llama_peer(url: str, client: Any) -> Peer:
    from llama_index.core.llms import ChatMessage
    from llama_index.storage.chat_store.redis import RedisChatStore

    store = RedisChatStore(redis_url=url)
    turn = _data.turn(0)
    user = ChatMessage(role="user", content=turn.user_text)
    answer = ChatMessage(
        role="assistant",
        content=turn.assistant_text,
        additional_kwargs={
            "tool_calls": [
                {
                    "id": turn.tool_call_id,
                    "type": "function",
                    "function": {"name": turn.tool_name, "arguments": json.dumps(turn.tool_args)},
                }
            ],
            "tool_result": turn.tool_result,
        },
    )
    key = "llama:bench"
    encoded = [user.model_dump_json(), answer.model_dump_json()]

    async def append() -> None:
        await store.async_add_message(key, user)
        await store.async_add_message(key, answer)

    async def last20() -> Any:
        return (await store.aget_messages(key))[-20:]

    async def fill(start: int, stop: int) -> None:
        for first in range(start, stop, FILL_CHUNK):
            await client.rpush(key, *(encoded * (min(FILL_CHUNK, stop - first) // 2)))

    return Peer(
        "llama-index RedisChatStore",
        append,
        last20,
        fill,
        lambda: client.llen(key),
        lambda: _list_item_bytes(client, key),
    )


def _langchain_peer(url: str, client: Any, *, run_async: bool = False) -> Peer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.chat_message_histories import RedisChatMessageHistory
    from langchain_core.messages import AIMessage, HumanMessage, message_to_dict

    history = RedisChatMessageHistory("bench", url=url)
    turn = _data.turn(0)
    pair = [
        HumanMessage(content=turn.user_text),
        AIMessage(
            content=turn.assistant_text,
            tool_calls=[{"name": turn.tool_name, "args": turn.tool_args, "id": turn.tool_call_id}],
            additional_kwargs={"tool_result": turn.tool_result},
        ),
    ]
    encoded = [json.dumps(message_to_dict(m)) for m in pair]

    async def fill(start: int, stop: int) -> None:
        for first in range(start, stop, FILL_CHUNK):
            await client.lpush(history.key, *(encoded * (min(FILL_CHUNK, stop - first) // 2)))

    async def alast20() -> list[Any]:
        return (await history.aget_messages())[-20:]

    if run_async:
        history = RedisChatMessageHistory("bench-async", url=url)
        return Peer(
            "langchain-community RedisChatMessageHistory (async API)",
            lambda: history.aadd_messages(pair),
            alast20,
            fill,
            lambda: client.llen(history.key),
            lambda: _list_item_bytes(client, history.key),
            note="`aadd_messages`/`aget_messages`: langchain-core runs the blocking calls "
            "in a thread pool",
        )
    return Peer(
        "langchain-community RedisChatMessageHistory",
        lambda: history.add_messages(pair),
        lambda: history.messages[-20:],
        fill,
        lambda: client.llen(history.key),
        lambda: _list_item_bytes(client, history.key),
        note="blocking API (redis-py's sync client), called as its docs show",
    )


async def _list_item_bytes(client: Any, key: str) -> int:
    items = await client.lrange(key, 0, 1)
    return max(len(i) for i in items)


async def run(env: Env) -> Report:
    report = Report(NAME, TITLE, env.out)
    if note := missing("redis"):
        raise SkipSection(note)
    import redis.asyncio as aioredis

    from kvstore.drivers.redis import RedisDriver

    report.text(__doc__.split("\n\n", 1)[1])
    url = env.fresh_redis()
    client = aioredis.Redis.from_url(url, protocol=2)
    await client.set("bench:get", b"v" * 100)
    peers: list[Peer] = []
    for name, codec in ((KV_JSON, "json"), ("kvstore (msgpack)", "msgpack")):
        store = Storage(RedisDriver(client), namespace=f"kv-{codec}", codec=codec)  # type: ignore[arg-type]
        await store.memory.save_thread(Thread(id="bench", resource_id="user-1"))
        peers.append(_kvstore_peer(name, store, "bench"))
    makers: list[tuple[str, tuple[str, ...], Callable[[], Peer]]] = [
        ("openai-agents", ("agents",), lambda: _openai_peer(client)),
        ("llama-index-storage-chat-store-redis", ("llama_index.storage.chat_store.redis",),
         lambda: _llama_peer(url, client)),
        ("langchain-community", ("langchain_community",), lambda: _langchain_peer(url, client)),
        ("langchain-community", ("langchain_community",),
         lambda: _langchain_peer(url, client, run_async=True)),
    ]  # fmt: skip
    for package, modules, make in makers:
        if note := missing(*modules):
            report.skip(package, note)
            continue
        try:
            peers.append(make())
        except Exception as exc:  # a peer that cannot start here is reported, not faked
            report.skip(package, f"could not be set up: {type(exc).__name__}: {exc}")
    get = Contender(BASELINE, lambda: client.get("bench:get"))
    sizes = env.mode.sizes(100_000)
    results: dict[int, dict[str, dict[str, Stats]]] = {}
    stored: dict[str, int] = {}
    try:
        for size in sizes:
            for peer in peers:
                have = await peer.length()
                if have < size:
                    await peer.fill(have, size)
                if peer.name not in stored:  # the size of one message: once is enough
                    stored[peer.name] = await peer.stored()
            budget = env.mode.io
            by_op: dict[str, dict[str, Stats]] = {}
            for op in (LAST, APPEND):
                contenders = [get] + [
                    Contender(p.name, p.last20 if op == LAST else p.append) for p in peers
                ]
                by_op[op] = await interleave(contenders, budget)
            results[size] = by_op
            print(f"  peers: {size:,} messages done", flush=True)
    finally:
        await client.aclose()
    _write(report, env, peers, sizes, results, stored)
    return report


def _write(
    report: Report,
    env: Env,
    peers: list[Peer],
    sizes: list[int],
    results: dict[int, dict[str, dict[str, Stats]]],
    stored: dict[str, int],
) -> None:
    for op in (APPEND, LAST):
        report.heading(
            f"{op}: p50 and p99 as a ratio to a bare GET in the same rounds "
            "(the GET row: its own p50 and p99)"
        )
        headers = ["peer"]
        for size in sizes:
            headers += [f"{size:,} msgs p50", "p99"]
        rows = []
        for name in [BASELINE, *(p.name for p in peers)]:
            row = [name]
            for size in sizes:
                s = results[size][op][name]
                base = results[size][op][BASELINE]
                p50, p99 = s.ratio_to(base)
                tail = fmt_time(s.p99) if name == BASELINE else fmt_ratio(p99)
                row += [f"**{fmt_ratio(p50)}** ({fmt_time(s.p50)})", tail]
            rows.append(row)
        report.table(headers, rows)
    report.heading("Samples and stored size")
    report.table(
        ["peer", "bytes stored for the answer message", "note"],
        [[p.name, fmt_int(stored.get(p.name, 0)), p.note] for p in peers],
    )
    n = {size: results[size][LAST][BASELINE].n for size in sizes}
    report.text(
        "Samples per contender and size (fewer where one call takes long): "
        + ", ".join(
            f"{size:,} msgs: GET {n[size]}, "
            + ", ".join(f"{p.name} {results[size][LAST][p.name].n}" for p in peers)
            for size in sizes[-1:]
        )
        + "."
    )
    chart = "peers_last20.png"
    line_chart(
        env.out / chart,
        title="read the last 20 messages: p50 as a ratio to a bare GET",
        x=sizes,
        series={
            p.name: [results[s][LAST][p.name].p50 / results[s][LAST][BASELINE].p50 for s in sizes]
            for p in peers
        },
        xlabel="messages in the thread (log)",
        ylabel=f"{TIMES} a redis.asyncio GET (log)",
        logy=True,
        hline=(TARGET, f"target for kvstore ({TARGET}{TIMES})"),
    )
    report.image(chart, "last 20 messages against thread size")
    chart = "peers_append.png"
    line_chart(
        env.out / chart,
        title="append 2 messages: p50 as a ratio to a bare GET",
        x=sizes,
        series={
            p.name: [
                results[s][APPEND][p.name].p50 / results[s][APPEND][BASELINE].p50 for s in sizes
            ]
            for p in peers
        },
        xlabel="messages in the thread (log)",
        ylabel=f"{TIMES} a redis.asyncio GET",
        hline=(TARGET, f"target for kvstore ({TARGET}{TIMES})"),
    )
    report.image(chart, "append 2 messages against thread size")
    if not any(p.name == KV_JSON for p in peers):
        return
    for op in (APPEND, LAST):
        ratios = [results[s][op][KV_JSON].ratio_to(results[s][op][BASELINE]) for s in sizes]
        worst = max(r[0] for r in ratios)
        report.headline(
            f"kvstore {op} (json, RedisDriver), every thread size",
            f"≤ {TARGET}{TIMES} a raw GET (p50)",
            f"{fmt_ratio(worst)} at worst (p99 {fmt_ratio(max(r[1] for r in ratios))})",
            worst <= TARGET,
        )
        drift = ratios[-1][0] / ratios[0][0]
        report.headline(
            f"kvstore {op} stays flat, {sizes[0]:,} → {sizes[-1]:,} messages",
            f"ratio at {sizes[-1]:,} ≤ {FLAT}{TIMES} the ratio at {sizes[0]:,}",
            f"{fmt_ratio(ratios[0][0])} → {fmt_ratio(ratios[-1][0])} ({fmt_ratio(drift)})",
            drift <= FLAT,
        )
    openai = "openai-agents RedisSession"
    if any(p.name == openai for p in peers):
        for op in (APPEND, LAST):
            versus = [results[s][op][KV_JSON].p50 / results[s][op][openai].p50 for s in sizes]
            report.headline(
                f"kvstore {op} (json) against openai-agents RedisSession, every thread size",
                f"faster (p50 ratio < 1{TIMES})",
                f"kvstore / RedisSession p50: {fmt_ratio(min(versus))} to {fmt_ratio(max(versus))}",
                max(versus) < 1,
            )
    for peer in peers:
        if peer.name.startswith("kvstore"):
            continue
        for op in (APPEND, LAST):
            p50 = results[sizes[-1]][op][peer.name].p50 / results[sizes[-1]][op][BASELINE].p50
            report.headline(
                f"{peer.name}, {op}, {sizes[-1]:,} messages",
                "context",
                fmt_ratio(p50),
                None,
            )
