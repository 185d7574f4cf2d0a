"""llmrelay: the OpenAI Responses API for every LLM provider, as an SDK and a proxy.

import llmrelay
response = llmrelay.responses(model="openai/o1-pro", input="Hi", max_output_tokens=100)
print(response.output_text)
"""

from __future__ import annotations

from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from .relay import Relay
from .router import Router
from .sdk import (
    AsyncResponseStream,
    DeleteResponseResult,
    acancel_responses,
    acount_input_tokens,
    adelete_responses,
    aget_responses,
    alist_input_items,
    aresponses,
    cancel_responses,
    configure,
    count_input_tokens,
    default_relay,
    delete_responses,
    get_responses,
    list_input_items,
    responses,
)

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncResponseStream",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DeleteResponseResult",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Relay",
    "Router",
    "UnprocessableEntityError",
    "acancel_responses",
    "acount_input_tokens",
    "adelete_responses",
    "aget_responses",
    "alist_input_items",
    "aresponses",
    "cancel_responses",
    "configure",
    "count_input_tokens",
    "default_relay",
    "delete_responses",
    "get_responses",
    "list_input_items",
    "responses",
]
