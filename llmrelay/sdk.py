"""The SDK: module functions over one default Relay, returning the `openai` package's types.

Each async function is the real implementation; its sync twin runs it on the background
loop. Results are `openai.types.responses.Response` and its typed stream events.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any, Literal, TypedDict, Unpack, overload

from openai import BaseModel, omit
from openai._models import construct_type  # the openai client's own untyped-dict -> model path
from openai.lib._parsing._responses import parse_response, type_to_text_format_param
from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItem,
    ConversationItemList,
)
from openai.types.responses import (
    CompactedResponse,
    InputTokenCountResponse,
    Response,
    ResponseItemList,
    ResponseStreamEvent,
)

from .background_loop import BackgroundLoop, SyncIterator
from .relay import Relay
from .store import ResponseStore
from .streaming.events import StreamEvent

_runner = BackgroundLoop()
_default: Relay | None = None
_default_lock = threading.Lock()


class DeleteResponseResult(BaseModel):
    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: bool


def default_relay() -> Relay:
    """The Relay the module functions use (SQLite store unless `configure` says otherwise)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Relay()
    return _default


def configure(*, store: ResponseStore | str | None = None, num_retries: int = 0, timeout: float | None = None) -> Relay:
    """Replace the default Relay, e.g. `configure(store="memory")` or a Postgres URL."""
    global _default
    with _default_lock:
        _default = Relay(store=store, num_retries=num_retries, timeout=timeout)
    return _default


def _relay(relay: Relay | None) -> Relay:
    return relay or default_relay()


class AsyncResponseStream:
    """`async for event in stream`: typed Responses stream events."""

    def __init__(self, events: AsyncIterator[StreamEvent]) -> None:
        self._events = events

    def __aiter__(self) -> AsyncResponseStream:
        return self

    async def __anext__(self) -> ResponseStreamEvent:
        event = await self._events.__anext__()
        return construct_type(type_=ResponseStreamEvent, value=event.data)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> AsyncResponseStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _response(data: dict[str, Any]) -> Response:
    return construct_type(type_=Response, value=data)  # type: ignore[no-any-return]


# -- create --------------------------------------------------------------------------------


@overload
async def aresponses(*, stream: Literal[True], relay: Relay | None = None, **params: Any) -> AsyncResponseStream: ...
@overload
async def aresponses(*, stream: Literal[False] = False, relay: Relay | None = None, **params: Any) -> Response: ...
async def aresponses(
    *, stream: bool = False, relay: Relay | None = None, text_format: type | None = None, **params: Any
) -> Response | AsyncResponseStream:
    """Create a response (`POST /v1/responses`). Takes every Responses field (`model`,
    `input`, `instructions`, `tools`, `previous_response_id`, ...) plus llmrelay's call
    options: `api_key`, `api_base`, `api_version`, `custom_llm_provider`, `timeout`, `num_retries`,
    `extra_headers`, `extra_body`, `extra_query`, `mock_response`, `drop_params`, `prompt_caching`
    (False: no automatic prompt-cache marks for Claude, see providers/prompt_cache.py).

    `text_format=SomePydanticModel` asks for that schema on any provider and returns a
    `ParsedResponse` whose `output_parsed` is the model instance, like the openai SDK's
    `responses.parse`."""
    core = _relay(relay)
    if text_format is not None:
        params["text"] = {**(params.get("text") or {}), "format": type_to_text_format_param(text_format)}
    if stream:
        return AsyncResponseStream(await core.stream({**params, "stream": True}))
    response = _response(await core.create(params))
    if text_format is None:
        return response
    return parse_response(text_format=text_format, input_tools=params.get("tools") or omit, response=response)


@overload
def responses(
    *, stream: Literal[True], relay: Relay | None = None, **params: Any
) -> SyncIterator[ResponseStreamEvent]: ...
@overload
def responses(*, stream: Literal[False] = False, relay: Relay | None = None, **params: Any) -> Response: ...
def responses(
    *, stream: bool = False, relay: Relay | None = None, text_format: type | None = None, **params: Any
) -> Response | SyncIterator[ResponseStreamEvent]:
    """Sync twin of `aresponses`; with `stream=True`, an iterator of typed events."""
    if stream:
        events = _runner.run(aresponses(stream=True, relay=relay, text_format=text_format, **params))
        return _runner.iterate(events)
    return _runner.run(aresponses(relay=relay, text_format=text_format, **params))


async def acount_input_tokens(*, relay: Relay | None = None, **params: Any) -> InputTokenCountResponse:
    """Count a request's input tokens with the provider's own counter (`POST /v1/responses/input_tokens`)."""
    data = await _relay(relay).count_input_tokens(params)
    return construct_type(type_=InputTokenCountResponse, value=data)  # type: ignore[no-any-return]


def count_input_tokens(*, relay: Relay | None = None, **params: Any) -> InputTokenCountResponse:
    return _runner.run(acount_input_tokens(relay=relay, **params))


async def acompact_responses(*, relay: Relay | None = None, **params: Any) -> CompactedResponse:
    """Compact a conversation (`POST /v1/responses/compact`): `model` plus `input` and/or
    `previous_response_id`; the output's compaction item can be sent back as input."""
    data = await _relay(relay).compact(params)
    return construct_type(type_=CompactedResponse, value=data)  # type: ignore[no-any-return]


def compact_responses(*, relay: Relay | None = None, **params: Any) -> CompactedResponse:
    return _runner.run(acompact_responses(relay=relay, **params))


# -- stored responses ------------------------------------------------------------------------


class CallOptions(TypedDict, total=False):
    """Per-call options of the functions on a stored response, as `responses()` takes them.
    They say where its upstream is: a process that did not create a background response
    knows the upstream only from these (the store keeps no key and no URL)."""

    api_key: str
    api_base: str
    api_version: str
    custom_llm_provider: str
    timeout: float
    extra_headers: dict[str, str]
    extra_query: dict[str, str]
    num_retries: int


_OPTION_NAMES = frozenset(CallOptions.__annotations__)


def _options(function: str, options: dict[str, Any]) -> dict[str, Any]:
    for name in options:
        if name not in _OPTION_NAMES:  # what Python says for an unknown keyword, with the valid ones
            valid = ", ".join(sorted(_OPTION_NAMES))
            raise TypeError(f"{function}() got an unexpected keyword argument '{name}' (options: {valid})")
    return options


@overload
async def aget_responses(
    response_id: str,
    *,
    stream: Literal[False] = False,
    starting_after: None = None,
    relay: Relay | None = None,
    **options: Unpack[CallOptions],
) -> Response: ...
@overload
async def aget_responses(
    response_id: str,
    *,
    stream: Literal[True],
    starting_after: int | None = None,
    relay: Relay | None = None,
    **options: Unpack[CallOptions],
) -> AsyncResponseStream: ...
async def aget_responses(
    response_id: str,
    *,
    stream: bool = False,
    starting_after: int | None = None,
    relay: Relay | None = None,
    **options: Unpack[CallOptions],
) -> Response | AsyncResponseStream:
    """Retrieve a stored response (`GET /v1/responses/{id}`); one an upstream runs in the
    background is refreshed from there. With `stream=True`, a background response's events
    after `starting_after`, then the live ones, to the end."""
    opts = _options("get_responses", dict(options))
    if stream:
        events = await _relay(relay).retrieve_stream(response_id, starting_after=starting_after, options=opts)
        return AsyncResponseStream(events)
    return _response(await _relay(relay).retrieve(response_id, options=opts))


@overload
def get_responses(
    response_id: str,
    *,
    stream: Literal[False] = False,
    starting_after: None = None,
    relay: Relay | None = None,
    **options: Unpack[CallOptions],
) -> Response: ...
@overload
def get_responses(
    response_id: str,
    *,
    stream: Literal[True],
    starting_after: int | None = None,
    relay: Relay | None = None,
    **options: Unpack[CallOptions],
) -> SyncIterator[ResponseStreamEvent]: ...
def get_responses(
    response_id: str,
    *,
    stream: bool = False,
    starting_after: int | None = None,
    relay: Relay | None = None,
    **options: Unpack[CallOptions],
) -> Response | SyncIterator[ResponseStreamEvent]:
    if stream:
        coro = aget_responses(response_id, stream=True, starting_after=starting_after, relay=relay, **options)
        return _runner.iterate(_runner.run(coro))
    return _runner.run(aget_responses(response_id, relay=relay, **options))


async def adelete_responses(
    response_id: str, *, relay: Relay | None = None, **options: Unpack[CallOptions]
) -> DeleteResponseResult:
    """Delete a stored response (`DELETE /v1/responses/{id}`), and its upstream copy when the
    upstream keeps one; a later GET raises NotFoundError."""
    opts = _options("delete_responses", dict(options))
    return DeleteResponseResult(**await _relay(relay).delete(response_id, options=opts))


def delete_responses(
    response_id: str, *, relay: Relay | None = None, **options: Unpack[CallOptions]
) -> DeleteResponseResult:
    return _runner.run(adelete_responses(response_id, relay=relay, **options))


async def alist_input_items(
    response_id: str,
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = 20,
    order: Literal["asc", "desc"] = "desc",
    relay: Relay | None = None,
    **options: Unpack[CallOptions],
) -> ResponseItemList:
    """The input items of a stored response (`GET /v1/responses/{id}/input_items`). They come
    from llmrelay's store for every provider, so the call options are accepted but not needed."""
    _options("list_input_items", dict(options))
    page = await _relay(relay).input_items(response_id, after=after, before=before, limit=limit, order=order)
    return construct_type(type_=ResponseItemList, value=page)  # type: ignore[no-any-return]


def list_input_items(
    response_id: str,
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = 20,
    order: Literal["asc", "desc"] = "desc",
    relay: Relay | None = None,
    **options: Unpack[CallOptions],
) -> ResponseItemList:
    coro = alist_input_items(response_id, after=after, before=before, limit=limit, order=order, relay=relay, **options)
    return _runner.run(coro)


async def acancel_responses(
    response_id: str, *, relay: Relay | None = None, **options: Unpack[CallOptions]
) -> Response:
    """Cancel a background response (`POST /v1/responses/{id}/cancel`)."""
    opts = _options("cancel_responses", dict(options))
    return _response(await _relay(relay).cancel(response_id, options=opts))


def cancel_responses(response_id: str, *, relay: Relay | None = None, **options: Unpack[CallOptions]) -> Response:
    return _runner.run(acancel_responses(response_id, relay=relay, **options))


# -- conversations ---------------------------------------------------------------------------


async def acreate_conversation(
    *, items: list[Any] | None = None, metadata: dict[str, str] | None = None, relay: Relay | None = None
) -> Conversation:
    """Create a conversation (`POST /v1/conversations`), optionally with initial items."""
    data = await _relay(relay).conversations.create(items_=items, metadata=metadata)
    return construct_type(type_=Conversation, value=data)  # type: ignore[no-any-return]


def create_conversation(
    *, items: list[Any] | None = None, metadata: dict[str, str] | None = None, relay: Relay | None = None
) -> Conversation:
    return _runner.run(acreate_conversation(items=items, metadata=metadata, relay=relay))


async def aget_conversation(conversation_id: str, *, relay: Relay | None = None) -> Conversation:
    conv = await _relay(relay).conversations.get(conversation_id)
    return construct_type(type_=Conversation, value=conv.public())  # type: ignore[no-any-return]


def get_conversation(conversation_id: str, *, relay: Relay | None = None) -> Conversation:
    return _runner.run(aget_conversation(conversation_id, relay=relay))


async def aupdate_conversation(
    conversation_id: str, *, metadata: dict[str, str], relay: Relay | None = None
) -> Conversation:
    data = await _relay(relay).conversations.update(conversation_id, metadata=metadata)
    return construct_type(type_=Conversation, value=data)  # type: ignore[no-any-return]


def update_conversation(conversation_id: str, *, metadata: dict[str, str], relay: Relay | None = None) -> Conversation:
    return _runner.run(aupdate_conversation(conversation_id, metadata=metadata, relay=relay))


async def adelete_conversation(conversation_id: str, *, relay: Relay | None = None) -> ConversationDeletedResource:
    data = await _relay(relay).conversations.delete(conversation_id)
    return construct_type(type_=ConversationDeletedResource, value=data)  # type: ignore[no-any-return]


def delete_conversation(conversation_id: str, *, relay: Relay | None = None) -> ConversationDeletedResource:
    return _runner.run(adelete_conversation(conversation_id, relay=relay))


async def alist_conversation_items(
    conversation_id: str,
    *,
    after: str | None = None,
    limit: int = 20,
    order: Literal["asc", "desc"] = "desc",
    relay: Relay | None = None,
) -> ConversationItemList:
    data = await _relay(relay).conversations.list_items(conversation_id, after=after, limit=limit, order=order)
    return construct_type(type_=ConversationItemList, value=data)  # type: ignore[no-any-return]


def list_conversation_items(
    conversation_id: str,
    *,
    after: str | None = None,
    limit: int = 20,
    order: Literal["asc", "desc"] = "desc",
    relay: Relay | None = None,
) -> ConversationItemList:
    coro = alist_conversation_items(conversation_id, after=after, limit=limit, order=order, relay=relay)
    return _runner.run(coro)


async def acreate_conversation_items(
    conversation_id: str, *, items: list[Any], relay: Relay | None = None
) -> ConversationItemList:
    data = await _relay(relay).conversations.add_items(conversation_id, items)
    return construct_type(type_=ConversationItemList, value=data)  # type: ignore[no-any-return]


def create_conversation_items(
    conversation_id: str, *, items: list[Any], relay: Relay | None = None
) -> ConversationItemList:
    return _runner.run(acreate_conversation_items(conversation_id, items=items, relay=relay))


async def aget_conversation_item(conversation_id: str, item_id: str, *, relay: Relay | None = None) -> ConversationItem:
    data = await _relay(relay).conversations.get_item(conversation_id, item_id)
    return construct_type(type_=ConversationItem, value=data)  # type: ignore[no-any-return]


def get_conversation_item(conversation_id: str, item_id: str, *, relay: Relay | None = None) -> ConversationItem:
    return _runner.run(aget_conversation_item(conversation_id, item_id, relay=relay))


async def adelete_conversation_item(conversation_id: str, item_id: str, *, relay: Relay | None = None) -> Conversation:
    data = await _relay(relay).conversations.delete_item(conversation_id, item_id)
    return construct_type(type_=Conversation, value=data)  # type: ignore[no-any-return]


def delete_conversation_item(conversation_id: str, item_id: str, *, relay: Relay | None = None) -> Conversation:
    return _runner.run(adelete_conversation_item(conversation_id, item_id, relay=relay))
