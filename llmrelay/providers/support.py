"""What a translating adapter can honour, and what happens to the rest.

A field, tool type or `include` value the provider cannot honour is a 400
`unsupported_parameter` naming it and the provider, unless the caller opted into
`drop_params`; then it is removed and reported (never dropped silently).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import errors

# Fields the core honours for every provider: routing, storage, chaining, streaming, background.
CORE_FIELDS = frozenset(
    {"model", "input", "instructions", "stream", "store", "metadata", "previous_response_id", "stream_options",
     "background", "conversation", "client_metadata"}
)  # fmt: skip
# Keys inside a field a provider may lack while honouring the rest of it, with the value that
# asks for nothing. A provider honouring one lists it in `fields` by its dotted name.
SUBFIELDS = (("text", "verbosity", "medium"),)


@dataclass(frozen=True, slots=True)
class Support:
    provider: str
    fields: frozenset[str]
    tools: frozenset[str] = frozenset({"function"})
    includes: frozenset[str] = frozenset()


def strip_unsupported(params: dict[str, Any], support: Support, *, drop: bool) -> list[str]:
    """Remove what `support` cannot honour from `params` (in place) and return the names,
    or raise unsupported_parameter for the first one when `drop` is off."""
    dropped: list[str] = []

    def refuse(name: str, what: str) -> None:
        if not drop:
            raise errors.bad_request(
                f"{what} is not supported by provider '{support.provider}'. Remove it, or set drop_params "
                "to drop what a provider cannot honour.",
                param=name if name.startswith("tools[") else name.split("[", 1)[0],  # which tool, by index
                code="unsupported_parameter",
            )
        dropped.append(name)

    for name in list(params):
        value = params[name]
        if value is None or name in CORE_FIELDS or name in support.fields:
            continue
        if (name, value) in (("truncation", "disabled"), ("parallel_tool_calls", True)):
            continue  # the defaults ask for nothing
        refuse(name, f"'{name}'")
        del params[name]

    for name, key, default in SUBFIELDS:
        value = params.get(name)
        if isinstance(value, dict) and value.get(key) not in (None, default) and f"{name}.{key}" not in support.fields:
            refuse(f"{name}.{key}", f"'{name}.{key}'")
            params[name] = {k: v for k, v in value.items() if k != key}

    if isinstance(params.get("tools"), list):
        kept = []
        for i, tool in enumerate(params["tools"]):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind in support.tools:
                kept.append(tool)
            else:
                refuse(f"tools[{i}]", f"Tool type '{kind}'")
        params["tools"] = kept
    if isinstance(params.get("include"), list):
        kept_includes = []
        for value in params["include"]:
            if value in support.includes:
                kept_includes.append(value)
            else:
                refuse(f"include[{value}]", f"include value '{value}'")
        params["include"] = kept_includes
    return dropped
