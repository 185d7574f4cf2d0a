"""The Responses `web_search` tool on providers that search by themselves.

Anthropic runs it as a server tool (`web_search_20250305`): `server_tool_use` and
`web_search_tool_result` blocks, and text blocks whose `citations` point at the results.
Gemini grounds with Google Search: one `groundingMetadata` per candidate, whose supports
give UTF-8 byte ranges of the answer text and the chunks (sources) backing each range.
Both become OpenAI's shape: a `web_search_call` item (action `search`, its query and its
sources) and `url_citation` annotations (character offsets) on the output text.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
TOOL_TYPES = frozenset({"web_search", "web_search_preview"})
_LOCATION_KEYS = ("city", "region", "country", "timezone")


def anthropic_tool(tool: Json) -> Json:
    """Anthropic's server tool for a Responses web_search tool: its allowed domains and the
    user's approximate location (Anthropic's max_uses and blocked_domains have no Responses twin)."""
    spec: Json = {"type": "web_search_20250305", "name": "web_search"}
    if domains := (tool.get("filters") or {}).get("allowed_domains"):
        spec["allowed_domains"] = list(domains)
    location = tool.get("user_location") or {}
    if fields := {k: location[k] for k in _LOCATION_KEYS if location.get(k)}:
        spec["user_location"] = {"type": "approximate", **fields}
    return spec


def url_citation(url: str, title: str | None, start: int, end: int) -> Json:
    return {"type": "url_citation", "url": url, "title": title or url, "start_index": start, "end_index": end}


def search_action(queries: list[str], urls: list[str]) -> Json:
    """A web_search_call's action: the (first) query, every query when there were more, the sources."""
    action: Json = {"type": "search", "query": queries[0] if queries else ""}
    if len(queries) > 1:
        action["queries"] = queries
    seen = list(dict.fromkeys(u for u in urls if u))
    if seen:
        action["sources"] = [{"type": "url", "url": u} for u in seen]
    return action


def anthropic_result(query: str, content: Any) -> tuple[Json, str]:
    """(action, status) for a web_search_tool_result block's content: a list of results, or
    an error object (the search failed)."""
    if isinstance(content, list):
        urls = [r.get("url", "") for r in content if isinstance(r, dict) and r.get("type") == "web_search_result"]
        return search_action([query] if query else [], urls), "completed"
    return search_action([query] if query else [], []), "failed"


def gemini_grounding(metadata: Json, text: str) -> tuple[Json | None, list[Json]]:
    """(the web_search_call action, or None when Google Search was not used; the url_citations
    on `text`) for a candidate's groundingMetadata. Gemini measures segments in UTF-8 bytes of
    the answer; OpenAI indexes characters."""
    queries = [q for q in metadata.get("webSearchQueries") or [] if isinstance(q, str)]
    chunks = [(c.get("web") or {}) for c in metadata.get("groundingChunks") or [] if isinstance(c, dict)]
    if not queries and not any(c.get("uri") for c in chunks):
        return None, []
    action = search_action(queries, [c.get("uri", "") for c in chunks])
    encoded = text.encode()
    annotations: list[Json] = []
    for support in metadata.get("groundingSupports") or []:
        segment = support.get("segment") or {}
        start = _chars(encoded, int(segment.get("startIndex") or 0))
        end = _chars(encoded, int(segment.get("endIndex") or 0))
        for i in support.get("groundingChunkIndices") or []:
            if isinstance(i, int) and 0 <= i < len(chunks) and chunks[i].get("uri") and end > start:
                annotations.append(url_citation(chunks[i]["uri"], chunks[i].get("title"), start, end))
    return action, annotations


def _chars(encoded: bytes, offset: int) -> int:
    """The character index of a UTF-8 byte offset (clamped to the text; a character split by it is left out)."""
    offset = max(0, min(offset, len(encoded)))
    return len(encoded[:offset].decode(errors="ignore"))
