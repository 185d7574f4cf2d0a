"""`llmrelay --config config.yaml`, `llmrelay --model openai/gpt-4o`, `llmrelay demo`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Any

from .config import ConfigError, load_config, parse_config

DEMO_MODEL = "demo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="llmrelay", description="The OpenAI Responses API for every LLM provider, as a proxy."
    )
    parser.add_argument("command", nargs="?", choices=["demo"], help="demo: serve a built-in local demo model")
    parser.add_argument("--version", action="version", version=f"llmrelay {_version()}")
    parser.add_argument("--config", help="path to config.yaml (LiteLLM's format)")
    parser.add_argument("--model", help="serve one model without a config file, e.g. openai/gpt-4o")
    # HOST and PORT from the environment, as in LiteLLM (containers and platforms set them)
    parser.add_argument("--host", default=os.environ.get("HOST") or "0.0.0.0")
    parser.add_argument("--port", type=int, default=os.environ.get("PORT") or 4000)
    parser.add_argument("--workers", "--num_workers", dest="workers", type=int, default=1)
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--detailed_debug", action="store_true", help="debug logging (same as --log-level debug)")
    parser.add_argument("--access-log", action="store_true", help="log method, path, status, model, latency")
    parser.add_argument("--json-logs", action="store_true", help="one JSON line per request; log lines as JSON")
    seconds = {"type": _seconds, "metavar": "SECONDS"}
    parser.add_argument("--header-timeout", default=10.0, help="408 when the headers take longer", **seconds)
    parser.add_argument("--body-timeout", default=60.0, help="408 when the body takes longer", **seconds)
    args = parser.parse_args(argv)

    env = _environment(args)
    if env is None:
        parser.print_usage(sys.stderr)
        print("llmrelay: give --config, --model or the demo command", file=sys.stderr)
        return 2
    from .jobs import lease_seconds
    from .telemetry.settings import telemetry_settings

    if args.json_logs:
        env["LLMRELAY_JSON_LOGS"] = "1"
    try:  # validate everything before the port is bound
        config = load_config(env["LLMRELAY_CONFIG"]) if "LLMRELAY_CONFIG" in env else parse_config(_one_model(env))
        lease_seconds()
        telemetry = telemetry_settings(config, {**os.environ, **env})
    except (ConfigError, ValueError) as exc:
        print(f"llmrelay: config error: {exc}", file=sys.stderr)
        return 2
    if config.skipped:
        names = ", ".join(dict.fromkeys(re.sub(r"^model_list\[\d+\]", "model_list[*]", p) for p in config.skipped))
        print(f"llmrelay: warning: skipping config keys llmrelay does not implement yet: {names}", file=sys.stderr)
    if args.access_log:
        env["LLMRELAY_ACCESS_LOG"] = "1"
    env["LLMRELAY_BODY_TIMEOUT"] = str(args.body_timeout)
    os.environ.update(env)
    if telemetry.prometheus and args.workers > 1:
        _metrics_dir()
    debug = args.detailed_debug or config.litellm_settings.set_verbose
    log_level = "debug" if debug else args.log_level
    _configure_logging(log_level, json_lines=telemetry.json_logs)

    import uvicorn

    from .proxy.guard import guarded_protocol

    names = ", ".join(e.model_name for e in config.model_list) or "(none)"
    print(f"llmrelay: models: {names}")
    if args.command == "demo":
        _print_demo_help(args.port)
    # uvicorn drains in-flight requests on SIGTERM/SIGINT, then re-raises the signal to the
    # handler that was there before it: a no-op here, so a graceful stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server_config = uvicorn.Config(
        "llmrelay.proxy.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=guarded_protocol(header_timeout=args.header_timeout),
        log_level=log_level,
        timeout_graceful_shutdown=int(config.general_settings.graceful_shutdown_timeout),
        access_log=False,
    )
    sock = _listen(args.host, args.port)
    running = f"RUNNING on http://{args.host}:{args.port}"
    sys.stdout.flush()  # nothing buffered may be inherited by (and repeated from) forked workers
    if args.workers > 1 and hasattr(os, "fork"):
        _prefork(server_config, sock, args.workers, running)
    elif args.workers > 1:
        from uvicorn.supervisors import Multiprocess

        print(running, flush=True)  # spawned workers: no hook into their startup
        Multiprocess(server_config, sockets=[sock]).run()
    else:
        _serve(server_config, sock, lambda: print(running, flush=True))
    return 0


def _serve(server_config: Any, sock: socket.socket, on_ready: Callable[[], None]) -> None:
    """Run one uvicorn server on `sock`; `on_ready` runs once it accepts connections (the app's
    startup done), so whoever waits for the RUNNING line can connect at once."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                on_ready()

    Server(server_config).run(sockets=[sock])


def _prefork(server_config: Any, sock: socket.socket, workers: int, running: str) -> None:
    """Workers forked from one process that imported the app once: each starts in
    milliseconds instead of re-importing everything (uvicorn's workers are spawned). A worker
    that dies is replaced; SIGTERM / SIGINT go to every worker, which drain and exit. The
    first worker to be ready prints the RUNNING line: it takes the one byte of a pipe."""
    import llmrelay.proxy.app  # noqa: F401  # the heavy imports, done once, inherited by every worker

    token, writer = os.pipe()
    os.write(writer, b"!")
    os.close(writer)
    os.set_blocking(token, False)

    def announce() -> None:
        with contextlib.suppress(BlockingIOError):
            if os.read(token, 1):
                print(running, flush=True)

    children: set[int] = set()
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker: uvicorn installs its own handlers and re-raises into these
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: None)
            code = 0
            try:
                _serve(server_config, sock, announce)
            except BaseException:
                code = 1
            os._exit(code)
        children.add(pid)

    def forward(sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    for _ in range(workers):
        spawn()
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while children:
        try:
            pid, _status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from .telemetry.metrics import worker_exited

            worker_exited(pid)
        if not stopping:
            spawn()


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, made here rather than by uvicorn: created with an explicit TCP
    protocol and TCP_NODELAY, so accepted connections answer without Nagle's 40 ms stalls
    (asyncio only disables Nagle on sockets whose protocol it can see is TCP)."""
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        raise SystemExit(f"llmrelay: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _version() -> str:
    try:
        return metadata.version("llmrelay")
    except metadata.PackageNotFoundError:
        return "unknown"


def _metrics_dir() -> None:
    """Prometheus' multiprocess mode for the workers: a directory they all write their values
    to, set before any of them starts, emptied of an earlier run's files, removed at exit."""
    import atexit
    import shutil
    import tempfile

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path is None:
        path = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="llmrelay-metrics-")
        parent = os.getpid()
        atexit.register(lambda: os.getpid() == parent and shutil.rmtree(path, ignore_errors=True))
    # imported only now: prometheus_client picks its multiprocess mode when first imported
    from .telemetry.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(path)


def _configure_logging(level: str, *, json_lines: bool = False) -> None:
    """llmrelay's own loggers at the chosen level, one prefixed line each (uvicorn configures
    only its own), or one JSON object each."""
    handler = logging.StreamHandler()
    if json_lines:
        from .telemetry.json_log import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("llmrelay")
    root.addHandler(handler)
    root.setLevel(level.upper())


def _environment(args: argparse.Namespace) -> dict[str, str] | None:
    if args.config:
        return {"LLMRELAY_CONFIG": os.path.abspath(args.config)}
    if args.model:
        return {"LLMRELAY_MODEL": args.model, "LLMRELAY_MODEL_NAME": args.model}
    if args.command == "demo":
        return {"LLMRELAY_MODEL": "mock/demo", "LLMRELAY_MODEL_NAME": DEMO_MODEL}
    return None


def _one_model(env: dict[str, str]) -> dict[str, object]:
    model = env["LLMRELAY_MODEL"]
    return {"model_list": [{"model_name": env["LLMRELAY_MODEL_NAME"], "litellm_params": {"model": model}}]}


def _print_demo_help(port: int) -> None:
    print(
        f"""llmrelay demo: model "{DEMO_MODEL}" is a built-in local echo model (not an LLM), no API key needed.

    from openai import OpenAI
    client = OpenAI(base_url="http://localhost:{port}/v1", api_key="anything")
    r = client.responses.create(model="{DEMO_MODEL}", input="Hello!")
    print(r.output_text)
"""
    )


if __name__ == "__main__":
    raise SystemExit(main())
