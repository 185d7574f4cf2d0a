"""A Codex-style conversation, for prompt caching: long instructions and tools; each turn a user
task, the model's tool call, the tool's output and the model's answer (two requests). The history
is resent in full every turn (store=false, as Codex does), or chained with previous_response_id."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from openai.types.responses import Response

SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Run a shell command in the workspace and return what it printed. " * 8,
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
}
RULES = "You are a coding agent. Read the code before you change it, keep changes small, run the tests. "


def instructions(words: int = 1500) -> str:
    """Long instructions (about `words` words), unique per call so that no earlier test's cache serves them."""
    return f"Session {secrets.token_hex(4)}. " + RULES * (words // len(RULES.split()))


def converse(
    create: Callable[..., Response], model: str, *, turns: int = 10, chain: bool = False, **extra: Any
) -> list[Response]:
    """Every response of the conversation, in order (two per turn)."""
    common = {"model": model, "instructions": instructions(), "tools": [SHELL], **extra}
    history: list[Any] = []
    out: list[Response] = []
    for turn in range(1, turns + 1):
        task = [{"role": "user", "content": f"Task {turn}: list the files of step {turn}."}]
        if chain:
            first = create(**common, input=task, **({"previous_response_id": out[-1].id} if out else {}))
        else:
            first = create(**common, input=history + task, store=False)
        call = first.output[-1]
        assert call.type == "function_call", call
        result = [{"type": "function_call_output", "call_id": call.call_id, "output": f"step{turn}.txt"}]
        history += task + [item.model_dump(exclude_none=True) for item in first.output]
        if chain:
            second = create(**common, input=result, previous_response_id=first.id)
        else:
            second = create(**common, input=history + result, store=False)
        history += result + [item.model_dump(exclude_none=True) for item in second.output]
        out += [first, second]
    return out
