"""Two proxy processes sharing one Postgres store."""

from __future__ import annotations

import os
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.e2e.proxy_process import start_proxy, write_config
from tests.e2e.test_proxy import SEED_CONFIG
from tests.fakes.process import FakeServer

PG_URL = os.environ.get("LLMRELAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def test_a_response_created_on_one_instance_is_served_by_the_other(openai_fake: FakeServer, tmp_path: Path) -> None:
    openai_fake.reset()
    config = write_config({**SEED_CONFIG, "general_settings": {"database_url": PG_URL}}, tmp_path)
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url}
    with (
        start_proxy("--config", str(config), env=env, store=None) as a,
        start_proxy("--config", str(config), env=env, store=None) as b,
    ):
        on_a = OpenAI(base_url=a.url, api_key="k", max_retries=0)
        on_b = OpenAI(base_url=b.url, api_key="k", max_retries=0)
        first = on_a.responses.create(model="openai/o1-pro", input="one")
        assert on_b.responses.retrieve(first.id).output_text == first.output_text
        assert [i.content[0].text for i in on_b.responses.input_items.list(first.id)] == ["one"]
        second = on_b.responses.create(model="openai/o1-pro", input="two", previous_response_id=first.id)
        assert second.output_text == "Echo (turns=2): two"
        streamed = list(on_a.responses.create(model="openai/o1-pro", input="three", stream=True,
                                              previous_response_id=second.id))  # fmt: skip
        assert streamed[-1].response.output_text == "Echo (turns=3): three"
        on_b.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            on_a.responses.retrieve(first.id)


def test_nul_in_input_metadata_items_and_output_round_trips_on_postgres(
    openai_fake: FakeServer, tmp_path: Path
) -> None:
    openai_fake.reset()
    config = write_config({**SEED_CONFIG, "general_settings": {"database_url": PG_URL}}, tmp_path)
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url}
    text = "a\x00b \ue000 \\u0000"
    with start_proxy("--config", str(config), env=env, store=None) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        r = client.responses.create(model="openai/o1-pro", input=text, metadata={"k": text})
        assert r.output_text == f"Echo (turns=1): {text}"  # the upstream's output holds NUL too
        got = client.responses.retrieve(r.id)
        assert got.output_text == r.output_text and got.metadata == {"k": text}
        assert [i.content[0].text for i in client.responses.input_items.list(r.id)] == [text]
        assert client.responses.create(model="openai/o1-pro", input="more", previous_response_id=r.id).status == (
            "completed"
        )
        conv = client.conversations.create(items=[{"role": "user", "content": text}], metadata={"k": text})
        client.conversations.items.create(conv.id, items=[{"role": "user", "content": [{"type": "input_text",
                                                                                         "text": text}]}])  # fmt: skip
        listed = client.conversations.items.list(conv.id, order="asc")
        assert [i.content[0].text for i in listed] == [text, text]
        assert client.conversations.retrieve(conv.id).metadata == {"k": text}
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve("resp_\x00")
