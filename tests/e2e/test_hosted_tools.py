"""Hosted tools carried across, through the proxy with the openai SDK: web search on Anthropic and
Gemini (web_search_call items, url_citation annotations), refused or dropped elsewhere; images and
PDFs by URL reaching each provider in its own form (fetched and inlined where it cannot fetch)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes import bedrock_upstream as aws
from tests.fakes.media_host import PDF, PNG, MediaHost, media_host
from tests.fakes.process import FakeServer

MODELS = {"claude": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash", "llama": "groq/llama-3.3-70b",
          "bedrock": "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0"}  # fmt: skip
AWS_KEYS = {"aws_access_key_id": aws.ACCESS_KEY, "aws_secret_access_key": aws.SECRET_KEY}
SEARCH = [{"type": "web_search"}]


@pytest.fixture(scope="module")
def host() -> Iterator[MediaHost]:
    with media_host() as h:
        yield h


@pytest.fixture(scope="module")
def fakes(anthropic_fake: FakeServer, gemini_fake: FakeServer, chat_fake: FakeServer,
          bedrock_fake: FakeServer) -> dict[str, FakeServer]:  # fmt: skip
    return {"claude": anthropic_fake, "gemini": gemini_fake, "llama": chat_fake, "bedrock": bedrock_fake}


def entry(name: str, model: str, fake: FakeServer, **extra: Any) -> dict[str, Any]:
    keys = AWS_KEYS if model.startswith("bedrock/") else {"api_key": "os.environ/TEST_KEY"}
    return {"model_name": name, "litellm_params": {"model": model, "api_base": fake.url, **keys, **extra}}


@pytest.fixture(scope="module")
def proxy(fakes: dict[str, FakeServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    model_list = [entry(name, model, fakes[name]) for name, model in MODELS.items()]
    model_list.append(entry("llama-lenient", MODELS["llama"], fakes["llama"], drop_params=True))
    # The media host serves on 127.0.0.1: this proxy may fetch from it; 0.1 MB keeps "too big" small.
    settings = {"media_allow_private_urls": True, "media_max_mb": 0.1, "media_fetch_timeout": 5}
    config = write_config({"model_list": model_list, "general_settings": settings}, tmp_path_factory.mktemp("cfg"))
    with start_proxy("--config", str(config), env={"TEST_KEY": "test-key"}) as p:
        yield p


@pytest.fixture
def client(proxy: ProxyProcess) -> OpenAI:
    return OpenAI(base_url=proxy.url, api_key="k", max_retries=0)


def last_body(fake: FakeServer) -> dict[str, Any]:
    return fake.requests()[-1]["body"]


def dumped(values: list[Any], *exclude: str) -> list[Any]:
    # None-valued fields left out: the stream helper's parsed types add some (`parsed`).
    return [v.model_dump(exclude=set(exclude), exclude_none=True) for v in values]


# -- web search ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["claude", "gemini"])
def test_web_search_gives_a_search_call_and_citations_stream_and_whole(client: OpenAI, model: str) -> None:
    whole = client.responses.create(model=model, input="python release", tools=SEARCH)
    with client.responses.stream(model=model, input="python release", tools=SEARCH) as stream:
        kinds = [e.type for e in stream]
        streamed = stream.get_final_response()  # the SDK's accumulator folded every event
    for r in (whole, streamed):
        search = next(i for i in r.output if i.type == "web_search_call")
        assert search.status == "completed" and search.action.type == "search"
        assert search.action.query == "python release" and search.action.sources
        cited = [(p.text, a) for i in r.output if i.type == "message" for p in i.content for a in p.annotations]
        assert cited and all(a.type == "url_citation" and a.url.startswith("https://") for _, a in cited)
        text, first = cited[0]
        assert text[first.start_index : first.end_index].startswith("Echo (turns=1): python release")
    assert {"response.web_search_call.searching", "response.web_search_call.completed",
            "response.output_text.annotation.added"} <= set(kinds)  # fmt: skip
    assert dumped(streamed.output, "id") == dumped(whole.output, "id")
    stored = client.responses.retrieve(streamed.id)
    assert dumped([stored]) == dumped([streamed])  # what was kept is what was streamed


def test_web_search_reaches_anthropic_as_its_server_tool_and_a_search_turn_replays(
    client: OpenAI, fakes: dict[str, FakeServer]
) -> None:
    tool = {"type": "web_search", "filters": {"allowed_domains": ["python.org"]},
            "user_location": {"type": "approximate", "country": "US", "city": "Boston"}}  # fmt: skip
    first = client.responses.create(model="claude", input="python release", tools=[tool])
    sent = last_body(fakes["claude"])["tools"]
    location = {"type": "approximate", "country": "US", "city": "Boston"}
    assert sent == [{"type": "web_search_20250305", "name": "web_search", "allowed_domains": ["python.org"],
                     "user_location": location}]  # fmt: skip
    search = next(i for i in first.output if i.type == "web_search_call")
    assert all(s.url.startswith("https://python.org/") for s in search.action.sources or [])
    # The fake refuses replayed search results without their encrypted content: the turn goes back as text.
    second = client.responses.create(model="claude", input="thanks", previous_response_id=first.id, tools=[tool])
    assert second.output_text.endswith("That is what two sources say.")
    gemini = client.responses.create(model="gemini", input="and now?", previous_response_id=first.id)
    assert gemini.output_text == "Echo (turns=2): and now?"
    assert last_body(fakes["gemini"])["contents"][0]["parts"] == [{"text": "python release"}]


@pytest.mark.parametrize("model", ["llama", "bedrock"])
def test_web_search_where_there_is_none_is_a_400_naming_the_tool(client: OpenAI, model: str) -> None:
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}, {"type": "web_search_preview"}]
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model=model, input="x", tools=tools)
    assert exc.value.body["param"] == "tools[1]" and exc.value.body["code"] == "unsupported_parameter"
    assert "'web_search_preview'" in exc.value.message


def test_drop_params_drops_web_search_and_says_so(client: OpenAI, fakes: dict[str, FakeServer]) -> None:
    raw = client.responses.with_raw_response.create(model="llama-lenient", input="x", tools=SEARCH)
    assert raw.headers["x-llmrelay-dropped-params"] == "tools[0]"
    assert raw.parse().output_text == "Echo (turns=1): x"
    assert "tools" not in last_body(fakes["llama"])


# -- images and files by URL ---------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def expected_forms(url: str) -> dict[str, list[Any]]:
    """The image and the PDF, as each provider takes them."""
    return {
        "claude": [{"type": "image", "source": {"type": "url", "url": f"{url}/cat.png"}},
                   {"type": "document", "source": {"type": "url", "url": f"{url}/doc.pdf"}}],
        "gemini": [{"inlineData": {"mimeType": "image/png", "data": b64(PNG)}},
                   {"inlineData": {"mimeType": "application/pdf", "data": b64(PDF)}}],
        "bedrock": [{"image": {"format": "png", "source": {"bytes": b64(PNG)}}},
                    {"document": {"format": "pdf", "source": {"bytes": b64(PDF)}, "name": "doc"}}],
        "llama": [{"type": "image_url", "image_url": {"url": f"{url}/cat.png", "detail": "auto"}},
                  {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{b64(PDF)}",
                                            "filename": "doc.pdf"}}],
    }  # fmt: skip


def user_parts(model: str, body: dict[str, Any]) -> list[Any]:
    if model == "gemini":
        return body["contents"][-1]["parts"]
    return body["messages"][-1]["content"]


@pytest.mark.parametrize("model", list(MODELS))
def test_image_and_pdf_urls_reach_each_provider_in_its_own_form(
    client: OpenAI, fakes: dict[str, FakeServer], host: MediaHost, model: str
) -> None:
    content = [{"type": "input_text", "text": "what is this"},
               {"type": "input_image", "image_url": f"{host.url}/cat.png", "detail": "auto"},
               {"type": "input_file", "file_url": f"{host.url}/doc.pdf"}]  # fmt: skip
    r = client.responses.create(model=model, input=[{"role": "user", "content": content}])
    assert r.output_text.startswith("Echo (turns=1): what is this")
    assert user_parts(model, last_body(fakes[model]))[1:] == expected_forms(host.url)[model]
    stored = client.responses.input_items.list(r.id).data[0].model_dump()["content"]
    assert stored[1]["image_url"] == f"{host.url}/cat.png"  # the store keeps the URL, not the bytes


@pytest.mark.parametrize(
    ("path", "why"),
    [("/big.png", "larger than the 104857 bytes allowed"), ("/page.html", "not an image"), ("/gone.png", "HTTP 404")],
)
def test_a_url_that_cannot_be_used_is_a_400_naming_the_part(client: OpenAI, host: MediaHost, path: str,
                                                            why: str) -> None:  # fmt: skip
    content = [
        {"type": "input_text", "text": "x"},
        {"type": "input_image", "image_url": host.url + path, "detail": "auto"},
    ]
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="gemini", input=[{"role": "user", "content": content}])
    assert why in exc.value.message and exc.value.body["param"] == "input[0].content[1].image_url"


def test_an_unreachable_url_is_a_400(client: OpenAI) -> None:
    content = [{"type": "input_file", "file_url": "http://127.0.0.1:9/report.pdf"}]
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="bedrock", input=[{"role": "user", "content": content}])
    assert exc.value.body["param"] == "input[0].content[0].file_url"


def test_a_private_address_is_refused_unless_allowed(
    fakes: dict[str, FakeServer], host: MediaHost, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = write_config({"model_list": [entry("gemini", MODELS["gemini"], fakes["gemini"])]},
                          tmp_path_factory.mktemp("cfg"))  # fmt: skip
    hits = len(host.hits)
    with start_proxy("--config", str(config), env={"TEST_KEY": "test-key"}) as p:
        client = OpenAI(base_url=p.url, api_key="k", max_retries=0)
        content = [{"type": "input_image", "image_url": f"{host.url}/cat.png", "detail": "auto"}]
        with pytest.raises(openai.BadRequestError) as exc:
            client.responses.create(model="gemini", input=[{"role": "user", "content": content}])
    assert "private or local address" in exc.value.message
    assert exc.value.body["param"] == "input[0].content[0].image_url"
    assert len(host.hits) == hits  # refused before connecting
