"""A LangGraph graph that stops at ``interrupt()``, run one phase per process.

``python -m tests.integrations.langgraph_interrupt SAVER URL THREAD PHASE``:

* ``start``: runs the graph on THREAD until it is interrupted, prints what it asks;
* ``resume``: a new process with a new saver resumes it with ``Command(resume=...)`` and
  prints the final state.

Each phase prints one JSON line. SAVER names how to build the checkpointer from URL:
``kvstore`` (``KVStoreSaver.from_url``) or ``upstash-peer`` (langgraph-checkpoint-upstash-redis
on a local Upstash-protocol server, ``URL`` being ``http://host:port#token``), which proves
the harness on a peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt


class State(TypedDict, total=False):
    order: str
    approved: bool
    note: str
    log: list[str]


def _plan(state: State) -> dict[str, Any]:
    return {"log": [*state.get("log", []), f"planned {state['order']}"]}


def _approve(state: State) -> dict[str, Any]:
    answer = interrupt({"question": f"Ship {state['order']}?"})
    return {
        "approved": bool(answer["ok"]),
        "note": answer["note"],
        "log": [*state.get("log", []), "reviewed"],
    }


def _ship(state: State) -> dict[str, Any]:
    done = "shipped" if state["approved"] else "cancelled"
    return {"log": [*state.get("log", []), done]}


def build(checkpointer: BaseCheckpointSaver[Any]) -> Any:
    graph = StateGraph(State)
    graph.add_node("plan", _plan)
    graph.add_node("approve", _approve)
    graph.add_node("ship", _ship)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "approve")
    graph.add_edge("approve", "ship")
    graph.add_edge("ship", END)
    return graph.compile(checkpointer=checkpointer)


@contextlib.asynccontextmanager
async def saver(kind: str, url: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    if kind == "kvstore":
        from kvstore.integrations.langgraph import KVStoreSaver

        made = KVStoreSaver.from_url(url)
        try:
            yield made
        finally:
            await made.aclose()
    elif kind == "upstash-peer":
        from langgraph.checkpoint.upstash_redis.aio import AsyncUpstashRedisSaver

        rest_url, _, token = url.partition("#")
        yield AsyncUpstashRedisSaver.from_conn_info(url=rest_url, token=token)
    else:
        raise SystemExit(f"unknown saver {kind!r}")


async def main(kind: str, url: str, thread: str, phase: str) -> None:
    config = {"configurable": {"thread_id": thread}}
    async with saver(kind, url) as checkpointer:
        graph = build(checkpointer)
        if phase == "start":
            result = await graph.ainvoke({"order": "order-7", "log": []}, config)
            asked = [i.value for i in result.get("__interrupt__", [])]
            state = await graph.aget_state(config)
            print(json.dumps({"asked": asked, "next": list(state.next)}))
        elif phase == "resume":
            result = await graph.ainvoke(Command(resume={"ok": True, "note": "rush"}), config)
            state = await graph.aget_state(config)
            print(json.dumps({"result": result, "next": list(state.next)}))
        else:
            raise SystemExit(f"unknown phase {phase!r}")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
