"""Compaction: native passthrough, and llmrelay's own summary for translated providers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import llmrelay
from llmrelay import Relay
from tests.e2e.proxy_process import start_proxy, write_config
from tests.fakes.process import FakeServer


def test_translated_compaction_summarises_and_expands_on_any_provider(
    anthropic_fake: FakeServer, chat_fake: FakeServer
) -> None:
    anthropic_fake.reset()
    relay = Relay(store="memory")
    claude = {"model": "anthropic/claude-sonnet-4-5", "api_key": "k", "api_base": anthropic_fake.url, "relay": relay}
    first = llmrelay.responses(**claude, input="my name is Ada")
    second = llmrelay.responses(**claude, input="I like tea", previous_response_id=first.id)
    compacted = llmrelay.compact_responses(**claude, previous_response_id=second.id)
    assert compacted.object == "response.compaction" and compacted.usage.total_tokens > 0
    kinds = [i.type for i in compacted.output]
    assert kinds == ["message", "message", "compaction"]
    assert [i.content[0].text for i in compacted.output[:2]] == ["my name is Ada", "I like tea"]
    summary_request = anthropic_fake.requests()[-1]["body"]
    assert "Summarize the conversation" in summary_request["system"]
    # the compaction item comes back as input, on another provider
    chat_fake.reset()
    items = [i.model_dump(exclude_none=True, warnings=False) for i in compacted.output]
    llama = {"model": "groq/llama-3.3-70b", "api_key": "k", "api_base": chat_fake.url, "relay": relay}
    after = llmrelay.responses(**llama, input=[*items, {"role": "user", "content": "what do I like?"}])
    assert after.output_text == "Echo (turns=3): what do I like?"
    messages = chat_fake.requests()[-1]["body"]["messages"]
    assert any(m["role"] == "system" and "Summary of the earlier conversation" in m["content"] for m in messages)


def test_native_compaction_passes_through_and_model_is_required(openai_fake: FakeServer, tmp_path) -> None:
    openai_fake.reset()
    config = {"model_list": [{"model_name": "gpt", "litellm_params": {
        "model": "openai/gpt-4o", "api_key": "k", "api_base": openai_fake.url}}]}  # fmt: skip
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        from openai import OpenAI

        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        compacted = client.responses.compact(model="gpt", input=[{"role": "user", "content": "remember this"}])
        assert compacted.object == "response.compaction" and compacted.output[-1].type == "compaction"
        assert openai_fake.requests()[-1]["path"] == "/v1/responses/compact"
        assert openai_fake.requests()[-1]["body"]["model"] == "gpt-4o"
        req = urllib.request.Request(proxy.url + "/responses/compact", data=b'{"input": "x"}', method="POST",
                                     headers={"content-type": "application/json"})  # fmt: skip
        try:
            urllib.request.urlopen(req, timeout=5)
            raise AssertionError("expected a 400")
        except urllib.error.HTTPError as exc:
            assert exc.code == 400 and json.loads(exc.read())["error"]["param"] == "model"
