"""Section 9: agent framework sessions: kvstore's openai-agents Session against RedisSession.

`kvstore.integrations.openai_agents.KVStoreSession` on `RedisDriver` and openai-agents'
own `RedisSession` share one `redis.asyncio` client (RESP2) to the run's private Redis, and
are timed in the same rounds, interleaved, with a bare GET of a 100-byte value (the
baseline of every ratio, as in the peers section). Both are used through the SDK's
`Session` protocol only:

* **get_items(20)**: the newest 20 items of a session, oldest first;
* **add_items(2)**: append the user's message and the assistant's answer.

Each session is filled first with the same conversation (a user message and an assistant
output message per turn), through `add_items` of 500 items at a time.
"""

from __future__ import annotations

from typing import Any

from benchmarks import _data
from benchmarks._env import Env, SkipSection, missing
from benchmarks._harness import Contender, Report, Stats, fmt_ratio, fmt_time, interleave
from kvstore import Storage

NAME = "sessions"
TITLE = "9. Agent sessions: KVStoreSession against openai-agents RedisSession"

BASELINE = "redis.asyncio GET"
KV = "kvstore KVStoreSession"
PEER = "openai-agents RedisSession"
GET20, ADD2 = "get_items(20)", "add_items(2)"
FILL_CHUNK = 500


def _pair(i: int) -> list[Any]:
    turn = _data.turn(i)
    return [
        {"role": "user", "content": turn.user_text},
        {
            "type": "message",
            "role": "assistant",
            "id": f"msg_{i}",
            "status": "completed",
            "content": [{"type": "output_text", "text": turn.assistant_text, "annotations": []}],
        },
    ]


async def _fill(session: Any, items: int) -> None:
    turns = items // 2
    for first in range(0, turns, FILL_CHUNK // 2):
        batch: list[Any] = []
        for i in range(first, min(turns, first + FILL_CHUNK // 2)):
            batch += _pair(i)
        await session.add_items(batch)


async def run(env: Env) -> Report:
    report = Report(NAME, TITLE, env.out)
    if note := missing("redis", "agents"):
        raise SkipSection(note)
    import redis.asyncio as aioredis
    from agents.extensions.memory import RedisSession

    from kvstore.drivers.redis import RedisDriver
    from kvstore.integrations.openai_agents import KVStoreSession

    report.text(__doc__.split("\n\n", 1)[1])
    url = env.fresh_redis()
    client = aioredis.Redis.from_url(url, protocol=2)
    size = 200 if env.mode.quick else 1_000
    results: dict[str, dict[str, Stats]] = {}
    try:
        await client.set("bench:get", b"v" * 100)
        store = Storage(RedisDriver(client))
        sessions: dict[str, Any] = {
            KV: KVStoreSession("bench-session", store),
            PEER: RedisSession("bench-session", redis_client=client),
        }
        for session in sessions.values():
            await _fill(session, size)
        answer = _pair(10**6)
        get = Contender(BASELINE, lambda: client.get("bench:get"))
        for op in (GET20, ADD2):
            contenders = [get] + [
                Contender(
                    name,
                    (lambda s=s: s.get_items(20))
                    if op == GET20
                    else (lambda s=s: s.add_items(answer)),
                )
                for name, s in sessions.items()
            ]
            results[op] = await interleave(contenders, env.mode.io)
        got = [await s.get_items(20) for s in sessions.values()]
        assert got[0] == got[1], "both sessions must return the same items"
    finally:
        await client.aclose()
    report.heading(
        f"p50 and p99 as a ratio to a bare GET in the same rounds, sessions of {size:,} items "
        "(the GET row: its own p50 and p99)"
    )
    rows = []
    for name in (BASELINE, KV, PEER):
        row = [name]
        for op in (GET20, ADD2):
            s, base = results[op][name], results[op][BASELINE]
            p50, p99 = s.ratio_to(base)
            tail = fmt_time(s.p99) if name == BASELINE else fmt_ratio(p99)
            row += [f"**{fmt_ratio(p50)}** ({fmt_time(s.p50)})", tail]
        rows.append(row)
    report.table(["contender", f"{GET20} p50", "p99", f"{ADD2} p50", "p99"], rows)
    report.text(
        "Samples per contender: "
        + ", ".join(f"{op}: {results[op][KV].n}" for op in (GET20, ADD2))
        + ". `RedisSession.add_items` runs WATCH, TYPE checks and MULTI/EXEC (several round "
        "trips); `KVStoreSession.add_items` is one script. `RedisSession.get_items` is one "
        "LRANGE of the raw items; `KVStoreSession.get_items` is one pipelined ZCARD and "
        "ZRANGE of the thread's sorted set (no script), decoded into typed message records."
    )
    for op in (GET20, ADD2):
        kv, peer = results[op][KV].p50, results[op][PEER].p50
        report.headline(
            f"KVStoreSession {op} against RedisSession ({size:,} items)",
            "faster (p50)",
            f"{fmt_ratio(kv / peer)} RedisSession's time "
            f"({fmt_ratio(kv / results[op][BASELINE].p50)} against "
            f"{fmt_ratio(peer / results[op][BASELINE].p50)} a GET)",
            kv < peer,
        )
    return report
