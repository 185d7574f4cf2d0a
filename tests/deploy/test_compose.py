"""deploy/compose.yaml against the Compose specification, its pieces against each other, and
deploy/nginx.conf in front of two real proxies running deploy/config.yaml (shared Postgres, Redis)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from openai import OpenAI
from websockets.sync.client import connect

from tests.deploy.image import parse_dockerfile
from tests.deploy.nginx import Nginx, listen_ports, upstream_servers
from tests.deploy.settings import DEPLOY, config_env_names, deploy_config, seconds
from tests.e2e.proxy_process import ProxyProcess
from tests.e2e.waits import wait_for
from tests.fakes.process import REPO_ROOT, FakeServer

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "compose-spec.json").read_text())


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def relay_services(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from the repository's Dockerfile."""
    return {name: s for name, s in spec["services"].items()
            if (DEPLOY / s.get("build", {}).get("context", "/nonexistent") / "Dockerfile").resolve()
            == (REPO_ROOT / "Dockerfile").resolve()}  # fmt: skip


def test_compose_file_follows_the_compose_specification() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(compose())


def test_the_schema_check_catches_mistakes() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    spec = compose()
    broken = copy.deepcopy(spec)
    broken["services"]["nginx"]["depends_on"]["llmrelay-1"]["condition"] = "service_ready"
    assert not validator.is_valid(broken)
    misspelt = copy.deepcopy(spec)
    misspelt["services"]["postgres"]["healthcheck"]["intervall"] = "5s"
    assert not validator.is_valid(misspelt)


def test_compose_pieces_fit_together() -> None:
    spec, image = compose(), parse_dockerfile()
    relays = relay_services(spec)
    assert sorted(relays) == ["llmrelay-1", "llmrelay-2"]
    config_path = image.cmd[image.cmd.index("--config") + 1]
    settings = deploy_config()
    for service in relays.values():
        assert f"./config.yaml:{config_path}:ro" in service["volumes"]  # where the image's CMD reads it
        assert config_env_names() <= service["environment"].keys()  # every os.environ/ secret given
        assert "/health/readiness" in " ".join(service["healthcheck"]["test"])
        # docker stops a container after stop_grace_period: requests in flight get their drain first
        assert seconds(service["stop_grace_period"]) > settings.general_settings.graceful_shutdown_timeout
    for name, service in spec["services"].items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert rule["condition"] == "service_healthy", (name, dependency)
            assert "healthcheck" in spec["services"][dependency], dependency
    # nginx balances over exactly the llmrelay services, on the port the image listens on
    conf = (DEPLOY / "nginx.conf").read_text()
    assert sorted(upstream_servers(conf)) == [f"{name}:{image.env['PORT']}" for name in sorted(relays)]
    nginx = spec["services"]["nginx"]
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert [int(p.split(":")[-1]) for p in nginx["ports"]] == listen_ports(conf)
    # the store and Redis of the config are the compose services
    env = relays["llmrelay-1"]["environment"]
    assert "@postgres:5432/" in env["DATABASE_URL"] and env["REDIS_HOST"] == "redis"
    assert settings.router_settings.redis_port == 6379


def test_nginx_accepts_the_conf() -> None:
    nginx = Nginx({address: 1 for address in upstream_servers((DEPLOY / "nginx.conf").read_text())})
    try:
        done = nginx.test()
        assert done.returncode == 0, done.stderr
        assert "syntax is ok" in done.stderr and "test is successful" in done.stderr
    finally:
        nginx.stop()


def test_nginx_balances_two_instances_sharing_one_store(
    openai_fake: FakeServer, two_instances: list[ProxyProcess]
) -> None:
    openai_fake.reset()
    conf = (DEPLOY / "nginx.conf").read_text()
    upstreams = dict(zip(upstream_servers(conf), (p.port for p in two_instances), strict=True))
    with Nginx(upstreams) as nginx:
        client = OpenAI(base_url=f"http://127.0.0.1:{nginx.port}/v1", api_key="sk-master", max_retries=0)
        first = client.responses.create(model="openai/gpt-4o", input="one")
        previous = first.id
        for i in range(5):  # each continues the last, wherever it was made
            previous = client.responses.create(model="openai/gpt-4o", input=f"n{i}", previous_response_id=previous).id
        assert client.responses.retrieve(previous).output_text == "Echo (turns=6): n4"
        events = list(client.responses.create(model="openai/gpt-4o", input="streamed", stream=True))
        assert events[0].type == "response.created" and events[-1].type == "response.completed"
        with connect(f"ws://127.0.0.1:{nginx.port}/v1/responses",
                     additional_headers={"Authorization": "Bearer sk-master"}) as ws:  # fmt: skip
            ws.send(json.dumps({"type": "response.create", "model": "openai/gpt-4o", "input": "over ws"}))
            while (event := json.loads(ws.recv(timeout=10)))["type"] != "response.completed":
                assert event["type"] != "error", event
        assert client.responses.retrieve(event["response"]["id"]).status == "completed"
        # both instances served requests (the POSTs: the WebSocket is not in the access log)
        served = wait_for(lambda: [p.output().count("POST /v1/responses ") for p in two_instances],
                          lambda counts: sum(counts) == 7)  # fmt: skip
        assert sum(served) == 7 and min(served) >= 1, served
