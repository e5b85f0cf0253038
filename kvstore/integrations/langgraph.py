"""LangGraph: a checkpointer (``KVStoreSaver``) and a long-term store (``KVStoreStore``).

Both are being built on a domain of their own (see ``docs/langgraph-design.md``); this
module already checks for its extra, so that ``import kvstore.integrations.langgraph``
without LangGraph names the install command: ``pip install "kvstore[langgraph]"``.
"""

from __future__ import annotations

from kvstore._extras import require

require("langgraph.checkpoint.base", "langgraph")
require("langgraph.store.base", "langgraph")

from kvstore.integrations._langgraph_store import KVStoreStore  # noqa: E402

__all__: list[str] = ["KVStoreStore"]
