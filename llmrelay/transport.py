"""Upstream HTTP: pooled keep-alive connections (one aiohttp session per event loop),
timeouts, and retries with exponential backoff that honours Retry-After.

Timeouts bound connecting (CONNECT_TIMEOUT) and every wait for the upstream's next bytes: the
headers, then each read of the body. A non-streamed reply waits up to `timeout` (600 s, as
the openai SDK does); a stream waits up to `stream_timeout` for its first byte and for every
gap between chunks, never for the stream as a whole. Nothing waits forever by default.

aiohttp rather than httpx: its client costs a fraction of httpx's CPU per request
(bench/http_client.py measures both), and the hot path is mostly this.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import email.utils
import logging
import random
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import orjson

from . import errors

log = logging.getLogger("llmrelay")
RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
CONNECT_TIMEOUT = 10.0
DEFAULT_TIMEOUT = 600.0  # seconds a non-streamed reply may take to arrive
DEFAULT_STREAM_TIMEOUT = 600.0  # seconds a stream may stay silent (reasoning can be quiet for minutes)
MAX_BACKOFF = 30.0


class TokenAuth(Protocol):
    """Credentials that mint short-lived tokens (Vertex AI, Entra ID): asked for headers before
    every attempt, and told when the upstream refused a token so the next one is fresh."""

    async def headers(self) -> dict[str, str]: ...

    def refused(self, headers: dict[str, str]) -> None: ...


@dataclass(slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    auth: TokenAuth | None = None


class Http:
    """One pooled aiohttp session per event loop. Sessions of loops that are gone are closed
    the next time a session is made, and all of them at exit, so no loop leaves a warning."""

    def __init__(self) -> None:
        self._sessions: list[tuple[weakref.ref[asyncio.AbstractEventLoop], aiohttp.ClientSession]] = []
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}
        atexit.register(self._abandon, lambda _: True)

    async def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        for ref, session in self._sessions:
            if ref() is loop and not session.closed:
                return session
        self._abandon(lambda lp: lp is None or lp.is_closed())
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
        session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        self._sessions.append((weakref.ref(loop), session))
        # asyncio.run() finalises live async generators before closing its loop: this one
        # closes the session properly then.
        closer = _close_on_loop_shutdown(session)
        await closer.asend(None)
        session._llmrelay_closer = closer  # type: ignore[attr-defined]  # keep it alive with the session
        return session

    def _abandon(self, gone: Callable[[asyncio.AbstractEventLoop | None], bool]) -> None:
        """Drop the sessions whose loop is `gone`, closing their sockets without that loop."""
        keep = []
        for ref, session in self._sessions:
            if gone(ref()):
                connector = session.connector
                if connector is not None and not connector.closed:
                    with contextlib.suppress(Exception):
                        connector._close()  # sync close: the owning loop cannot run it any more
            else:
                keep.append((ref, session))
        self._sessions = keep

    def _timeout(self, seconds: float | None, stream: bool) -> aiohttp.ClientTimeout:
        if seconds is None:
            seconds = DEFAULT_STREAM_TIMEOUT if stream else DEFAULT_TIMEOUT
        t = self._timeouts.get(seconds)
        if t is None:
            # Like the openai SDK: the timeout bounds connecting and each read, not a whole stream.
            t = aiohttp.ClientTimeout(total=None, sock_connect=min(CONNECT_TIMEOUT, seconds), sock_read=seconds)
            self._timeouts[seconds] = t
        return t

    async def send(
        self,
        req: HttpRequest,
        *,
        timeout: float | None,
        retries: int = 0,
        stream: bool = False,
        upstream: str = "the upstream",
    ) -> aiohttp.ClientResponse:
        """Send with retries on 408/409/429/5xx and connection errors. The caller reads and
        releases the returned response (also when its status is an error). `timeout` None
        takes the default for a stream or a whole reply; `upstream` names it in errors."""
        session = await self.session()
        attempt = 0
        reauthorised = False
        while True:
            wait: float | None = None
            headers = req.headers if req.auth is None else {**req.headers, **await req.auth.headers()}
            try:
                resp = await session.request(
                    req.method, req.url, data=req.body, headers=headers, timeout=self._timeout(timeout, stream)
                )
            except (TimeoutError, aiohttp.ClientError) as exc:
                if attempt >= retries:
                    raise upstream_failure(exc, upstream) from exc
            else:
                if resp.status == 401 and req.auth is not None and not reauthorised:
                    # A token refused before its time (revoked, clock skew): one more try with a new one.
                    req.auth.refused(headers)
                    reauthorised = True
                    resp.release()
                    continue
                if resp.status not in RETRYABLE or attempt >= retries:
                    return resp
                wait = retry_after(resp.headers)
                resp.release()
            await asyncio.sleep(backoff(attempt, wait))
            attempt += 1

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for ref, session in self._sessions:
            if ref() is loop and not session.closed:
                await session.close()
        self._abandon(lambda lp: lp is loop)


async def _close_on_loop_shutdown(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    try:
        yield
    finally:
        if not session.closed:
            await session.close()


def upstream_failure(exc: BaseException, upstream: str = "the upstream") -> Exception:
    """A transport exception as the openai-style error a caller expects. The client learns
    which upstream failed and how; the transport's own words (hosts, ports) go to the log."""
    log.warning("%s: %s: %s", upstream, type(exc).__name__, exc)
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return errors.timeout_error(f"The upstream of {upstream} did not answer in time.")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return errors.connection_error(f"The upstream of {upstream} broke off its reply.")
    return errors.connection_error(f"Could not reach the upstream of {upstream}.")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the upstream asked us to wait: `retry-after-ms`, `retry-after` (seconds or an HTTP date)."""
    if ms := headers.get("retry-after-ms"):
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def backoff(attempt: int, retry_after: float | None = None) -> float:
    if retry_after is not None and 0 <= retry_after <= 60:
        return retry_after
    return min(MAX_BACKOFF, 0.5 * 2**attempt) * (0.75 + random.random() / 2)


def openai_error(status: int, body: bytes, headers: Mapping[str, str]) -> errors.APIStatusError:
    """Map an OpenAI-shaped error reply to the matching exception."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return errors.from_body(status, payload["error"], headers=_keep(headers))
    text = body.decode(errors="replace").strip()[:500] or f"Upstream returned HTTP {status}"
    return errors.status_error(status, text, headers=_keep(headers))


def _keep(headers: Mapping[str, str]) -> dict[str, str]:
    return errors.passthrough_headers(headers)
