"""Which telemetry is switched on, from the config (LiteLLM's callback lists) and the environment.

- `prometheus` in `litellm_settings.callbacks`, `success_callback` or `failure_callback`;
- `otel` there, or `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set
  (LiteLLM's `OTEL_ENDPOINT` is read too, as the full traces URL);
- `--json-logs` (`LLMRELAY_JSON_LOGS=1`) or `litellm_settings.json_logs`;
- a webhook: an http(s) URL in those lists, or `generic_api` with `GENERIC_LOGGER_ENDPOINT`
  (and `GENERIC_LOGGER_HEADERS`, "name=value,name=value"). A URL in `success_callback` gets
  the calls that completed, in `failure_callback` the others, in `callbacks` all of them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config import Config

OTEL_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_ENDPOINT")


@dataclass(slots=True)
class WebhookTarget:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    success: bool = False  # sent the calls that completed
    failure: bool = False  # sent the ones that did not


@dataclass(slots=True)
class TelemetrySettings:
    prometheus: bool = False
    otel: bool = False
    otel_endpoint: str | None = None  # None: the exporter reads the OTEL_* environment itself
    json_logs: bool = False
    webhooks: list[WebhookTarget] = field(default_factory=list)

    @property
    def on(self) -> bool:
        return self.prometheus or self.otel or self.json_logs or bool(self.webhooks)


def telemetry_settings(config: Config, env: Mapping[str, str] | None = None) -> TelemetrySettings:
    """Raises ValueError for a target that cannot work (generic_api without its endpoint)."""
    env = os.environ if env is None else env
    ls = config.litellm_settings
    lists = {"callbacks": ls.callbacks, "success_callback": ls.success_callback,
             "failure_callback": ls.failure_callback}  # fmt: skip
    named = {name for names in lists.values() for name in names}
    settings = TelemetrySettings(
        prometheus="prometheus" in named,
        otel="otel" in named or any(env.get(k) for k in OTEL_ENV),
        otel_endpoint=env.get("OTEL_ENDPOINT") or None,
        json_logs=ls.json_logs or env.get("LLMRELAY_JSON_LOGS") == "1",
    )
    targets: dict[str, WebhookTarget] = {}
    for key, names in lists.items():
        for name in names:
            if name == "generic_api":
                url = env.get("GENERIC_LOGGER_ENDPOINT")
                if not url:
                    raise ValueError(f"litellm_settings.{key}: generic_api needs GENERIC_LOGGER_ENDPOINT set")
                headers = _headers(env.get("GENERIC_LOGGER_HEADERS", ""))
            elif name.startswith(("http://", "https://")):
                url, headers = name, {}
            else:
                continue
            target = targets.setdefault(url, WebhookTarget(url, headers))
            target.success = target.success or key != "failure_callback"
            target.failure = target.failure or key != "success_callback"
    settings.webhooks = list(targets.values())
    _require("prometheus", settings.prometheus, "prometheus_client", "metrics")
    _require("otel", settings.otel, "opentelemetry.exporter.otlp.proto.http", "otel")
    return settings


def _require(target: str, on: bool, module: str, extra: str) -> None:
    """Refuse at startup, naming the extra, rather than fail in every worker."""
    if not on:
        return
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        found = False
    if not found:
        raise ValueError(f"{target} is switched on but {module} is not installed: pip install 'llmrelay[{extra}]'")


def _headers(text: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in text.split(",") if "=" in part)
    return {k.strip(): v.strip() for k, v in pairs}
