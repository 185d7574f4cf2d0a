"""The Conversations API from llmrelay's store, for native and translated providers."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI

import llmrelay
from llmrelay import Relay
from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import FakeServer


def test_sdk_conversation_crud_and_create_with_conversation(anthropic_fake: FakeServer) -> None:
    relay = Relay(store="memory")
    opening = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    conv = llmrelay.create_conversation(items=opening, metadata={"topic": "t"}, relay=relay)
    assert conv.object == "conversation" and conv.metadata == {"topic": "t"}
    assert llmrelay.get_conversation(conv.id, relay=relay).id == conv.id
    common = {"model": "anthropic/claude-sonnet-4-5", "api_key": "k", "api_base": anthropic_fake.url, "relay": relay}
    r = llmrelay.responses(**common, input="second", conversation=conv.id)
    assert r.output_text == "Echo (turns=2): second"
    assert r.conversation.id == conv.id
    items = llmrelay.list_conversation_items(conv.id, order="asc", relay=relay)
    assert [i.type for i in items.data] == ["message"] * 4
    assert [i.role for i in items.data] == ["user", "assistant", "user", "assistant"]
    r3 = llmrelay.responses(**common, input="third", conversation={"id": conv.id})
    assert r3.output_text == "Echo (turns=3): third"
    page = llmrelay.list_conversation_items(conv.id, limit=2, relay=relay)
    assert page.has_more and page.data[0].role == "assistant"
    added = llmrelay.create_conversation_items(conv.id, items=[{"role": "user", "content": "note"}], relay=relay)
    item_id = added.data[0].id
    assert llmrelay.get_conversation_item(conv.id, item_id, relay=relay).content[0].text == "note"
    llmrelay.delete_conversation_item(conv.id, item_id, relay=relay)
    with pytest.raises(openai.NotFoundError):
        llmrelay.get_conversation_item(conv.id, item_id, relay=relay)
    assert llmrelay.update_conversation(conv.id, metadata={"k": "v"}, relay=relay).metadata == {"k": "v"}
    with pytest.raises(openai.BadRequestError):
        llmrelay.responses(**common, input="x", conversation=conv.id, previous_response_id=r.id)
    assert llmrelay.delete_conversation(conv.id, relay=relay).deleted
    with pytest.raises(openai.NotFoundError):
        llmrelay.get_conversation(conv.id, relay=relay)
    with pytest.raises(openai.NotFoundError):
        llmrelay.responses(**common, input="x", conversation=conv.id)


@pytest.fixture(scope="module")
def proxy(openai_fake: FakeServer, gemini_fake: FakeServer, tmp_path_factory) -> Iterator[ProxyProcess]:
    config = {"model_list": [
        {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k",
                                                 "api_base": openai_fake.url}},
        {"model_name": "gemini", "litellm_params": {"model": "gemini/gemini-2.5-flash", "api_key": "k",
                                                    "api_base": gemini_fake.url}},
    ]}  # fmt: skip
    with start_proxy("--config", str(write_config(config, tmp_path_factory.mktemp("conv")))) as p:
        yield p


def test_conversations_through_the_proxy_across_providers(proxy: ProxyProcess, openai_fake: FakeServer) -> None:
    openai_fake.reset()
    client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
    conv = client.conversations.create(metadata={"user": "u1"})
    one = client.responses.create(model="gpt", input="one", conversation=conv.id)
    assert one.output_text == "Echo (turns=1): one"
    assert "conversation" not in openai_fake.requests()[-1]["body"]  # ours, not the upstream's
    with client.responses.stream(model="gemini", input="two", conversation=conv.id) as stream:
        two = stream.get_final_response()
    assert two.output_text == "Echo (turns=2): two"
    three = client.responses.create(model="gpt", input="three", conversation=conv.id)
    assert three.output_text == "Echo (turns=3): three"
    items = list(client.conversations.items.list(conv.id, order="asc"))
    assert [getattr(i, "role", None) for i in items] == ["user", "assistant"] * 3
    assert client.conversations.retrieve(conv.id).metadata == {"user": "u1"}
    assert client.conversations.update(conv.id, metadata={"user": "u2"}).metadata == {"user": "u2"}
    created = client.conversations.items.create(conv.id, items=[{"role": "user", "content": "added"}])
    item = client.conversations.items.retrieve(created.data[0].id, conversation_id=conv.id)
    assert item.content[0].text == "added"
    client.conversations.items.delete(item.id, conversation_id=conv.id)
    assert client.conversations.delete(conv.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)


def test_conversation_items_get_the_create_item_checks(proxy: ProxyProcess) -> None:
    client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
    conv = client.conversations.create()
    with pytest.raises(openai.BadRequestError) as exc:
        bad = [{"role": "user", "content": "ok"}, {"role": "user", "content": 123}]
        client.conversations.items.create(conv.id, items=bad)  # type: ignore[list-item]
    assert exc.value.body["param"] == "items[1].content" and exc.value.body["code"] == "invalid_type"
    with pytest.raises(openai.BadRequestError) as exc:
        client.conversations.create(items=[{"type": "no_such_item"}])
    assert exc.value.body["param"] == "items[0].type"
    assert list(client.conversations.items.list(conv.id)) == []  # nothing half-added
