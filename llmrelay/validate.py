"""Request checks that fail before any network call, naming the field at fault.

The set of known fields comes from the installed `openai` package's own request type, so
a newer `openai` release teaches llmrelay new fields without a change here.
"""

from __future__ import annotations

from typing import Any

from openai.types.responses.response_create_params import ResponseCreateParamsBase

from . import errors

# `client_metadata`: what clients such as Codex say about themselves over the WebSocket mode.
KNOWN_FIELDS = frozenset(ResponseCreateParamsBase.__annotations__) | {"stream", "client_metadata"}

# llmrelay's own per-call options: never sent upstream as body fields.
CALL_OPTIONS = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "custom_llm_provider",
        "timeout",
        "num_retries",
        "max_retries",
        "extra_headers",
        "extra_body",
        "extra_query",
        "mock_response",
        "drop_params",
        "use_chat_completions_api",
    }
)

_NUMBER = (int, float)
_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "input": (str, list),
    "instructions": (str, list),
    "stream": (bool,),
    "store": (bool,),
    "background": (bool,),
    "parallel_tool_calls": (bool,),
    "temperature": _NUMBER,
    "top_p": _NUMBER,
    "max_output_tokens": (int,),
    "max_tool_calls": (int,),
    "top_logprobs": (int,),
    "metadata": (dict,),
    "tools": (list,),
    "include": (list,),
    "previous_response_id": (str,),
    "reasoning": (dict,),
    "text": (dict,),
    "truncation": (str,),
    "user": (str,),
    "service_tier": (str,),
    "prompt_cache_key": (str,),
    "safety_identifier": (str,),
    "tool_choice": (str, dict),
    "conversation": (str, dict),
    "prompt": (dict,),
    "stream_options": (dict,),
}
_NAMES = {str: "a string", list: "an array", bool: "a boolean", int: "an integer", float: "a number", dict: "an object"}


def check_create(params: dict[str, Any]) -> None:
    unknown = [k for k in params if k not in KNOWN_FIELDS]
    if unknown:
        raise errors.bad_request(
            f"Unrecognized request argument supplied: {unknown[0]}. "
            "Send fields this version does not know through extra_body.",
            param=unknown[0],
            code="unknown_parameter",
        )
    for name in ("model", "input"):
        if name == "input" and "prompt" in params:
            continue
        value = params.get(name)
        if value is None or value == "":
            raise errors.bad_request(
                f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
    for name, value in params.items():
        expected = _TYPES.get(name)
        if value is None or expected is None:
            continue
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            want = " or ".join(_NAMES.get(t, t.__name__) for t in expected)
            raise errors.bad_request(
                f"Invalid type for '{name}': expected {want}, but got {_json_type(value)}.",
                param=name,
                code="invalid_type",
            )
    if isinstance(params.get("max_output_tokens"), int) and params["max_output_tokens"] < 1:
        raise errors.bad_request(
            "'max_output_tokens' must be at least 1.", param="max_output_tokens", code="invalid_value"
        )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    for t, name in _NAMES.items():
        if isinstance(value, t):
            return name
    return "null" if value is None else type(value).__name__
