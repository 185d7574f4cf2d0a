"""Helpers for the gateway's e2e tests: the management API over plain HTTP."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from tests.e2e.proxy_process import ProxyProcess

MASTER = "sk-master-key"
PG_URL = os.environ.get("LLMRELAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def call(proxy: ProxyProcess, path: str, body: Any = None, *, auth: str = MASTER) -> tuple[int, Any, dict[str, str]]:
    """(status, JSON body, headers) of a management call: POST with a body, GET without."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"authorization": f"Bearer {auth}", "content-type": "application/json"}
    method = "GET" if body is None else "POST"
    req = urllib.request.Request(proxy.root + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def ok(proxy: ProxyProcess, path: str, body: Any = None, *, auth: str = MASTER) -> Any:
    status, data, _ = call(proxy, path, body, auth=auth)
    assert status == 200, (path, status, data)
    return data


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `check` until it holds (a state another process reaches by itself)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)
