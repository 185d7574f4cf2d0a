"""Virtual keys: every record is owned by the key that made it; another key gets 404."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import FakeServer

MASTER = "sk-master-key"


def generate(proxy: ProxyProcess, auth: str, alias: str = "team") -> tuple[int, dict]:
    req = urllib.request.Request(proxy.root + "/key/generate", data=json.dumps({"key_alias": alias}).encode(),
                                 method="POST", headers={"authorization": f"Bearer {auth}",
                                                         "content-type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_records_are_scoped_to_the_key_that_made_them(
    openai_fake: FakeServer, anthropic_fake: FakeServer, tmp_path: Path
) -> None:
    config = {"model_list": [
        {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k",
                                                 "api_base": openai_fake.url}},
        {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-sonnet-4-5", "api_key": "k",
                                                    "api_base": anthropic_fake.url}},
    ], "general_settings": {"master_key": MASTER}}  # fmt: skip
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        status, made = generate(proxy, MASTER)
        assert status == 200 and made["key"].startswith("sk-llmrelay-") and made["key_alias"] == "team"
        other = generate(proxy, MASTER)[1]["key"]
        assert generate(proxy, made["key"])[0] == 403  # only the master key mints keys
        a = OpenAI(base_url=proxy.url, api_key=made["key"], max_retries=0)
        b = OpenAI(base_url=proxy.url, api_key=other, max_retries=0)
        for model in ("gpt", "claude"):
            mine = a.responses.create(model=model, input="mine")
            assert a.responses.retrieve(mine.id).output_text == mine.output_text
            for attempt in (b.responses.retrieve, b.responses.delete, b.responses.input_items.list, b.responses.cancel):
                with pytest.raises(openai.NotFoundError):
                    attempt(mine.id)
            with pytest.raises(openai.BadRequestError) as exc:
                b.responses.create(model=model, input="x", previous_response_id=mine.id)
            assert exc.value.code == "previous_response_not_found"
        job = a.responses.create(model="claude", input="later", background=True)
        with pytest.raises(openai.NotFoundError):
            b.responses.cancel(job.id)
        with pytest.raises(openai.NotFoundError):
            list(b.responses.retrieve(job.id, stream=True))
        conv = a.conversations.create()
        with pytest.raises(openai.NotFoundError):
            b.conversations.retrieve(conv.id)
        with pytest.raises(openai.NotFoundError):
            b.responses.create(model="claude", input="x", conversation=conv.id)
        with pytest.raises(openai.NotFoundError):  # the master key is an owner of its own too
            OpenAI(base_url=proxy.url, api_key=MASTER, max_retries=0).responses.retrieve(mine.id)
        # a deleted key stops working
        req = urllib.request.Request(proxy.root + "/key/delete", data=json.dumps({"keys": [other]}).encode(),
                                     method="POST", headers={"authorization": f"Bearer {MASTER}",
                                                             "content-type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["deleted_keys"] == [other]
        with pytest.raises(openai.AuthenticationError):
            b.responses.create(model="gpt", input="x")
