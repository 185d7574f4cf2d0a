"""Upstream calls through the corporate egress proxy the environment names (HTTPS_PROXY,
HTTP_PROXY): an https upstream through a CONNECT tunnel, its certificate checked end to end, a
plain-http one in absolute form, both with the proxy's credentials; the openai SDK as client."""

from __future__ import annotations

import ssl
from pathlib import Path

from openai import OpenAI

from tests.e2e.proxy_process import start_proxy, write_config
from tests.fakes.forward_proxy import ForwardProxy, ThreadedForwardProxy
from tests.fakes.process import FakeServer
from tests.fakes.tls import certificates


def test_upstream_calls_go_through_the_egress_proxy(
    openai_fake: FakeServer, anthropic_fake: FakeServer, tmp_path: Path
) -> None:
    ca, cert, key = certificates(tmp_path, "localhost")
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    # The proxy ends the tunnel's TLS with a certificate for localhost from a CA only llmrelay
    # trusts (SSL_CERT_FILE), and goes on in plain text to the fake: an https upstream.
    with ThreadedForwardProxy(ForwardProxy(credentials=("egress", "pw"), terminate=served)) as egress:
        models = [
            {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-test",
                                                     "api_base": f"https://localhost:{openai_fake.port}/v1"}},
            {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-sonnet-4-5", "api_key": "sk-test",
                                                        "api_base": anthropic_fake.url}},
        ]  # fmt: skip
        config = write_config({"model_list": models}, tmp_path)
        env = {"HTTPS_PROXY": egress.url(), "HTTP_PROXY": egress.url(), "SSL_CERT_FILE": str(ca),
               "no_proxy": "", "NO_PROXY": ""}  # fmt: skip
        with start_proxy("--config", str(config), env=env) as proxy:
            client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
            created = client.responses.create(model="gpt", input="Say hello.")
            assert created.status == "completed" and created.output_text
            with client.responses.stream(model="gpt", input="Stream it.") as stream:
                final = stream.get_final_response()
            assert final.status == "completed" and final.output_text
            translated = client.responses.create(model="claude", input="Say hello.")
            assert translated.status == "completed" and translated.output_text
            assert client.responses.retrieve(created.id).id == created.id
    connects = {(s.line, s.authorization) for s in egress.seen if s.line.startswith("CONNECT")}
    assert connects == {(f"CONNECT localhost:{openai_fake.port} HTTP/1.1", "Basic ZWdyZXNzOnB3")}
    absolute = [s.line for s in egress.seen if not s.line.startswith("CONNECT")]
    assert absolute and all(line == f"POST {anthropic_fake.url}/messages HTTP/1.1" for line in absolute)
    assert len(openai_fake.requests()) >= 2 and anthropic_fake.requests()
