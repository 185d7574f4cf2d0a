"""Vertex AI and Azure through the SDK, sync and async: per-call cloud options, one Google
token shared by every call on the same account, and Azure's background lifecycle."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.conftest import SDK
from tests.fakes.google_oauth import PROJECT, service_account, tokens
from tests.fakes.process import FakeServer, _request

VERSION = "2025-04-01-preview"


@pytest.fixture(scope="module")
def vertex_account(vertex_fake: FakeServer) -> str:
    return json.dumps(service_account(vertex_fake))


def vertex(fake: FakeServer, account: str, model: str) -> dict[str, Any]:
    return {"model": f"vertex_ai/{model}", "api_base": fake.root, "vertex_project": PROJECT,
            "vertex_location": "us-east5", "vertex_credentials": account}  # fmt: skip


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "claude-sonnet-4-5"])
async def test_vertex_calls_share_one_token(sdk: SDK, vertex_fake: FakeServer, vertex_account: str, model: str) -> None:
    vertex_fake.reset()
    email = json.loads(vertex_account)["client_email"]
    before = [t for t in tokens(vertex_fake) if t["client_email"] == email]
    first = await sdk.create(**vertex(vertex_fake, vertex_account, model), input="one")
    events = await sdk.stream(**vertex(vertex_fake, vertex_account, model), input="two", previous_response_id=first.id)
    assert events[-1].response.output_text == "Echo (turns=2): two"
    issued = [t for t in tokens(vertex_fake) if t["client_email"] == email]
    assert len(issued) - len(before) <= 1  # the token of the first call served the second
    publisher = "google" if model.startswith("gemini") else "anthropic"
    paths = [r["path"] for r in vertex_fake.requests() if r["path"] != "/token"]
    assert all(f"/locations/us-east5/publishers/{publisher}/models/{model}:" in p for p in paths)


async def test_azure_background_get_cancel_delete_with_an_entra_token(sdk: SDK, azure_fake: FakeServer) -> None:
    azure_fake.reset()
    _request("POST", azure_fake.root + "/_fake/entra_tokens", {"token": "sdk-entra"})
    options = {"api_base": f"{azure_fake.root}/openai/deployments/gpt-4o", "api_version": VERSION}
    common = {"model": "azure/gpt-4o", "azure_ad_token": "sdk-entra", **options}
    queued = await sdk.create(**common, input="later", background=True)
    deadline = time.monotonic() + 15
    while (done := await sdk.get(queued.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert done.output_text == "Echo (turns=1): later"
    azure_fake.enqueue({"background_delay": 30})
    slow = await sdk.create(**common, input="slow", background=True)
    assert (await sdk.cancel(slow.id)).status == "cancelled"
    await sdk.delete(queued.id)
    methods = [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in azure_fake.requests()]
    assert ("POST", "cancel") in methods and ("DELETE", queued.id) not in methods  # upstream ids, not ours
    assert {r["headers"].get("authorization") for r in azure_fake.requests()} == {"Bearer sdk-entra"}
    assert all(r["path"].startswith("/openai/deployments/gpt-4o/responses") for r in azure_fake.requests())
    assert [r["method"] for r in azure_fake.requests()].count("DELETE") == 1
