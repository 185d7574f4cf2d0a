"""Slow, oversized and vanishing clients against the real proxy, over raw sockets."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.proxy_process import ProxyProcess, start_proxy

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
HEAD = b"POST /v1/responses HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyProcess]:
    timeouts = ("--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT))
    with start_proxy("demo", *timeouts) as p:
        yield p


def connect(proxy: ProxyProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=10)


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def healthy(proxy: ProxyProcess) -> bool:
    with urllib.request.urlopen(proxy.root + "/health/liveliness", timeout=5) as r:
        return r.status == 200


def test_headers_sent_one_byte_at_a_time_are_cut_off(proxy: ProxyProcess) -> None:
    start = time.monotonic()
    with connect(proxy) as sock:
        answer = b""
        for byte in HEAD * 10:  # far more bytes than the bound allows at this pace
            if time.monotonic() - start > HEADER_TIMEOUT + 3:
                break  # still connected long after the bound
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            # the client's own pace: one byte every 0.5 s unless the server answers first
            if select.select([sock], [], [], 0.5)[0]:
                answer = read_until_closed(sock)
                break
        elapsed = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert HEADER_TIMEOUT - 0.1 <= elapsed < HEADER_TIMEOUT + 3
    assert healthy(proxy) and "Traceback" not in proxy.output()


def test_a_connection_that_sends_nothing_is_closed(proxy: ProxyProcess) -> None:
    start = time.monotonic()
    with connect(proxy) as sock:
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - start < HEADER_TIMEOUT + 3


def test_oversized_headers_get_431_and_a_closed_connection(proxy: ProxyProcess) -> None:
    with connect(proxy) as sock:
        # the head never ends; a close while we are still sending is a refusal too
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(HEAD + b"X-Big: " + b"a" * 1_000_000)
        answer = read_until_closed(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 ")
    assert healthy(proxy) and "Traceback" not in proxy.output()


def test_large_headers_within_the_bound_still_work(proxy: ProxyProcess) -> None:
    body = json.dumps({"model": "demo", "input": "hi"}).encode()
    req = urllib.request.Request(proxy.url + "/responses", data=body, headers={"X-Big": "a" * 30_000})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def test_a_body_that_does_not_arrive_in_time_is_a_408(proxy: ProxyProcess) -> None:
    start = time.monotonic()
    with connect(proxy) as sock:
        sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n" + b'{"model": ')
        answer = read_until_closed(sock)
    elapsed = time.monotonic() - start
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "request_timeout" and "2 seconds" in error["message"]
    assert BODY_TIMEOUT - 0.1 <= elapsed < BODY_TIMEOUT + 3


def test_a_client_gone_mid_body_leaves_one_log_line(proxy: ProxyProcess) -> None:
    with connect(proxy) as sock:
        sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n{")
    deadline = time.monotonic() + 10
    while "went away" not in proxy.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [line for line in proxy.output().splitlines() if "went away" in line]
    assert lines == ["WARNING llmrelay.proxy: client went away before sending the whole body of POST /v1/responses"]
    assert healthy(proxy) and "Traceback" not in proxy.output()
