"""The translating adapters by wire protocol (a provider row's `api`), imported on first use:
a process that serves one provider never loads the others' modules."""

from __future__ import annotations

import importlib

from .base import Adapter

ADAPTERS = {
    "anthropic": "llmrelay.providers.anthropic:Anthropic",
    "chat": "llmrelay.providers.chat:Chat",
    "gemini": "llmrelay.providers.gemini:Gemini",
    "bedrock": "llmrelay.providers.bedrock:Bedrock",
    "vertex_gemini": "llmrelay.providers.vertex:VertexGemini",
    "vertex_anthropic": "llmrelay.providers.vertex:VertexAnthropic",
    "responses": "llmrelay.providers.openai:OpenAIResponses",
}


def make_adapter(api: str) -> Adapter:
    module, _, name = ADAPTERS[api].partition(":")
    return getattr(importlib.import_module(module), name)()
