"""Image and file URLs fetched for upstreams that cannot fetch them: bounded, typed, never from a
private address unless allowed, and every failure a 400 naming the part."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator

import pytest

from llmrelay import errors
from llmrelay.providers import anthropic, bedrock, chat, gemini, media, openai, vertex
from llmrelay.providers.base import Call
from llmrelay.providers.registry import make_deployment
from llmrelay.transport import Http
from tests.fakes.media_host import PDF, PNG, MediaHost, media_host

OPEN = media.MediaPolicy(max_bytes=100_000, timeout=5, allow_private=True)


@pytest.fixture(scope="module")
def host() -> Iterator[MediaHost]:
    with media_host() as h:
        yield h


def call_with(parts: list[dict], model: str = "gemini/gemini-2.5-flash") -> Call:
    counter = itertools.count()
    message = {"type": "message", "role": "user", "content": parts}
    return Call(id="resp_1", params={"model": model, "input": [message]}, deployment=make_deployment(model),
                input_items=[message], created_at=0, new_id=lambda p: f"{p}_{next(counter)}")  # fmt: skip


async def test_fetched_and_inlined_for_an_upstream_that_cannot_fetch(host: MediaHost) -> None:
    image = {"type": "input_image", "image_url": f"{host.url}/moved"}
    pdf = {"type": "input_file", "file_url": f"{host.url}/doc.pdf"}
    call = call_with([{"type": "input_text", "text": "look"}, image, pdf])
    await media.inline(call, gemini.Gemini(), Http(), OPEN)
    parts = call.params["input"][0]["content"]
    assert parts[1]["image_url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert parts[2] == {"type": "input_file", "file_data": "data:application/pdf;base64," + base64.b64encode(PDF)
                        .decode(), "filename": "doc.pdf"}  # fmt: skip
    assert call.input_items[0]["content"][1] is image  # what is stored keeps its URL


async def test_left_as_urls_where_the_upstream_fetches_them(host: MediaHost) -> None:
    image = {"type": "input_image", "image_url": f"{host.url}/cat.png"}
    pdf = {"type": "input_file", "file_url": f"{host.url}/doc.pdf"}
    call = call_with([image, pdf], "anthropic/claude-sonnet-4-5")
    await media.inline(call, anthropic.Anthropic(), Http(), OPEN)
    assert call.params["input"][0]["content"] == [image, pdf]
    call = call_with([image, pdf], "openai/gpt-4o")
    await media.inline(call, openai.OpenAIResponses(), Http(), OPEN)
    assert call.params["input"][0]["content"] == [image, pdf]
    call = call_with([image, pdf])  # Claude on Vertex takes no URL sources
    await media.inline(call, vertex.VertexAnthropic(), Http(), OPEN)
    assert [p.get("image_url", p.get("file_data", ""))[:5] for p in call.params["input"][0]["content"]] == ["data:"] * 2
    call = call_with([image, pdf], "groq/llama-3.3-70b")  # Chat Completions fetches images, not files
    await media.inline(call, chat.Chat(), Http(), OPEN)
    content = call.params["input"][0]["content"]
    assert content[0] == image and content[1]["file_data"].startswith("data:application/pdf;base64,JVBER")


async def test_sniffs_a_generic_type_and_wraps_bare_base64(host: MediaHost) -> None:
    bare = {"type": "input_file", "file_data": base64.b64encode(PDF).decode(), "filename": "r.pdf"}
    call = call_with([{"type": "input_image", "image_url": f"{host.url}/plain.png"}, bare])
    await media.inline(call, bedrock.Bedrock(), Http(), OPEN)
    image, pdf = call.params["input"][0]["content"]
    assert image["image_url"].startswith("data:image/png;base64,")
    assert pdf["file_data"].startswith("data:application/pdf;base64,JVBER")


@pytest.mark.parametrize(
    ("path", "policy", "why"),
    [
        ("/big.png", OPEN, "larger than the 100000 bytes allowed"),
        ("/page.html", OPEN, "text/html, not an image"),
        ("/nothing.png", OPEN, "HTTP 404"),
        ("/cat.png", media.MediaPolicy(), "private or local address (127.0.0.1)"),
    ],
)
async def test_what_cannot_be_fetched_is_a_400_naming_the_part(
    host: MediaHost, path: str, policy: media.MediaPolicy, why: str
) -> None:
    call = call_with([{"type": "input_text", "text": "x"}, {"type": "input_image", "image_url": host.url + path}])
    with pytest.raises(errors.APIStatusError) as exc:
        await media.inline(call, gemini.Gemini(), Http(), policy)
    assert exc.value.status_code == 400 and why in exc.value.message
    assert exc.value.body["param"] == "input[0].content[1].image_url"


PRIVATE = ["http://localhost:1/x.png", "http://[::1]:1/x.png", "http://10.0.0.7/x.png",
           "http://169.254.169.254/latest/meta-data", "http://[::ffff:127.0.0.1]/x.png"]  # fmt: skip


@pytest.mark.parametrize("url", PRIVATE)
async def test_private_addresses_are_refused_before_connecting(url: str) -> None:
    call = call_with([{"type": "input_image", "image_url": url}])
    with pytest.raises(errors.APIStatusError, match="private or local address"):
        await media.inline(call, gemini.Gemini(), Http(), media.MediaPolicy(timeout=2))


async def test_an_unreachable_or_unresolvable_host_is_a_400() -> None:
    for url in ("http://127.0.0.1:9/x.png", "http://no-such-host.invalid/x.png"):
        call = call_with([{"type": "input_file", "file_url": url}])
        with pytest.raises(errors.APIStatusError) as exc:
            await media.inline(call, gemini.Gemini(), Http(), OPEN)
        assert exc.value.status_code == 400 and exc.value.body["param"] == "input[0].content[0].file_url"
