"""Request checks that fail before any network call, naming the field at fault.

One pass over a create request: the known fields, their types, enums and ranges, every
`input` item (its `type`, `role`, content parts and their required fields) and every tool,
as the installed `openai` package's request TypedDicts define them (compiled once, in
`schema.py`), so a newer `openai` release teaches llmrelay new fields, items and tools
without a change here. The first problem is a 400 whose `param` is its path
(`input[0].content`, `tools[1].type`), worded as OpenAI words it.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, NamedTuple

import orjson
from openai.types.responses.response_create_params import ResponseCreateParamsBase
from openai.types.responses.response_input_param import ResponseInputParam
from typing_extensions import get_type_hints

from .. import errors
from .schema import Check, Compiler, Problem, json_type, union_members

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
        "prompt_caching",
        "use_chat_completions_api",
        # AWS Bedrock's, as LiteLLM names them
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_region_name",
        "aws_profile_name",
        "aws_bedrock_runtime_endpoint",
        "aws_role_name",
        "aws_session_name",
        "aws_web_identity_token",
        "aws_sts_endpoint",
        # cloud accounts: Vertex AI and Azure Entra ID
        "vertex_project",
        "vertex_location",
        "vertex_credentials",
        "azure_ad_token",
    }
)

# Inclusive bounds the API enforces. `max_output_tokens` stops at 1, not OpenAI's 16: other
# providers take smaller limits, and an OpenAI upstream still answers its own 400.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "top_logprobs": (0, 20),
    "max_output_tokens": (1, None),
    "max_tool_calls": (1, None),
}
INT64_MAX = 2**63 - 1
METADATA_KEYS, METADATA_KEY_LENGTH, METADATA_VALUE_LENGTH = 16, 64, 512

# The deepest JSON a request may nest. orjson (the store's and the upstream requests' encoder)
# writes at most 254 levels; the margin covers the envelopes around request values (stream
# events, translated provider requests).
MAX_DEPTH = 200
_ENCODER_DEPTH = 254


class _Tables(NamedTuple):
    fields: dict[str, Check]
    items: Check
    range_kind: dict[str, str]


@functools.cache
def _tables() -> _Tables:
    """The checks, compiled from the openai types on first use (tens of ms: not at import)."""
    compiler = Compiler()
    hints = get_type_hints(ResponseCreateParamsBase, include_extras=True)
    # llmrelay also takes `instructions` as a list of items, the shape the Response object reports.
    hints |= {"stream": bool, "client_metadata": dict[str, Any], "instructions": str | ResponseInputParam, "model": str}
    return _Tables(
        fields={name: compiler.compile(t) for name, t in hints.items() if name in KNOWN_FIELDS},
        items=compiler.compile(ResponseInputParam),
        range_kind={name: "decimal" if float in union_members(hints[name]) else "integer" for name in RANGES},
    )


def check_create(params: dict[str, Any]) -> None:
    check_storable(params)  # first: the checks below recurse only as deep as the storable value
    fields = _tables().fields
    for name, value in params.items():
        check = fields.get(name)
        if check is None:
            raise errors.bad_request(
                f"Unrecognized request argument supplied: {name}. "
                "Send fields this version does not know through extra_body.",
                param=name,
                code="unknown_parameter",
            )
        if value is not None and (problem := check(value)) is not None:
            raise _error(problem.at(name))
    for name in ("model", "input"):
        if name == "input" and "prompt" in params:
            continue
        value = params.get(name)
        if value is None or value == "":
            raise errors.bad_request(
                f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
    for name, (low, high) in RANGES.items():
        if (value := params.get(name)) is not None:
            _check_range(name, value, low, high)
            if isinstance(value, float) and _tables().range_kind[name] == "integer":
                params[name] = int(value)  # 2.0 passed the integer check: upstreams get 2
    if metadata := params.get("metadata"):
        check_metadata(metadata)


def check_items(value: Any, param: str) -> None:
    """A list of input items as a create's `input` takes them (conversation items too)."""
    check_storable(value, param)
    if (problem := _tables().items(value)) is not None:
        raise _error(problem, param)


def check_metadata(metadata: dict[str, str], param: str = "metadata") -> None:
    if len(metadata) > METADATA_KEYS:
        raise errors.bad_request(
            f"Invalid '{param}': too many properties. Expected an object with at most {METADATA_KEYS} properties, "
            f"but got {len(metadata)} instead.",
            param=param,
            code="object_above_max_properties",
        )
    for key, value in metadata.items():
        if len(key) > METADATA_KEY_LENGTH:
            raise errors.bad_request(
                f"Invalid '{param}': the key '{key[:METADATA_KEY_LENGTH]}...' is longer than "
                f"{METADATA_KEY_LENGTH} characters.",
                param=f"{param}.{key}",
                code="invalid_value",
            )
        if isinstance(value, str) and len(value) > METADATA_VALUE_LENGTH:
            raise errors.bad_request(
                f"Invalid '{param}.{key}': string too long. Expected a string with maximum length "
                f"{METADATA_VALUE_LENGTH}, but got a string with length {len(value)} instead.",
                param=f"{param}.{key}",
                code="string_above_max_length",
            )


def check_storable(value: Any, param: str = "") -> None:
    """Refuse what the store could not write: JSON nested deeper than MAX_DEPTH, or (from the
    SDK) values that are not JSON at all. One encode in C finds out, with the value placed at
    the bottom of a shell that uses up the encoder's levels beyond MAX_DEPTH; only a refusal
    walks the value in Python to name the path."""
    shell, hole = _shell()
    hole.append(value)
    try:
        orjson.dumps(shell)
    except orjson.JSONEncodeError:
        path, why = _unstorable(value)
        where = _join(param, path)
        raise errors.bad_request(
            f"Invalid value for '{where}': {why}." if where else f"Invalid request: {why}.",
            param=where or None,
            code="invalid_value",
        ) from None
    finally:
        hole.clear()


_local = threading.local()  # one shell per thread: encoding runs no Python code, so nothing interleaves


def _shell() -> tuple[list[Any], list[Any]]:
    if not hasattr(_local, "shell"):
        hole: list[Any] = []
        shell = hole
        for _ in range(_ENCODER_DEPTH - MAX_DEPTH - 1):
            shell = [shell]
        _local.shell, _local.hole = shell, hole
    return _local.shell, _local.hole


def _unstorable(value: Any) -> tuple[list[str | int], str]:
    """The first place (a path) where `value` nests too deeply or holds a non-JSON value.
    Iterative: the value may nest deeper than Python's recursion limit."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if len(path) >= MAX_DEPTH and isinstance(node, (dict, list, tuple)):
            return path[:8], f"JSON nested deeper than {MAX_DEPTH} levels cannot be stored"
        if isinstance(node, dict):
            for k in reversed(list(node)):
                if not isinstance(k, str):
                    return path, f"object keys must be strings, not {type(k).__name__}"
                stack.append((node[k], [*path, k]))
        elif isinstance(node, (list, tuple)):
            stack.extend((v, [*path, i]) for i, v in reversed(list(enumerate(node))))
        else:
            try:
                orjson.dumps(node)
            except orjson.JSONEncodeError as exc:
                return path, f"not a JSON value ({exc})"
    return [], "the request cannot be encoded as JSON"


def _check_range(name: str, value: Any, low: float | None, high: float | None) -> None:
    kind = _tables().range_kind[name]
    if high is None and kind == "integer":
        high = INT64_MAX  # what every encoder on the way (orjson, Postgres BIGINT, upstream APIs) holds
    if low is not None and value < low:
        raise errors.bad_request(
            f"Invalid '{name}': {kind} below minimum value. Expected a value >= {low}, but got {value} instead.",
            param=name,
            code=f"{kind}_below_min_value",
        )
    if high is not None and value > high:
        raise errors.bad_request(
            f"Invalid '{name}': {kind} above maximum value. Expected a value <= {high}, but got {value} instead.",
            param=name,
            code=f"{kind}_above_max_value",
        )


def _error(problem: Problem, root: str = "") -> errors.APIStatusError:
    param = problem.param(root)
    if problem.kind == "missing":
        return errors.bad_request(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if problem.kind == "value":
        allowed = [f"'{v}'" for v in problem.allowed]
        listed = allowed[0] if len(allowed) == 1 else ", ".join(allowed[:-1]) + f", and {allowed[-1]}"
        if len(allowed) == 2:
            listed = " and ".join(allowed)
        return errors.bad_request(
            f"Invalid value: '{problem.value}'. Supported values are: {listed}.", param=param, code="invalid_value"
        )
    names = problem.expected
    want = names[0] if len(names) == 1 else "one of " + ", ".join(names[:-1]) + f" or {names[-1]}"
    return errors.bad_request(
        f"Invalid type for '{param}': expected {want}, but got {json_type(problem.value)} instead.",
        param=param,
        code="invalid_type",
    )


def _join(root: str, path: list[str | int]) -> str:
    out = root
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else seg)
    return out
