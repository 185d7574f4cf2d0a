"""Mid-stream fallback: one client stream out of several upstream streams ("legs").

The first leg's events go out untouched (kept aside, unparsed, in case it breaks). When a
leg breaks, the events the client already has are replayed into `Output` (what the client
has been shown); the next leg (another deployment, maybe another provider) is asked to go
on with that output as an assistant prefix, and its events are rewritten so the client
still reads one response: its `response.created` / `in_progress` are dropped, sequence
numbers continue without a gap, output indexes are shifted past what was shown, and a message
that was cut mid-text is continued in place (same item id and content part, its text the
sum of both legs). The terminal event carries the whole output the client saw and the usage
of every leg, and is what gets stored.
"""

from __future__ import annotations

import copy
from typing import Any

from ..streaming.events import StreamEvent

Json = dict[str, Any]
BROKEN = frozenset({"response.failed", "error"})  # a leg ending like this is continued elsewhere
_OPENING = frozenset({"response.created", "response.in_progress", "response.queued"})


class Output:
    """The output items as a client accumulates them from stream events (as the openai SDK does)."""

    def __init__(self) -> None:
        self.items: list[Json] = []
        self.done: set[int] = set()
        self.opened: set[str] = set()  # lifecycle events the client has seen
        self.response: Json = {}  # the response object as the last lifecycle event showed it
        self.seq = 0  # the next sequence number

    def apply(self, data: Json) -> None:
        kind = data.get("type", "")
        if isinstance(data.get("sequence_number"), int):
            self.seq = max(self.seq, data["sequence_number"] + 1)
        if kind in _OPENING:
            self.opened.add(kind)
            self.response = data.get("response") or self.response
            return
        index = data.get("output_index")
        if kind == "response.output_item.added":
            self.items.append(copy.deepcopy(data["item"]))
            return
        if not isinstance(index, int) or index >= len(self.items):
            return
        item = self.items[index]
        if kind == "response.output_item.done":
            self.items[index] = copy.deepcopy(data["item"])
            self.done.add(index)
        elif kind == "response.content_part.added":
            item.setdefault("content", []).append(copy.deepcopy(data["part"]))
        elif kind == "response.content_part.done":
            _set(item.setdefault("content", []), data["content_index"], copy.deepcopy(data["part"]))
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            part = _at(item.get("content"), data.get("content_index"))
            field = "text" if kind == "response.output_text.delta" else "refusal"
            if part is not None:
                part[field] = part.get(field, "") + data.get("delta", "")
        elif kind == "response.reasoning_summary_part.added":
            item.setdefault("summary", []).append(copy.deepcopy(data["part"]))
        elif kind == "response.reasoning_summary_text.delta":
            part = _at(item.get("summary"), data.get("summary_index"))
            if part is not None:
                part["text"] = part.get("text", "") + data.get("delta", "")
        elif kind == "response.function_call_arguments.delta":
            item["arguments"] = item.get("arguments", "") + data.get("delta", "")

    def open_index(self) -> int | None:
        """The item the client saw start but not finish (the last one, if any)."""
        last = len(self.items) - 1
        return last if last >= 0 and last not in self.done else None

    def as_input(self) -> list[Json]:
        """What the next leg gets after the request's input: every finished item, and a message
        cut short as an assistant prefix; a half-streamed tool call or reasoning is left out."""
        out: list[Json] = []
        for index, item in enumerate(self.items):
            finished = index in self.done
            if item.get("type") == "message" and item.get("content"):
                parts = [{"type": "output_text", "text": p.get("text", "")} for p in item["content"]
                         if p.get("type") == "output_text" and p.get("text")]  # fmt: skip
                if parts:
                    out.append({"type": "message", "role": "assistant", "content": parts})
            elif finished and item.get("type") not in ("reasoning", "message"):
                clean = {k: v for k, v in item.items() if k not in ("id", "status")}
                out.append(clean)
        return out


class Splice:
    """The client's view of a stream across legs; `leg` counts the legs started so far."""

    def __init__(self) -> None:
        self.kept: list[StreamEvent] = []  # the first leg's events, unparsed until it breaks
        self.out: Output | None = None
        self.leg = 0
        self.usages: list[Json] = []
        self._offset = 0
        self._merge: int | None = None  # the client's item the new leg's first message continues
        self._merge_part = 0
        self._prefix = ""  # the text of the continued part the client had when the leg broke
        self._decided = False

    def keep(self, event: StreamEvent) -> None:
        self.kept.append(event)

    def broke(self, response: Json | None = None) -> Output:
        """The current leg broke: what the client has seen so far."""
        if self.out is None:
            self.out = Output()
            for event in self.kept:
                self.out.apply(event.data)
            self.kept = []
        if response and isinstance(response.get("usage"), dict):
            self.usages.append(response["usage"])
        return self.out

    def next_leg(self) -> None:
        self.leg += 1
        self._decided = False
        self._merge = None
        self._offset = 0

    def rewrite(self, event: StreamEvent) -> list[StreamEvent]:
        """One event of a continuing leg, as the client must see it (maybe none, maybe more)."""
        out = self.out
        assert out is not None
        data = dict(event.data)
        kind = data.get("type", event.type)
        if kind in _OPENING:
            if kind in out.opened:
                return []
            return [self._emit(kind, data)]
        events: list[StreamEvent] = []
        if not self._decided and (kind == "response.output_item.added" or event.terminal):
            events += self._decide(data.get("item") if kind == "response.output_item.added" else None)
            if self._merge is not None:
                return events  # the continued message is already open on the client's side
        index = data.get("output_index")
        if isinstance(index, int):
            merged = self._merge is not None and index == 0
            data["output_index"] = self._merge if merged else self._offset + index
            if merged and not self._merged(kind, data):
                return events
        if event.terminal:
            data["response"] = self.final(data.get("response") or {})
        events.append(self._emit(kind, data))
        return events

    def final(self, response: Json) -> Json:
        """A leg's terminal response as the whole stream's: all the output, every leg's usage."""
        out = self.out
        assert out is not None
        final = {**response, "output": copy.deepcopy(out.items)}
        usages = [*self.usages, *([response["usage"]] if isinstance(response.get("usage"), dict) else [])]
        if usages:
            final["usage"] = sum_usage(usages)
        return final

    def fail(self, message: str) -> list[StreamEvent]:
        """No leg is left: end the client's stream as failed, with what it was shown."""
        out = self.out
        assert out is not None
        events = [] if (index := out.open_index()) is None else self._close(index)
        error = {"code": "server_error", "message": message}
        response = self.final({**out.response, "status": "failed", "error": error})
        return [*events, self._emit("response.failed", {"response": response})]

    def _decide(self, item: Json | None) -> list[StreamEvent]:
        """The new leg's first item: a message continues a message cut mid-text; anything else
        first closes what was left open, as incomplete."""
        out = self.out
        assert out is not None
        self._decided = True
        open_index = out.open_index()
        if open_index is None:
            self._offset = len(out.items)
            return []
        shown = out.items[open_index]
        parts = shown.get("content") or []
        if (item or {}).get("type") == "message" and shown.get("type") == "message" and parts \
                and parts[-1].get("type") == "output_text":  # fmt: skip
            self._merge, self._merge_part = open_index, len(parts) - 1
            self._prefix = parts[-1].get("text", "")
            self._offset = open_index
            return []
        self._offset = len(out.items)
        return self._close(open_index)

    def _merged(self, kind: str, data: Json) -> bool:
        """Rewrite an event of the new leg's first message onto the message it continues;
        False when the client has it already (the item and its first part are open)."""
        out = self.out
        assert out is not None and self._merge is not None
        shown = out.items[self._merge]
        part = data.get("content_index")
        if kind == "response.content_part.added" and part == 0:
            return False
        if "item_id" in data:
            data["item_id"] = shown["id"]
        if isinstance(part, int):
            data["content_index"] = part + self._merge_part
        prefix = self._prefix
        if kind == "response.output_text.done" and part == 0:
            data["text"] = prefix + data.get("text", "")
        elif kind == "response.content_part.done" and part == 0:
            data["part"] = {**data["part"], "text": prefix + data["part"].get("text", "")}
        elif kind == "response.output_item.done":
            new = data["item"]
            content = [copy.deepcopy(p) for p in (new.get("content") or [])]
            if content and content[0].get("type") == "output_text":
                content[0]["text"] = prefix + content[0].get("text", "")
            earlier = (shown.get("content") or [])[: self._merge_part]
            data["item"] = {**new, "id": shown["id"], "content": [*earlier, *content]}
        return True

    def _close(self, index: int) -> list[StreamEvent]:
        """Finish an item the broken leg left open, as incomplete."""
        out = self.out
        assert out is not None
        item = copy.deepcopy(out.items[index])
        events: list[StreamEvent] = []
        where = {"item_id": item.get("id"), "output_index": index}
        kind = item.get("type")
        if kind == "message" and item.get("content"):
            ci = len(item["content"]) - 1
            part = item["content"][ci]
            if part.get("type") == "output_text":
                events.append(self._emit("response.output_text.done", {**where, "content_index": ci,
                                         "text": part.get("text", ""), "logprobs": []}))  # fmt: skip
            events.append(self._emit("response.content_part.done", {**where, "content_index": ci, "part": part}))
        elif kind == "function_call":
            args = {**where, "arguments": item.get("arguments", ""), "name": item.get("name")}
            events.append(self._emit("response.function_call_arguments.done", args))
        if kind != "reasoning":
            item["status"] = "incomplete"
        events.append(self._emit("response.output_item.done", {"output_index": index, "item": item}))
        return events

    def _emit(self, kind: str, data: Json) -> StreamEvent:
        out = self.out
        assert out is not None
        data = {"type": kind, **{k: v for k, v in data.items() if k != "type"}, "sequence_number": out.seq}
        out.apply(data)
        return StreamEvent(kind, data)


def sum_usage(usages: list[Json]) -> Json:
    def total(key: str, detail: str | None = None) -> int:
        if detail is None:
            return sum(int(u.get(key) or 0) for u in usages)
        return sum(int((u.get(key) or {}).get(detail) or 0) for u in usages)

    return {
        "input_tokens": total("input_tokens"),
        "input_tokens_details": {
            "cached_tokens": total("input_tokens_details", "cached_tokens"),
            "cache_write_tokens": total("input_tokens_details", "cache_write_tokens"),
        },
        "output_tokens": total("output_tokens"),
        "output_tokens_details": {"reasoning_tokens": total("output_tokens_details", "reasoning_tokens")},
        "total_tokens": total("total_tokens"),
    }


def _at(parts: Any, index: Any) -> Json | None:
    if isinstance(parts, list) and isinstance(index, int) and 0 <= index < len(parts):
        return parts[index]
    return None


def _set(parts: list[Json], index: int, part: Json) -> None:
    if 0 <= index < len(parts):
        parts[index] = part
    else:
        parts.append(part)
