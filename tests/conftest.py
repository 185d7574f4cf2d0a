"""Shared fixtures: real fake-upstream processes, and the SDK driven sync or async."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

import llmrelay
from llmrelay import Relay
from tests.fakes.process import FakeServer, start_fake

# Every server the tests talk to is on this machine: a proxy the environment names (for package
# registries, say) is not asked for them, by this process or the proxies it starts.
for _name in ("no_proxy", "NO_PROXY"):
    os.environ[_name] = ",".join(filter(None, [os.environ.get(_name), "127.0.0.1", "localhost"]))


@pytest.fixture(scope="session")
def openai_fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.openai_upstream", background_delay=0.6) as fake:
        yield fake


@pytest.fixture(scope="session")
def openai_fake_b() -> Iterator[FakeServer]:
    """A second, independent upstream (another account, another store)."""
    with start_fake("tests.fakes.openai_upstream") as fake:
        yield fake


@pytest.fixture(scope="session")
def anthropic_fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.anthropic_upstream") as fake:
        yield fake


@pytest.fixture(scope="session")
def gemini_fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.gemini_upstream") as fake:
        yield fake


@pytest.fixture(scope="session")
def bedrock_fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.bedrock_upstream") as fake:
        yield fake


@pytest.fixture(scope="session")
def vertex_fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.vertex_upstream") as fake:
        yield fake


@pytest.fixture(scope="session")
def azure_fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.azure_upstream", background_delay=0.6) as fake:
        yield fake


@pytest.fixture(scope="session")
def chat_fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.chat_upstream") as fake:
        yield fake


@pytest.fixture
def upstream(openai_fake: FakeServer) -> FakeServer:
    openai_fake.reset()
    return openai_fake


@pytest.fixture
def relay() -> Relay:
    return Relay(store="memory")


class SDK:
    """The module-level SDK, called through its sync or its async functions."""

    def __init__(self, mode: str, relay: Relay) -> None:
        self.mode, self.relay = mode, relay

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        kwargs["relay"] = self.relay
        if self.mode == "sync":
            return getattr(llmrelay, name)(*args, **kwargs)
        return await getattr(llmrelay, "a" + name)(*args, **kwargs)

    async def create(self, **params: Any) -> Any:
        return await self._call("responses", **params)

    async def stream(self, **params: Any) -> list[Any]:
        if self.mode == "sync":
            return list(llmrelay.responses(stream=True, relay=self.relay, **params))
        return [e async for e in await llmrelay.aresponses(stream=True, relay=self.relay, **params)]

    async def get(self, response_id: str, **options: Any) -> Any:
        return await self._call("get_responses", response_id, **options)

    async def delete(self, response_id: str, **options: Any) -> Any:
        return await self._call("delete_responses", response_id, **options)

    async def items(self, response_id: str, **kw: Any) -> Any:
        return await self._call("list_input_items", response_id, **kw)

    async def cancel(self, response_id: str, **options: Any) -> Any:
        return await self._call("cancel_responses", response_id, **options)


@pytest.fixture(params=["sync", "async"])
def sdk(request: pytest.FixtureRequest, relay: Relay) -> SDK:
    return SDK(request.param, relay)
