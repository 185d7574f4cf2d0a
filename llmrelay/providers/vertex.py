"""Vertex AI: Gemini and Claude through Google Cloud, on the Gemini and Anthropic adapters.

Only the address, the auth and a few body details differ (cloud.py builds the address,
`.../v1/projects/{project}/locations/{location}/publishers/{google|anthropic}`, and the token
source; every call carries `Authorization: Bearer <Google access token>`):

- Gemini: `models/{m}:generateContent` / `:streamGenerateContent?alt=sse`, the Gemini API's
  body; `:countTokens` takes `{contents, systemInstruction, tools}` unwrapped.
- Claude: `models/{m}:rawPredict` / `:streamRawPredict`, the Messages body without `model`
  (the URL names it) and with `anthropic_version: vertex-2023-10-16`; counting is
  `models/count-tokens:rawPredict` with `model` in the body.
"""

from __future__ import annotations

from dataclasses import replace

from . import anthropic, gemini
from .base import Json
from .registry import Deployment

NAME = "vertex_ai"
ANTHROPIC_VERSION = "vertex-2023-10-16"


class VertexGemini(gemini.Gemini):
    support = replace(gemini.SUPPORT, provider=NAME)

    def count_body(self, model: str, body: Json) -> Json:
        return body  # Vertex takes the request's fields directly, not wrapped in generateContentRequest


class VertexAnthropic(anthropic.Anthropic):
    support = replace(anthropic.SUPPORT, provider=NAME)
    fetches_urls: frozenset[str] = frozenset()  # Vertex takes no URL sources: llmrelay inlines them

    def url(self, dep: Deployment, method: str) -> str:
        if method == "count":
            return f"{dep.api_base}/models/count-tokens:rawPredict"
        return f"{dep.api_base}/models/{dep.model}:{'streamRawPredict' if method == 'stream' else 'rawPredict'}"

    def wire_body(self, body: Json, *, count: bool = False) -> Json:
        out = {"anthropic_version": ANTHROPIC_VERSION, **body}
        if not count:
            out.pop("model", None)
        return out
