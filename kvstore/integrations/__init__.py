"""Thin adapters that let agent frameworks keep their state in kvstore.

Each module needs its framework, installed with the extra of the same name; importing one
without it fails with the install command:

* :mod:`kvstore.integrations.openai_agents` (``kvstore[openai-agents]``): a ``Session``
  for the OpenAI Agents SDK, kept as a thread of ``store.memory``.
* :mod:`kvstore.integrations.pydantic_ai` (``kvstore[pydantic-ai]``): pydantic-ai message
  history, kept as a thread of ``store.memory``.
* :mod:`kvstore.integrations.langgraph` (``kvstore[langgraph]``): LangGraph's checkpointer
  and store (in progress, see ``docs/langgraph-design.md``).

The adapters use only the public API of :class:`~kvstore.Storage`.
"""

__all__: list[str] = []
