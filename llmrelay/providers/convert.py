"""Pure helpers shared by the translating adapters (Anthropic, Gemini, Chat Completions)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from .. import errors, items
from .base import Call

Json = dict[str, Any]
_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[^,]*)?;base64,(?P<data>.*)", re.S)


def conversation(call: Call) -> list[Json]:
    """Everything a stateless upstream must see: replayed history, then this turn's input."""
    return call.context + items.as_items(call.params.get("input") or [])


NAMESPACE_SEP = "__"


def flatten_namespaces(params: Json) -> dict[str, tuple[str, str]]:
    """`namespace` tools (groups of function tools, as Codex sends them) as plain function tools
    named `<namespace>__<name>`, for providers without namespaces; returns flat name -> both."""
    flat: dict[str, tuple[str, str]] = {}
    tools: list[Json] = []
    for tool in params.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "namespace":
            for inner in tool.get("tools") or []:
                name = f"{tool['name']}{NAMESPACE_SEP}{inner.get('name', '')}"
                flat[name] = (tool["name"], inner.get("name", ""))
                tools.append({**inner, "name": name})
        else:
            tools.append(tool)
    if flat:
        params["tools"] = tools
    return flat


def tool_name(item: Json) -> str:
    """A function_call's name as a provider without namespaces knows it."""
    ns = item.get("namespace")
    return f"{ns}{NAMESPACE_SEP}{item['name']}" if ns else str(item["name"])


def data_url(url: str) -> tuple[str, str] | None:
    """("image/png", base64 data) for a data: URL, else None."""
    m = _DATA_URL.match(url)
    return (m["mime"] or "application/octet-stream", m["data"]) if m else None


def parts(item: Json) -> Iterator[Json]:
    """The content parts of a message item (a bare string is one text part)."""
    content = item.get("content")
    if isinstance(content, str):
        yield {"type": "input_text", "text": content}
    elif isinstance(content, list):
        yield from (p for p in content if isinstance(p, dict))


def text_of(value: Any) -> str:
    """A tool output or content list as plain text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p.get("text", "") for p in value if isinstance(p, dict))
    return "" if value is None else orjson.dumps(value).decode()


def arguments(raw: str | None, provider: str) -> Json:
    """A function call's JSON arguments as an object."""
    try:
        value = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        raise errors.bad_request(
            f"function_call arguments must be a JSON object to replay them to provider '{provider}'.",
            param="input",
        ) from None
    return value if isinstance(value, dict) else {"value": value}


def unsupported_input(kind: str, provider: str) -> errors.APIStatusError:
    return errors.bad_request(
        f"Input items of type '{kind}' cannot be sent to provider '{provider}'.",
        param="input",
        code="unsupported_parameter",
    )


def error_payload(status: int, body: bytes) -> tuple[Json, str]:
    """A provider error body's error object, and a message even when there is no such object."""
    try:
        err = orjson.loads(body).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        err = {}
    message = err.get("message") if isinstance(err, dict) else None
    return (err if isinstance(err, dict) else {}), message or body.decode(errors="replace")[:500] or f"HTTP {status}"


_OVERFLOW = re.compile(
    r"prompt is too long|maximum context length|context length|context window|exceeds the maximum number of tokens"
    r"|too many (input )?tokens",
    re.I,
)


def overflow_error(status: int, message: str, **kw: Any) -> errors.APIStatusError | None:
    """OpenAI's context_length_exceeded error when an upstream says the input was too long."""
    if status not in (400, 413) or not _OVERFLOW.search(message):
        return None
    return errors.status_error(400, message, param="input", code="context_length_exceeded", **kw)


def json_format(params: Json) -> Json | None:
    """`text.format` when it asks for JSON (json_schema or json_object), else None."""
    fmt = (params.get("text") or {}).get("format") or {}
    return fmt if fmt.get("type") in ("json_schema", "json_object") else None
