"""A scripted stand-in for an LLM, for the OpenAI Agents SDK's ``Runner`` (no network).

``ScriptedModel`` implements the SDK's ``Model`` interface: each call to ``get_response``
answers with the next scripted turn and records the input it was given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agents import Model, ModelResponse, Usage
from agents.items import TResponseOutputItem
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
)
from openai.types.responses.response_reasoning_item import Summary


def text_message(text: str, id_: str = "msg_1") -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=id_,
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def function_call(name: str, arguments: str, call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        type="function_call", name=name, arguments=arguments, call_id=call_id, id=f"fc_{call_id}"
    )


def reasoning(text: str, id_: str = "rs_1") -> ResponseReasoningItem:
    return ResponseReasoningItem(
        id=id_,
        type="reasoning",
        summary=[Summary(type="summary_text", text=text)],
        encrypted_content="opaque-ciphertext==",
    )


class ScriptedModel(Model):
    """Answers each call with the next scripted list of output items."""

    def __init__(self, *turns: list[TResponseOutputItem]) -> None:
        self.turns = list(turns)
        self.inputs: list[Any] = []

    def then(self, *items: TResponseOutputItem) -> ScriptedModel:
        """Script one more turn."""
        self.turns.append(list(items))
        return self

    async def get_response(
        self,
        system_instructions: str | None,
        input: Any,  # noqa: A002 - the SDK's parameter name
        model_settings: Any,
        tools: Any,
        output_schema: Any,
        handoffs: Any,
        tracing: Any,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: Any,
    ) -> ModelResponse:
        self.inputs.append(input)
        if not self.turns:
            raise AssertionError("the scripted model ran out of turns")
        return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the scripted model does not stream")
        yield  # pragma: no cover - makes this an async generator
