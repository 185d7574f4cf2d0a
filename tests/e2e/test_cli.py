"""The `llmrelay` command as a real process: startup, options, logs, the demo model."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.e2e.proxy_process import ProxyProcess, run_cli, start_proxy, write_config
from tests.fakes.process import REPO_ROOT, free_port


def wait_for(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def logged(proxy: ProxyProcess, text: str) -> bool:
    return wait_for(lambda: text in proxy.output())


# -- startup ----------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [[], ["--num_workers", "2"]], ids=["one-worker", "num_workers-2"])
def test_running_is_printed_once_the_port_answers(workers: list[str], tmp_path: Path) -> None:
    port = free_port()
    env = {"LLMRELAY_STORE": str(tmp_path / "r.db")}
    process = subprocess.Popen(
        [sys.executable, "-m", "llmrelay.cli", "demo", *workers, "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(30, process.kill)  # a proxy that never says RUNNING fails, not hangs
    watchdog.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("RUNNING on "):
                break
        else:
            pytest.fail("no RUNNING line")
        assert line.strip() == f"RUNNING on http://127.0.0.1:{port}"
        # no retry: the line means the port already answers
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/readiness", timeout=5) as r:
            assert r.status == 200
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=20)
        watchdog.cancel()
    assert "RUNNING" not in rest  # one line, also with several workers
    assert process.returncode == 0


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("llmrelay ") and result.stdout.split()[1][0].isdigit()


def test_detailed_debug_logs_at_debug_level(tmp_path: Path) -> None:
    with start_proxy("demo", "--detailed_debug", store=str(tmp_path / "d.db")) as proxy:
        OpenAI(base_url=proxy.url, api_key="k", max_retries=0).responses.create(model="demo", input="hi")
        assert logged(proxy, "DEBUG llmrelay: model 'demo' -> deployment ")


# -- the access log ---------------------------------------------------------------------------


def test_access_log_flag(tmp_path: Path) -> None:
    with start_proxy("demo", "--access-log", store=str(tmp_path / "a.db")) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="sk-client-secret", max_retries=0)
        created = client.responses.create(model="demo", input="hi")
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve("resp_missing")
        assert logged(proxy, "GET /v1/responses/resp_missing 404 model=-")
        line = next(x for x in proxy.output().splitlines() if "POST /v1/responses 200" in x)
        assert line.startswith("INFO llmrelay.access: 127.0.0.1:")
        assert line.split("POST /v1/responses 200 model=demo ")[1].endswith("ms")
        client.responses.retrieve(created.id)
        assert logged(proxy, f"GET /v1/responses/{created.id} 200")
        assert "sk-client-secret" not in proxy.output()


def test_access_log_config_key_never_logs_keys(tmp_path: Path) -> None:
    config = {
        "model_list": [{"model_name": "demo", "litellm_params": {"model": "mock/demo", "api_key": "sk-upstream-1"}}],
        "general_settings": {"master_key": "sk-master-1", "access_log": True},
    }
    with start_proxy("--config", str(write_config(config, tmp_path)), store=str(tmp_path / "k.db")) as proxy:
        OpenAI(base_url=proxy.url, api_key="sk-master-1", max_retries=0).responses.create(model="demo", input="x")
        with pytest.raises(openai.AuthenticationError):
            OpenAI(base_url=proxy.url, api_key="sk-wrong-1", max_retries=0).models.list()
        assert logged(proxy, "GET /v1/models 401 model=-")
        assert "POST /v1/responses 200 model=demo" in proxy.output()
        assert "sk-" not in proxy.output()


def test_no_access_log_by_default(tmp_path: Path) -> None:
    with start_proxy("demo", store=str(tmp_path / "n.db")) as proxy:
        OpenAI(base_url=proxy.url, api_key="k", max_retries=0).responses.create(model="demo", input="hi")
        proxy.stop()
        assert "llmrelay.access" not in proxy.output()


# -- the demo model ---------------------------------------------------------------------------


def test_demo_counts_input_tokens(tmp_path: Path) -> None:
    with start_proxy("demo", store=str(tmp_path / "t.db")) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="anything", max_retries=0)
        count = client.responses.input_tokens.count(model="demo", input="one two three", instructions="Be brief.")
        assert count.object == "response.input_tokens" and count.input_tokens == 5
        first = client.responses.create(model="demo", input="one two three", instructions="Be brief.")
        assert first.usage is not None and first.usage.input_tokens == count.input_tokens
        chained = client.responses.input_tokens.count(model="demo", input="four", previous_response_id=first.id)
        second = client.responses.create(model="demo", input="four", previous_response_id=first.id)
        assert second.usage is not None and chained.input_tokens == second.usage.input_tokens > 1


# -- LiteLLM config compatibility -------------------------------------------------------------

LITELLM_CONFIG = {
    "model_list": [
        {
            "model_name": "demo",
            "litellm_params": {"model": "mock/demo", "input_cost_per_second": 0.000001},
            "model_info": {"mode": "chat", "base_model": "gpt-4o"},
        },
        {"model_name": "demo-2", "litellm_params": {"model": "mock/demo"}, "model_info": {"mode": "chat"}},
    ],
    "litellm_settings": {"success_callback": ["langfuse"], "drop_params": True},
    "general_settings": {
        "master_key": "sk-1234",
        "alerting": ["slack"],
        "proxy_batch_write_at": 60,
        "database_connection_pool_limit": 10,
    },
}


def test_a_litellm_config_with_unimplemented_settings_starts_with_one_warning(tmp_path: Path) -> None:
    config = write_config(LITELLM_CONFIG, tmp_path)
    with start_proxy("--config", str(config), store=str(tmp_path / "c.db")) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="sk-1234", max_retries=0)
        assert client.responses.create(model="demo", input="hi").status == "completed"
        warnings = [line for line in proxy.output().splitlines() if "not implement" in line]
    assert warnings == [  # in the file's order (write_config sorts keys), each key once
        "llmrelay: warning: skipping config keys llmrelay does not implement yet: "
        "general_settings.alerting, general_settings.database_connection_pool_limit, "
        "general_settings.proxy_batch_write_at, "
        "model_list[*].litellm_params.input_cost_per_second, model_list[*].model_info.base_model, "
        "model_list[*].model_info.mode, litellm_settings.success_callback[langfuse]"
    ]


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("router_settings", "model_group_alias", {"gpt-4": "demo"}),
        ("litellm_settings", "model_alias_map", {"gpt-4": "demo"}),
        ("general_settings", "max_parallel_requests", 10),
    ],
)
def test_a_behaviour_changing_key_is_refused(section: str, key: str, value: object, tmp_path: Path) -> None:
    config = {**LITELLM_CONFIG, section: {**LITELLM_CONFIG.get(section, {}), key: value}}  # type: ignore[dict-item]
    result = run_cli("--config", str(write_config(config, tmp_path)))
    assert result.returncode == 2
    assert f"config error: {section}.{key}: not supported yet: llmrelay does not implement" in result.stderr
    assert "RUNNING" not in result.stdout


def test_a_deployment_with_a_budget_is_refused(tmp_path: Path) -> None:
    params = {"model": "mock/demo", "max_budget": 4}
    config = {"model_list": [{"model_name": "demo", "litellm_params": params}]}
    result = run_cli("--config", str(write_config(config, tmp_path)))
    assert result.returncode == 2
    expected = "model_list[0].litellm_params.max_budget: not supported yet: llmrelay does not implement budgets"
    assert expected in result.stderr


def test_a_misspelt_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    config = {**LITELLM_CONFIG, "general_settings": {"mastr_key": "sk-1234"}}
    result = run_cli("--config", str(write_config(config, tmp_path)))
    assert result.returncode == 2
    assert "config error: general_settings.mastr_key: unknown key; did you mean 'master_key'?" in result.stderr


def test_timeouts_must_be_positive() -> None:
    result = run_cli("demo", "--header-timeout", "0")
    assert result.returncode == 2 and "--header-timeout: must be a positive number of seconds" in result.stderr
