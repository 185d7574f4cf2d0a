"""The MCP tool loop: one response made of several upstream rounds.

It lists each server's tools (or reuses a listing from earlier in the chain), offers them to
the model as function tools, and runs the rounds through the relay's single-round stream:
a call of an MCP tool becomes an `mcp_call` item (or an `mcp_approval_request` when it needs
approval), its result goes back to the model, and the next round starts, until the model
answers, asks the client for something, or the round limit is reached. Every round's events
are renumbered into one builder, so one response and one stream carry them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import aiohttp
import openai

from .. import errors, items
from ..providers.base import Call, response_skeleton
from ..streaming.builder import ResponseBuilder
from ..streaming.events import StreamEvent
from . import client
from .replay import as_function_items, call_pair, error_text, flat_name
from .servers import Plan, Target, function_tool

Json = dict[str, Any]
RunRound = Callable[[Call], Awaitable[AsyncIterator[StreamEvent]]]
REFUSED = "The user declined this tool call; it was not run."
# Items the client has to act on: the response ends with them.
CLIENT_CALLS = frozenset({"function_call", "custom_tool_call", "computer_call", "local_shell_call", "shell_call"})


@dataclasses.dataclass(slots=True)
class _Pending:
    """A call of an MCP tool the model is still streaming."""

    target: Target
    tool: Json
    approval: bool
    run: bool
    item: Json | None = None
    index: int = 0


@dataclasses.dataclass(slots=True)
class _Round:
    ran: int = 0
    asked: int = 0  # approval requests
    client_calls: bool = False
    status: str = "completed"
    incomplete: str | None = None
    failure: Json | None = None
    usage: Json | None = None


class ToolLoop:
    """`await start()` does everything that may still fail as a plain error (a bad approval
    reference, the first upstream call); `events()` then yields the whole stream."""

    def __init__(self, call: Call, plan: Plan, run_round: RunRound) -> None:
        self.call, self.plan, self.run_round = call, plan, run_round
        self.builder = ResponseBuilder(response_skeleton(call), call.new_id, call.namespaces)
        self.response: Json | None = None  # set once the terminal event went out
        self.upstream_id: str | None = None
        self._head: list[StreamEvent] = []
        self._feed: list[Json] = []  # what the next round adds to the input
        self._offered: list[Json] = []
        self._first: AsyncIterator[StreamEvent] | None = None
        self._usage: list[Json] = []

    async def start(self) -> None:
        b, policy = self.builder, self.plan.policy
        self._head += b.start()
        seen = self.plan.history + items.as_items(self.call.params.get("input") or [])
        for target in self.plan.targets:
            await self._tools_of(target, seen)
        for item in seen[len(self.plan.history) :]:
            if item.get("type") == "mcp_approval_response":
                await self._answer(item, seen)
        self._first = await self.run_round(self._round_call(first=True, last=policy.max_rounds <= 1))

    async def events(self) -> AsyncIterator[StreamEvent]:
        b = self.builder
        for event in self._head:
            yield event
        rounds, inner, result = 0, self._first, _Round()
        while inner is not None:
            rounds += 1
            last = rounds >= self.plan.policy.max_rounds
            result = _Round()
            # closed at once when the client goes away, so the upstream connection is let go
            async with aclosing(self._one_round(inner, result, run=not last)) as events:
                async for event in events:
                    yield event
            if result.usage:
                self._usage.append(result.usage)
            inner = None
            if result.failure or result.asked or result.client_calls or not result.ran or last:
                break
            try:
                inner = await self.run_round(
                    self._round_call(first=False, last=rounds + 1 >= self.plan.policy.max_rounds)
                )
            except (openai.APIError, aiohttp.ClientError, TimeoutError) as exc:
                result.failure = {"message": getattr(exc, "message", None) or str(exc), "code": "server_error"}
        if result.failure:
            tail = b.fail(str(result.failure.get("message")), str(result.failure.get("code") or "server_error"))
        else:
            tail = b.finish(usage=_sum(self._usage), incomplete_reason=result.incomplete)
        self.response = b.response
        for event in tail:
            yield event

    # -- listing and approvals ---------------------------------------------------------------

    async def _tools_of(self, target: Target, seen: list[Json]) -> None:
        listed = next(
            (i for i in reversed(seen) if i.get("type") == "mcp_list_tools" and i.get("server_label") == target.label
             and not i.get("error")),
            None,
        )  # fmt: skip
        if listed is not None:  # listed earlier in the chain: reused, not listed again
            tools = [t for t in listed.get("tools") or [] if isinstance(t, dict) and target.allows(t)]
        else:
            tools = await self._list(target)
        for tool in tools:
            name = flat_name(target.label, str(tool["name"]))
            self.plan.names[name] = (target, tool)
            self._offered.append(function_tool(target, tool))

    async def _list(self, target: Target) -> list[Json]:
        b = self.builder
        item: Json = {"id": self.call.new_id("mcpl"), "type": "mcp_list_tools", "server_label": target.label,
                      "tools": [], "error": None}  # fmt: skip
        index, events = b.open_item(item)
        self._head += [*events, b.item_event("response.mcp_list_tools.in_progress", item, index)]
        tools, error = await client.list_tools(target, self.plan.policy.call_timeout)
        item["tools"] = [t for t in tools if target.allows(t)]
        item["error"] = error
        done = "response.mcp_list_tools.failed" if error else "response.mcp_list_tools.completed"
        self._head += [b.item_event(done, item, index), b.close_item(item, index)]
        return item["tools"]

    async def _answer(self, answer: Json, seen: list[Json]) -> None:
        """An `mcp_approval_response` in the input: run the approved call, or tell the model no."""
        ref = answer.get("approval_request_id")
        asked = next((i for i in seen if i.get("type") == "mcp_approval_request" and i.get("id") == ref), None)
        if asked is None:
            raise errors.bad_request(f"No MCP approval request with id '{ref}' was found.", param="input")
        name = flat_name(str(asked.get("server_label")), str(asked.get("name")))
        known = self.plan.names.get(name)
        if known is None:
            raise errors.bad_request(
                f"The MCP tool '{asked.get('name')}' of server '{asked.get('server_label')}' is not among this "
                "request's tools.",
                param="input",
            )
        arguments = str(asked.get("arguments") or "{}")
        if not answer.get("approve"):
            self._feed += call_pair(str(ref), name, arguments, REFUSED)
            return
        target, tool = known
        b = self.builder
        item = _mcp_item(self.call, target, tool, arguments, approval_request_id=str(ref))
        index, events = b.open_item(item)
        self._head += [*events, b.item_event("response.mcp_call.in_progress", item, index)]
        self._head += await self._run(item, index, target, tool, call_id=str(ref), name=name)

    # -- rounds ------------------------------------------------------------------------------

    def _round_call(self, *, first: bool, last: bool) -> Call:
        params = dict(self.call.params)
        choice = params.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "mcp":  # a server's tools, as functions
            label, name = str(choice.get("server_label")), choice.get("name")
            params["tool_choice"] = {"type": "function", "name": flat_name(label, name)} if name else "required"
        if not first and params.get("tool_choice") not in (None, "none", "auto"):
            params["tool_choice"] = "auto"  # a forced call is made once, not every round
        params.update(stream=True, store=False, background=False)
        params["input"] = as_function_items(items.as_items(params.get("input") or [])) + self._feed
        params["tools"] = list(params.get("tools") or []) + self._offered
        if not params["tools"]:
            params.pop("tools")
            params.pop("tool_choice", None)
        elif last and self._offered:
            params["tool_choice"] = "none"  # the round limit: the model must answer now
        return dataclasses.replace(self.call, params=params, conversation_id=None, memory=None, job=False)

    async def _one_round(
        self, inner: AsyncIterator[StreamEvent], result: _Round, *, run: bool
    ) -> AsyncIterator[StreamEvent]:
        b = self.builder
        offset = len(b.response["output"])
        pending: dict[int, _Pending] = {}
        async with aclosing(inner):  # type: ignore[type-var]
            async for event in inner:
                data, kind = event.data, event.type
                if kind in ("response.created", "response.in_progress", "response.queued"):
                    continue
                if kind in ("response.completed", "response.incomplete", "response.failed", "error"):
                    _ending(data, result)
                    continue
                index = data.get("output_index")
                item = data.get("item") or {}
                if (
                    kind == "response.output_item.added"
                    and item.get("type") == "function_call"
                    and (known := self.plan.names.get(item.get("name", "")))
                ):
                    target, tool = known
                    p = pending[index] = _Pending(target, tool, approval=run and target.needs_approval(tool), run=run)
                    if not p.approval:
                        p.item = _mcp_item(self.call, target, tool, "")
                        p.index, events = b.open_item(p.item)
                        for e in [*events, b.item_event("response.mcp_call.in_progress", p.item, p.index)]:
                            yield e
                    continue
                if index in pending:
                    async for e in self._pending_event(pending, index, kind, data, result):
                        yield e
                    continue
                if kind == "response.output_item.done":
                    result.client_calls |= item.get("type") in CLIENT_CALLS
                    self._feed += items.replayable([item])
                yield b.forward(data, offset)

    async def _pending_event(
        self, pending: dict[int, _Pending], index: int, kind: str, data: Json, result: _Round
    ) -> AsyncIterator[StreamEvent]:
        b, p = self.builder, pending[index]
        if p.approval:
            if kind == "response.output_item.done":
                del pending[index]
                call = data["item"]
                request = {"type": "mcp_approval_request", "server_label": p.target.label,
                           "name": p.tool["name"], "arguments": call.get("arguments") or "{}"}  # fmt: skip
                result.asked += 1
                for e in b.item(request):
                    yield e
            return
        assert p.item is not None
        if kind == "response.function_call_arguments.delta":
            yield b.item_event("response.mcp_call_arguments.delta", p.item, p.index, delta=data.get("delta", ""))
        elif kind == "response.function_call_arguments.done":
            yield b.item_event("response.mcp_call_arguments.done", p.item, p.index, arguments=data.get("arguments", ""))
        elif kind == "response.output_item.done":
            del pending[index]
            call = data["item"]
            p.item["arguments"] = call.get("arguments") or "{}"
            if p.run:
                result.ran += 1
                events = await self._run(p.item, p.index, p.target, p.tool, call_id=call["call_id"], name=call["name"])
            else:
                message = f"Not run: the response reached its limit of {self.plan.policy.max_rounds} model rounds."
                events = self._result(p.item, p.index, None, {"type": "mcp_protocol_error", "code": -32000,
                                                              "message": message})  # fmt: skip
            for e in events:
                yield e

    async def _run(
        self, item: Json, index: int, target: Target, tool: Json, *, call_id: str, name: str
    ) -> list[StreamEvent]:
        policy = self.plan.policy
        output, error = await client.call_tool(
            target, str(tool["name"]), item["arguments"], policy.call_timeout, policy.max_output_bytes
        )
        told = output if output is not None else f"Error: {error_text(error)}"
        self._feed += call_pair(call_id, name, item["arguments"], told)
        return self._result(item, index, output, error)

    def _result(self, item: Json, index: int, output: str | None, error: Json | None) -> list[StreamEvent]:
        b = self.builder
        item.update(output=output, error=error, status="failed" if error else "completed")
        done = "response.mcp_call.failed" if error else "response.mcp_call.completed"
        return [b.item_event(done, item, index), b.close_item(item, index)]


def _mcp_item(call: Call, target: Target, tool: Json, arguments: str, approval_request_id: str | None = None) -> Json:
    return {"id": call.new_id("mcp"), "type": "mcp_call", "status": "in_progress", "server_label": target.label,
            "name": tool["name"], "arguments": arguments, "output": None, "error": None,
            "approval_request_id": approval_request_id}  # fmt: skip


def _ending(data: Json, result: _Round) -> None:
    response = data.get("response") or {}
    result.usage = response.get("usage")
    if data.get("type") == "response.incomplete":
        result.incomplete = (response.get("incomplete_details") or {}).get("reason") or "max_output_tokens"
    elif data.get("type") in ("response.failed", "error"):
        result.failure = response.get("error") or {"message": data.get("message") or "The upstream failed."}


def _sum(usages: list[Json]) -> Json | None:
    """The usage of every round, added up (with every detail field the openai types require)."""
    if not usages:
        return None
    total: Json = {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                   "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0}  # fmt: skip
    for u in usages:
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            total[key] += int(u.get(key) or 0)
        for group in ("input_tokens_details", "output_tokens_details"):
            for key in total[group]:
                total[group][key] += int((u.get(group) or {}).get(key) or 0)
    return total
