"""Scenarios: what is asked of each system, and how."""

from __future__ import annotations

from dataclasses import dataclass

from common import Json


@dataclass(frozen=True)
class Scenario:
    name: str
    api: str  # upstream API: "responses" (native), "messages" (Anthropic) or "chat"
    stream: bool
    chain: bool = False  # previous_response_id of a stored response on every request
    background: bool = False  # `background: true`, then GET /v1/responses/{id} until it ends
    stored: bool = True  # False: `store: false`, so llmrelay keeps no record of the response

    @property
    def model(self) -> str:
        return f"bench-{self.api}" + ("-bg" if self.background else "-sse" if self.stream else "")

    @property
    def upstream_root(self) -> str:
        """The upstream's base path for this scenario: its canned bodies live under it."""
        return f"/{'bg' if self.background else 'sse' if self.stream else 'plain'}/v1"

    @property
    def upstream_path(self) -> str:
        tail = {"responses": "responses", "messages": "messages", "chat": "chat/completions"}[self.api]
        return f"{self.upstream_root}/{tail}"


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("native", "responses", False),
        Scenario("native-stream", "responses", True),
        Scenario("anthropic", "messages", False),
        Scenario("anthropic-stream", "messages", True),
        Scenario("chain", "responses", False, chain=True),
        Scenario("chain-anthropic", "messages", False, chain=True),
        Scenario("background", "responses", False, background=True),
        Scenario("chat", "chat", False),
        Scenario("chat-stream", "chat", True),
        # The same requests with `store: false`: llmrelay's CPU without the store's commit on the
        # request path (each stored response is committed before it is answered).
        Scenario("native-unstored", "responses", False, stored=False),
        Scenario("native-stream-unstored", "responses", True, stored=False),
        Scenario("anthropic-stream-unstored", "messages", True, stored=False),
    )
}
DEFAULT_SCENARIOS = [
    "native",
    "native-stream",
    "anthropic",
    "anthropic-stream",
    "chain",
    "chain-anthropic",
    "background",
]
QUICK_SCENARIOS = ["native", "native-stream"]


def responses_request(
    model: str,
    stream: bool,
    previous: str | None = None,
    text: str = "Say hello.",
    background: bool = False,
    stored: bool = True,
) -> Json:
    body: Json = {"model": model, "input": text, "max_output_tokens": 256}
    if not stored:
        body["store"] = False
    if stream:
        body["stream"] = True
    if background:
        body["background"] = True
    if previous:
        body["previous_response_id"] = previous
    return body


@dataclass
class Route:
    """How one system is asked for one scenario."""

    path: str
    headers: dict[str, str]
    body: Json
    via: str = ""  # set when the system cannot take the scenario's own request shape
