"""ResponseBuilder: the one state machine that speaks the Responses stream grammar.

Translators call high-level methods (`text`, `reasoning`, `function_call`, `finish`, ...)
and get back spec-ordered events with `sequence_number`, `output_index`, `content_index`
and stable item ids. Items never interleave: opening one closes the one before. Streaming
and non-streaming drive the same builder, so both give the same ids and the same output.
Pure: ids and the clock come in from the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import orjson
from openai.types.responses.response_error import ResponseError

from .events import StreamEvent

# The codes a Response's `error` may carry; an upstream's own names for a failure map onto them.
ERROR_CODES = frozenset(get_args(ResponseError.model_fields["code"].annotation))
_RATE_LIMITED = frozenset({"rate_limit_error", "throttlingException", "RESOURCE_EXHAUSTED", "too_many_requests"})

Json = dict[str, Any]
Kind = Literal["message", "reasoning", "function_call"]


@dataclass(slots=True)
class _Open:
    kind: Kind
    item: Json
    index: int
    part: Json | None = None  # the content / summary part being streamed
    buf: list[str] = field(default_factory=list)
    wire: bytes = b""  # the JSON of a text delta of `part` from its item_id to its "delta" key
    wire_of: Json | None = None  # the part `wire` is for


class ResponseBuilder:
    def __init__(
        self, response: Json, new_id: Callable[[str], str], namespaces: dict[str, tuple[str, str]] | None = None
    ):
        self.response = response
        self._namespaces = namespaces or {}
        self.response.setdefault("output", [])
        self.response["status"] = "in_progress"
        self._new_id = new_id
        self._seq = 0
        self._open: _Open | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> list[StreamEvent]:
        return [
            self._event("response.created", response=self._snapshot()),
            self._event("response.in_progress", response=self._snapshot()),
        ]

    def finish(
        self,
        *,
        usage: Json | None = None,
        incomplete_reason: str | None = None,
    ) -> list[StreamEvent]:
        events = self._close(status="incomplete" if incomplete_reason else "completed")
        r = self.response
        if usage is not None:
            r["usage"] = usage
        if incomplete_reason:
            r["status"] = "incomplete"
            r["incomplete_details"] = {"reason": incomplete_reason}
            return [*events, self._event("response.incomplete", response=self._snapshot())]
        r["status"] = "completed"
        return [*events, self._event("response.completed", response=self._snapshot())]

    def fail(self, message: str, code: str = "server_error") -> list[StreamEvent]:
        events = self._close(status="incomplete")
        self.response["status"] = "failed"
        if code not in ERROR_CODES:
            code = "rate_limit_exceeded" if code in _RATE_LIMITED else "server_error"
        self.response["error"] = {"code": code, "message": message}
        return [*events, self._event("response.failed", response=self._snapshot())]

    # -- message text ------------------------------------------------------------------------

    def text(self, delta: str) -> list[StreamEvent]:
        return self._content_delta("output_text", delta)

    def refusal(self, delta: str) -> list[StreamEvent]:
        return self._content_delta("refusal", delta)

    def text_wire(self, delta: str) -> bytes | None:
        """One more delta of the output text being streamed, as its event's SSE bytes (the bytes
        `text` would come to, without the dict); None, having done nothing, if no text is open."""
        if (more := self._more_text(delta)) is None:
            return None
        o, seq = more
        if o.wire_of is not o.part:
            o.wire_of, o.wire = o.part, _text_delta_where(o)
        return b"".join((_TEXT_DELTA, b"%d" % seq, o.wire, orjson.dumps(delta), _TEXT_DELTA_END))

    def _more_text(self, delta: str) -> tuple[_Open, int] | None:
        """`delta` added to the output text being streamed, if one is: its item and sequence number."""
        o = self._open
        if o is None or o.part is None or o.part["type"] != "output_text":
            return None
        o.buf.append(delta)
        seq, self._seq = self._seq, self._seq + 1
        return o, seq

    def _content_delta(self, part_type: str, delta: str) -> list[StreamEvent]:
        if part_type == "output_text" and (more := self._more_text(delta)) is not None:
            # The common case, one more delta of the text being streamed: the event built as below, at once
            o, seq = more
            data = {
                "type": "response.output_text.delta",
                "sequence_number": seq,
                "item_id": o.item["id"],
                "output_index": o.index,
                "content_index": len(o.item["content"]),
                "delta": delta,
                "logprobs": [],
            }
            return [StreamEvent("response.output_text.delta", data)]
        events = self._ensure("message")
        o = self._open
        assert o is not None
        if o.part is None or o.part["type"] != part_type:
            events += self._close_part()
            part: Json = {"type": part_type, "text": "", "annotations": [], "logprobs": []}
            if part_type == "refusal":
                part = {"type": "refusal", "refusal": ""}
            o.part = part
            events.append(self._event("response.content_part.added", **self._where(o), part=_fresh(part)))
        o.buf.append(delta)
        name = "response.output_text.delta" if part_type == "output_text" else "response.refusal.delta"
        extra = {"logprobs": []} if part_type == "output_text" else {}
        events.append(self._event(name, **self._where(o), delta=delta, **extra))
        return events

    # -- reasoning ---------------------------------------------------------------------------

    def reasoning(self, delta: str) -> list[StreamEvent]:
        """A delta of reasoning summary text."""
        events = self._ensure("reasoning")
        o = self._open
        assert o is not None
        if o.part is None:
            o.part = {"type": "summary_text", "text": ""}
            events.append(
                self._event("response.reasoning_summary_part.added", **self._summary_where(o), part=dict(o.part))
            )
        o.buf.append(delta)
        events.append(self._event("response.reasoning_summary_text.delta", **self._summary_where(o), delta=delta))
        return events

    def reasoning_signature(self, encrypted_content: str) -> list[StreamEvent]:
        """Attach the provider's opaque reasoning state (e.g. a thinking signature)."""
        events = self._ensure("reasoning")
        assert self._open is not None
        self._open.item["encrypted_content"] = encrypted_content
        return events

    # -- tool calls --------------------------------------------------------------------------

    def function_call(self, call_id: str, name: str) -> list[StreamEvent]:
        events = self._close()
        item = {"id": self._new_id("fc"), "type": "function_call", "status": "in_progress",
                "arguments": "", "call_id": call_id, "name": name}  # fmt: skip
        if name in self._namespaces:  # a tool that was flattened out of a namespace
            item["namespace"], item["name"] = self._namespaces[name]
        events += self._add("function_call", item)
        return events

    def function_arguments(self, delta: str) -> list[StreamEvent]:
        o = self._open
        if o is None or o.kind != "function_call":
            raise ValueError("function_arguments() outside a function_call")
        o.buf.append(delta)
        return [self._event("response.function_call_arguments.delta", item_id=o.item["id"],
                            output_index=o.index, delta=delta)]  # fmt: skip

    def item(self, item: Json) -> list[StreamEvent]:
        """A whole item at once (computer_call, web_search_call, ...): added, then done."""
        events = self._close()
        item.setdefault("id", self._new_id(_PREFIX.get(item.get("type", ""), "item")))
        index = len(self.response["output"])
        self.response["output"].append(item)
        events.append(self._event("response.output_item.added", output_index=index, item=_in_progress(item)))
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        return events

    def web_search(self, action: Json, status: str = "completed") -> list[StreamEvent]:
        """A finished web_search_call (the provider searched on its own): added, in_progress,
        searching, its end (completed or failed), done."""
        events = self._close()
        item = {"id": self._new_id("ws"), "type": "web_search_call", "status": status, "action": action}
        index = len(self.response["output"])
        self.response["output"].append(item)
        where = {"item_id": item["id"], "output_index": index}
        return [
            *events,
            self._event("response.output_item.added", output_index=index, item=_in_progress(item)),
            self._event("response.web_search_call.in_progress", **where),
            self._event("response.web_search_call.searching", **where),
            *([self._event("response.web_search_call.completed", **where)] if status == "completed" else []),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def open_text(self) -> str:
        """The output text so far of the open message part ("" when none is open)."""
        o = self._open
        if o is None or o.part is None or o.kind != "message" or o.part["type"] != "output_text":
            return ""
        return "".join(o.buf)

    def annotation(self, annotation: Json) -> list[StreamEvent]:
        """An annotation (a url_citation) on the output text being streamed; none is open: nothing."""
        o = self._open
        if o is None or o.part is None or o.kind != "message" or o.part["type"] != "output_text":
            return []
        annotations = o.part["annotations"]
        annotations.append(annotation)
        return [self._event("response.output_text.annotation.added", **self._where(o),
                            annotation_index=len(annotations) - 1, annotation=annotation)]  # fmt: skip

    # -- items others build, and other rounds' events (the MCP tool loop) ------------------

    def open_item(self, item: Json) -> tuple[int, list[StreamEvent]]:
        """Start an item whose events the caller sends (`item_event`, then `close_item`)."""
        events = self._close()
        index = len(self.response["output"])
        self.response["output"].append(item)
        return index, [*events, self._event("response.output_item.added", output_index=index, item=_fresh(item))]

    def item_event(self, type: str, item: Json, index: int, **fields: Any) -> StreamEvent:
        return self._event(type, item_id=item["id"], output_index=index, **fields)

    def close_item(self, item: Json, index: int) -> StreamEvent:
        return self._event("response.output_item.done", output_index=index, item=item)

    def forward(self, data: Json, offset: int) -> StreamEvent:
        """An event of another builder's stream (one round of a longer response), renumbered
        into this one: its items land `offset` places further along this response's output."""
        fields = {k: v for k, v in data.items() if k not in ("type", "sequence_number")}
        if "output_index" in fields:
            fields["output_index"] += offset
            index = fields["output_index"]
            output = self.response["output"]
            if data["type"] == "response.output_item.added" and index == len(output):
                output.append(fields["item"])
            elif data["type"] == "response.output_item.done" and index < len(output):
                output[index] = fields["item"]
        return self._event(data["type"], **fields)

    # -- internals ---------------------------------------------------------------------------

    def _ensure(self, kind: Kind) -> list[StreamEvent]:
        if self._open is not None and self._open.kind == kind:
            return []
        events = self._close()
        if kind == "message":
            item = {"id": self._new_id("msg"), "type": "message", "status": "in_progress",
                    "content": [], "role": "assistant"}  # fmt: skip
        else:
            item = {"id": self._new_id("rs"), "type": "reasoning", "summary": []}
        return events + self._add(kind, item)

    def _add(self, kind: Kind, item: Json) -> list[StreamEvent]:
        index = len(self.response["output"])
        self.response["output"].append(item)
        self._open = _Open(kind, item, index)
        return [self._event("response.output_item.added", output_index=index, item=_fresh(item))]

    def _close_part(self) -> list[StreamEvent]:
        o = self._open
        if o is None or o.part is None:
            return []
        text, part, o.part, o.buf = "".join(o.buf), o.part, None, []
        if o.kind == "reasoning":
            part["text"] = text
            where = self._summary_where(o)
            o.item["summary"].append(part)
            return [
                self._event("response.reasoning_summary_text.done", **where, text=text),
                self._event("response.reasoning_summary_part.done", **where, part=dict(part)),
            ]
        where = self._where(o)
        o.item["content"].append(part)
        if part["type"] == "refusal":
            part["refusal"] = text
            done = self._event("response.refusal.done", **where, refusal=text)
        else:
            part["text"] = text
            done = self._event("response.output_text.done", **where, text=text, logprobs=[])
        return [done, self._event("response.content_part.done", **where, part=part)]

    def _close(self, status: str = "completed") -> list[StreamEvent]:
        o = self._open
        if o is None:
            return []
        events = self._close_part()
        if o.kind == "function_call":
            o.item["arguments"] = args = "".join(o.buf)
            events.append(self._event("response.function_call_arguments.done", item_id=o.item["id"],
                                      output_index=o.index, arguments=args, name=o.item["name"]))  # fmt: skip
        if o.kind != "reasoning":
            o.item["status"] = status
        self._open = None
        events.append(self._event("response.output_item.done", output_index=o.index, item=o.item))
        return events

    def _where(self, o: _Open) -> Json:
        return {"item_id": o.item["id"], "output_index": o.index, "content_index": len(o.item["content"])}

    def _summary_where(self, o: _Open) -> Json:
        return {"item_id": o.item["id"], "output_index": o.index, "summary_index": len(o.item["summary"])}

    def _snapshot(self) -> Json:
        # Finished items and the request echo never change again, so a copy of the top level
        # and of the output list is a true snapshot (and far cheaper than a deep copy).
        return {**self.response, "output": list(self.response["output"])}

    def _event(self, type: str, **fields: Any) -> StreamEvent:
        data = {"type": type, "sequence_number": self._seq, **fields}
        self._seq += 1
        return StreamEvent(type, data)


_PREFIX = {"computer_call": "cu", "web_search_call": "ws", "file_search_call": "fs", "message": "msg",
           "mcp_approval_request": "mcpr"}  # fmt: skip


_TEXT_DELTA = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":'
_TEXT_DELTA_END = b',"logprobs":[]}\n\n'


def _text_delta_where(o: _Open) -> bytes:
    where = orjson.dumps({"item_id": o.item["id"], "output_index": o.index, "content_index": len(o.item["content"])})
    return b"," + where[1:-1] + b',"delta":'


def _fresh(item: Json) -> Json:
    """A copy of an item being built: its own top level and lists, so later deltas don't show."""
    return {k: list(v) if isinstance(v, list) else v for k, v in item.items()}


def _in_progress(item: Json) -> Json:
    added = _fresh(item)
    if "status" in added:
        added["status"] = "in_progress"
    return added
