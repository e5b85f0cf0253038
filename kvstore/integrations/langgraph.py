"""LangGraph: a checkpointer (``KVStoreSaver``) and a long-term store (``KVStoreStore``).

Each is a thin adapter over a domain of its own (``store.checkpoints`` for the saver; see
``docs/langgraph-design.md``). Importing this module without LangGraph names the install
command: ``pip install "kvstore[langgraph]"``.
"""

from __future__ import annotations

from kvstore._extras import require

require("langgraph.checkpoint.base", "langgraph")
require("langgraph.store.base", "langgraph")

from kvstore.integrations._langgraph_saver import KVStoreSaver  # noqa: E402
from kvstore.integrations._langgraph_store import KVStoreStore  # noqa: E402

__all__ = ["KVStoreSaver", "KVStoreStore"]
