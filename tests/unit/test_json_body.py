"""The proxy's read of a JSON body: a body all in is read at once, one that trickles in is waited
for within the body timeout (a 408 past it), and any awaitable `receive` works."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest
from starlette.requests import ClientDisconnect, Request

from llmrelay.config import parse_config
from llmrelay.proxy.app import Proxy

Message = dict[str, Any]


def proxy(body_timeout: float = 5.0) -> Proxy:
    config = parse_config({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/demo"}}]})
    return Proxy(config, None, body_timeout)


def request(receive: Callable[[], Awaitable[Message]]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v1/responses", "headers": []}, receive)


def pieces(*messages: Message, wait: float = 0.0) -> Callable[[], Awaitable[Message]]:
    """`receive` handing out `messages`; each after `wait` seconds when that is above 0."""
    queue = list(messages)

    async def receive() -> Message:
        if wait:
            await asyncio.sleep(wait)
        return queue.pop(0)

    return receive


def part(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_a_body_all_in_is_read_at_once() -> None:
    assert await proxy().json_body(request(pieces(part(b'{"model": "m"}', more=False)))) == {"model": "m"}


async def test_a_body_in_pieces_that_trickle_in_is_waited_for() -> None:
    receive = pieces(part(b'{"model":'), part(b' "m", "input"'), part(b': "hi"}', more=False), wait=0.01)
    assert await proxy().json_body(request(receive)) == {"model": "m", "input": "hi"}


async def test_a_receive_that_is_not_a_coroutine_works() -> None:
    def receive() -> asyncio.Future[Message]:
        done: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        done.set_result(part(b'{"a": 1}', more=False))
        return done

    assert await proxy().json_body(request(receive)) == {"a": 1}


async def test_a_body_that_stops_arriving_is_a_408_within_the_timeout() -> None:
    receive = pieces(part(b'{"model":'), part(b"never"), wait=0.3)
    with pytest.raises(openai.APIStatusError) as late:
        await proxy(body_timeout=0.5).json_body(request(receive))
    assert late.value.status_code == 408 and late.value.body["code"] == "request_timeout"


async def test_a_client_gone_mid_body_is_a_client_disconnect() -> None:
    receive = pieces(part(b'{"model":'), {"type": "http.disconnect"})
    with pytest.raises(ClientDisconnect):
        await proxy().json_body(request(receive))
