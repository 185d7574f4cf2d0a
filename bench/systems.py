"""The systems under test: the direct upstream, llmrelay (and its variants), LiteLLM, Portkey."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

from background import probe_background
from canned import PIECES, TEXT
from common import API_KEY, BENCH, CORES, DELTAS, HOST, MASTER_KEY, ROOT, Json
from installs import litellm_venv, portkey_dir
from procs import Proc, bytecode, free_port, post, spawn, wait_for_200
from scenarios import SCENARIOS, Route, Scenario, responses_request

PG_URL = os.environ.get("LLMRELAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/llmrelay_bench")


def upstream_models(upstream: str) -> list[Json]:
    """The shared model_list; `anthropic_base` differs: LiteLLM appends /v1/messages itself."""
    return [
        {"model_name": "bench-responses", "base": f"{upstream}/plain/v1", "model": "openai/gpt-4o"},
        {"model_name": "bench-responses-sse", "base": f"{upstream}/sse/v1", "model": "openai/gpt-4o"},
        {"model_name": "bench-responses-bg", "base": f"{upstream}/bg/v1", "model": "openai/gpt-4o"},
        {"model_name": "bench-messages", "base": f"{upstream}/plain", "model": "anthropic/claude-sonnet-4-5"},
        {"model_name": "bench-messages-sse", "base": f"{upstream}/sse", "model": "anthropic/claude-sonnet-4-5"},
        {"model_name": "bench-chat", "base": f"{upstream}/plain/v1", "model": "openai/gpt-4o", "chat": True},
        {"model_name": "bench-chat-sse", "base": f"{upstream}/sse/v1", "model": "openai/gpt-4o", "chat": True},
    ]


class System:
    name = ""
    workers = 1
    start_limit = 30.0

    def __init__(self, workdir: Path, upstream_port: int) -> None:
        self.workdir = workdir
        self.upstream = f"http://{HOST}:{upstream_port}"
        self.proc: Proc | None = None
        self.port = 0
        self.notes: list[str] = []

    def launch(self, port: int, workers: int) -> Proc:
        raise NotImplementedError

    def route(self, s: Scenario, previous: str | None = None) -> Route | None:
        raise NotImplementedError

    def start(self, workers: int | None = None) -> float:
        """Launch and wait for the first 200 on a POST; returns that cold start in seconds."""
        self.port = free_port()
        first = self.route(SCENARIOS["native"])
        assert first is not None
        t0 = time.monotonic()
        self.proc = self.launch(self.port, workers or self.workers)
        return wait_for_200(self.proc, self.port, first.path, first.headers, first.body, self.start_limit) - t0

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


class Direct(System):
    name = "direct"

    def route(self, s: Scenario, previous: str | None = None) -> Route | None:
        if s.api == "messages":
            body: Json = {
                "model": "claude-sonnet-4-5",
                "max_tokens": 256,
                "messages": [{"role": "user", "content": "Say hello."}],
            }
        elif s.api == "chat":
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello."}]}
        else:
            body = responses_request("gpt-4o", False, background=s.background)
        if s.stream:
            body["stream"] = True
        return Route(s.upstream_path, {}, body)


class Floor(System):
    """bench/floor.py: uvicorn (httptools + uvloop) forwarding bytes over an aiohttp pool, the
    least a Python gateway does; llmrelay's CPU per request is shown as a multiple of it."""

    name = "floor"
    workers = CORES

    def launch(self, port: int, workers: int) -> Proc:
        argv = [sys.executable, "-m", "uvicorn", "floor:app", "--app-dir", str(BENCH), "--host", HOST]
        argv += ["--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
        argv += ["--http", "httptools", "--loop", "uvloop"]
        env = {"FLOOR_UPSTREAM": self.upstream, **self.env}
        return spawn(f"{self.name}-{port}", argv, self.workdir, env=env, cwd=BENCH)

    env: dict[str, str] = {}

    def route(self, s: Scenario, previous: str | None = None) -> Route | None:
        # The scenario's upstream path, llmrelay's request body: forwarded as bytes, never read.
        body = responses_request(s.model, s.stream, previous, background=s.background)
        return Route(s.upstream_path, {}, body, via="forwards bytes")


class LLMRelay(System):
    name = "llmrelay"
    workers = CORES
    start_limit = 30.0

    @property
    def checkout(self) -> Path:
        """The source tree whose llmrelay runs (`python -m llmrelay.cli` from there)."""
        return ROOT

    def config(self, store: Path) -> Json:
        models = []
        for m in upstream_models(self.upstream):
            base = m["base"] + ("/v1" if m["model"].startswith("anthropic/") else "")
            params: Json = {"model": m["model"], "api_base": base, "api_key": API_KEY}
            if m.get("chat"):
                params["use_chat_completions_api"] = True
            models.append({"model_name": m["model_name"], "litellm_params": params})
        return {"model_list": models, "general_settings": {"store": str(store), "master_key": MASTER_KEY}}

    def command(self) -> list[str]:
        # The checkout this script belongs to (cwd=ROOT), not whichever `llmrelay` is installed.
        return [sys.executable, "-m", "llmrelay.cli"]

    def launch(self, port: int, workers: int) -> Proc:
        tag = f"{self.name}-{port}"
        cfg = self.workdir / f"{tag}.json"  # JSON is YAML
        cfg.write_text(json.dumps(self.config(self.workdir / f"{tag}-store.db"), indent=2))
        argv = [*self.command(), "--config", str(cfg), "--host", HOST, "--port", str(port), "--workers", str(workers)]
        bytecode(self.checkout / "llmrelay")
        return spawn(tag, argv, self.workdir, cwd=self.checkout)

    def route(self, s: Scenario, previous: str | None = None) -> Route | None:
        body = responses_request(s.model, s.stream, previous, background=s.background, stored=s.stored)
        return Route("/v1/responses", {"authorization": f"Bearer {MASTER_KEY}"}, body)


# uvicorn binds the multi-worker listening socket as socket.socket(family) (proto 0), and asyncio
# only sets TCP_NODELAY on sockets whose proto reads IPPROTO_TCP; accepted connections then run
# with Nagle on, and a response written in two parts waits for the client's delayed ACK (~40 ms).
# This launcher re-makes that socket from its fd so proto reads back as TCP: a diagnostic of
# what llmrelay does without the stall, not how llmrelay ships.
NODELAY_LAUNCHER = """
import socket, sys
import uvicorn.config
from llmrelay.cli import main
_bind = uvicorn.config.Config.bind_socket
uvicorn.config.Config.bind_socket = lambda self: socket.socket(fileno=_bind(self).detach())
sys.argv[0] = "llmrelay"
sys.exit(main())
"""


class LLMRelayNoDelay(LLMRelay):
    name = "llmrelay-nodelay"

    def command(self) -> list[str]:
        return [sys.executable, "-c", NODELAY_LAUNCHER]


class LiteLLM(System):
    name = "litellm"
    workers = CORES
    start_limit = 180.0

    def launch(self, port: int, workers: int) -> Proc:
        venv = litellm_venv()
        models = [
            {
                "model_name": m["model_name"],
                "litellm_params": {"model": m["model"], "api_base": m["base"], "api_key": API_KEY},
            }
            for m in upstream_models(self.upstream)
            if not m.get("chat")
        ]
        cfg = self.workdir / f"litellm-{port}.yaml"
        cfg.write_text(json.dumps({"model_list": models, "general_settings": {"master_key": MASTER_KEY}}, indent=2))
        argv = [str(venv / "bin" / "litellm"), "--config", str(cfg), "--host", HOST, "--port", str(port)]
        argv += ["--num_workers", str(workers)]
        env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
        return spawn(f"litellm-{port}", argv, self.workdir, env=env, cwd=self.workdir)

    def route(self, s: Scenario, previous: str | None = None) -> Route | None:
        if s.chain or s.api == "chat" or not s.stored:  # stores nothing either way
            return None
        body = responses_request(s.model, s.stream, background=s.background)
        return Route("/v1/responses", {"authorization": f"Bearer {MASTER_KEY}"}, body)


class Portkey(System):
    name = "portkey"
    workers = 1  # one Node process: the gateway has no worker option
    start_limit = 60.0

    def launch(self, port: int, workers: int) -> Proc:
        entry = portkey_dir() / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
        node = shutil.which("node") or "node"
        argv = [node, str(entry), f"--port={port}", "--headless"]
        return spawn(f"portkey-{port}", argv, self.workdir, env={"NODE_ENV": "production"}, cwd=self.workdir)

    def route(self, s: Scenario, previous: str | None = None) -> Route | None:
        if s.chain or s.api == "chat" or not s.stored:  # stores nothing either way
            return None
        root = self.upstream + s.upstream_root
        headers = {"authorization": f"Bearer {API_KEY}", "x-portkey-custom-host": root}
        if s.api == "responses":
            headers["x-portkey-provider"] = "openai"
            return Route("/v1/responses", headers, responses_request("gpt-4o", s.stream, background=s.background))
        # Portkey has no Responses API for Anthropic; its own translation is Chat Completions -> Messages.
        headers |= {"x-portkey-provider": "anthropic", "x-api-key": API_KEY}
        body: Json = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": "Say hello."}],
        }
        if s.stream:
            body["stream"] = True
        return Route("/v1/chat/completions", headers, body, via="chat->messages")


class LLMRelayVirtualKey(LLMRelay):
    """llmrelay called with a virtual key that has a budget, rate limits and a model list: key
    lookup, limit checks, pricing and the spend log all run on every request."""

    name = "llmrelay-vkey"
    LIMITS: ClassVar[Json] = {"max_budget": 1e9, "budget_duration": "30d", "rpm_limit": 10**9,
                              "tpm_limit": 10**12, "max_parallel_requests": 10**6}  # fmt: skip
    key: str | None = None

    def start(self, workers: int | None = None) -> float:
        cold = super().start(workers)
        body = {**self.LIMITS, "models": [m["model_name"] for m in upstream_models(self.upstream)]}
        status, data = post(self.port, "/key/generate", {"authorization": f"Bearer {MASTER_KEY}"}, body)
        if status != 200:
            raise RuntimeError(f"/key/generate failed: {status} {data[:300]!r}")
        self.key = json.loads(data)["key"]
        return cold

    def route(self, s: Scenario, previous: str | None = None) -> Route | None:
        route = super().route(s, previous)
        if route is not None and self.key:
            route.headers["authorization"] = f"Bearer {self.key}"
        return route


class LLMRelayPostgres(LLMRelay):
    """llmrelay with its store on Postgres: a private database, `LLMRELAY_BENCH_PG` (default
    postgresql://postgres@127.0.0.1:5432/llmrelay_bench), created when missing."""

    name = "llmrelay-pg"

    def config(self, store: Path) -> Json:
        cfg = super().config(store)
        cfg["general_settings"]["store"] = ensure_database(PG_URL)
        return cfg


def ensure_database(url: str) -> str:
    """`url`, its database created first if it does not exist (through psql on the `postgres` db)."""
    base, _, name = url.rpartition("/")
    if not re.fullmatch(r"\w+", name):
        raise ValueError(f"database name {name!r}: letters, digits and _ only")
    admin = f"{base}/postgres"
    found = subprocess.run(["psql", admin, "-Atc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    if found.stdout.strip() != "1":
        subprocess.run(["psql", admin, "-c", f"CREATE DATABASE {name}"], capture_output=True, check=True)
    return url


class FloorLean(Floor):
    """The floor over llmrelay's own upstream client instead of aiohttp's: what is left of the
    floor once a gateway brings a lean client (the `x floor` column stays against `floor`)."""

    name = "floor-lean"
    env = {"FLOOR_CLIENT": "lean"}


class LLMRelayBaseline(LLMRelay):
    """llmrelay at another commit (`--baseline REV`), run side by side in the same trials: the
    fair before/after on a noisy machine."""

    name = "baseline"
    rev = "HEAD"

    @property
    def checkout(self) -> Path:
        tree = self.workdir / "baseline-src"
        if not tree.exists():
            tree.mkdir()
            archive = subprocess.run(["git", "archive", self.rev], cwd=ROOT, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        return tree


class LLMRelayBaselinePostgres(LLMRelayBaseline, LLMRelayPostgres):
    """The baseline commit with its store on Postgres (`--baseline REV --systems llmrelay-pg,baseline-pg`)."""

    name = "baseline-pg"


SYSTEM_CLASSES: dict[str, type[System]] = {
    "llmrelay": LLMRelay,
    "floor": Floor,
    "floor-lean": FloorLean,
    "baseline": LLMRelayBaseline,
    "baseline-pg": LLMRelayBaselinePostgres,
    "llmrelay-nodelay": LLMRelayNoDelay,
    "llmrelay-vkey": LLMRelayVirtualKey,
    "llmrelay-pg": LLMRelayPostgres,
    "litellm": LiteLLM,
    "portkey": Portkey,
}


def first_turn(system: System, s: Scenario) -> str:
    """The stored response a chain scenario continues from."""
    route = system.route(SCENARIOS["native" if s.api == "responses" else "anthropic"])
    assert route is not None
    status, data = post(system.port, route.path, route.headers, {**route.body, "input": "Turn one."})
    if status != 200:
        raise RuntimeError(f"first turn failed: {status} {data[:300]!r}")
    return json.loads(data)["id"]


def probe(system: System, port: int, route: Route, s: Scenario) -> str | None:
    """None when the system answers this scenario correctly, else why not."""
    if s.background:
        return probe_background(port, route)
    try:
        status, data = post(port, route.path, route.headers, route.body)
    except (OSError, http.client.HTTPException) as exc:
        return f"request failed: {exc!r}"
    text = data.decode(errors="replace")
    if status != 200:
        return f"HTTP {status}: {text[:300]}"
    if s.stream:
        # Each of the 40 upstream pieces must come through as its own delta.
        missing = [p for p in PIECES if f'"{p}"' not in text]
        if missing:
            return f"stream lacks {len(missing)} of {DELTAS} deltas: {text[:300]}"
    elif TEXT not in text and TEXT.strip() not in text:
        return f"answer lacks the upstream text: {text[:300]}"
    return None
