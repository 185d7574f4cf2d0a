"""Upstream HTTP: pooled keep-alive connections (http_client.py, one pool per event loop),
timeouts, and retries with exponential backoff that honours Retry-After.

Timeouts bound connecting (CONNECT_TIMEOUT) and every wait for the upstream's next bytes: the
headers, then each read of the body. A non-streamed reply waits up to `timeout` (600 s, as
the openai SDK does); a stream waits up to `stream_timeout` for its first byte and for every
gap between chunks, never for the stream as a whole. Nothing waits forever by default.

The requests of providers go through http_client's lean client, a fraction of aiohttp's CPU
per request (bench/http_client.py measures it against aiohttp's and httpx's). Fetching media
from arbitrary URLs (redirects, pinned addresses) keeps an aiohttp session (`session()`).
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
from .http_client import Pool, Response

log = logging.getLogger("llmrelay")
RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
CONNECT_TIMEOUT = 10.0
DEFAULT_TIMEOUT = 600.0  # seconds a non-streamed reply may take to arrive
DEFAULT_STREAM_TIMEOUT = 600.0  # seconds a stream may stay silent (reasoning can be quiet for minutes)
MAX_BACKOFF = 30.0


class RequestAuth(Protocol):
    """Credentials applied to each attempt as it is sent: short-lived tokens (Vertex AI, Entra
    ID) or a signature over the request (AWS SigV4); told when the upstream refused them, so
    the next attempt carries fresh ones."""

    async def headers(self, req: HttpRequest) -> dict[str, str]: ...

    def refused(self, headers: dict[str, str]) -> None: ...


@dataclass(slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    auth: RequestAuth | None = None


class Http:
    """One connection pool per event loop for providers, and an aiohttp session for media.
    Those of loops that are gone are closed the next time one is made, and all at exit, so no
    loop leaves a warning."""

    def __init__(self) -> None:
        self._sessions: list[tuple[weakref.ref[asyncio.AbstractEventLoop], aiohttp.ClientSession]] = []
        self._pools: list[tuple[weakref.ref[asyncio.AbstractEventLoop], Pool]] = []
        self._last: Pool | None = None  # the pool asked for last (its loop's, mostly the only one)
        atexit.register(self._abandon, lambda _: True)

    def pool(self) -> Pool:
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last.loop is loop:
            return last
        for ref, pool in self._pools:
            if ref() is loop:
                self._last = pool
                return pool
        self._abandon(lambda lp: lp is None or lp.is_closed())
        pool = self._last = Pool(loop)
        self._pools.append((weakref.ref(loop), pool))
        return pool

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
        pools = []
        for ref, pool in self._pools:
            if gone(ref()):
                pool.close()
            else:
                pools.append((ref, pool))
        self._pools = pools
        if self._last is not None and all(pool is not self._last for _, pool in pools):
            self._last = None
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

    @staticmethod
    def _timeout(seconds: float | None, stream: bool) -> tuple[float, float]:
        """(each silence, connecting): like the openai SDK, the timeout bounds connecting and
        each wait for the upstream's bytes, not a whole stream."""
        if seconds is None:
            seconds = DEFAULT_STREAM_TIMEOUT if stream else DEFAULT_TIMEOUT
        return seconds, min(CONNECT_TIMEOUT, seconds)

    async def send(
        self,
        req: HttpRequest,
        *,
        timeout: float | None,
        retries: int = 0,
        stream: bool = False,
        upstream: str = "the upstream",
    ) -> Response:
        """Send with retries on 408/409/429/5xx and connection errors. The caller reads and
        releases the returned response (also when its status is an error). `timeout` None
        takes the default for a stream or a whole reply; `upstream` names it in errors."""
        pool = self.pool()
        silence, connect = self._timeout(timeout, stream)
        attempt = 0
        reauthorised = False
        while True:
            wait: float | None = None
            headers = req.headers if req.auth is None else {**req.headers, **await req.auth.headers(req)}
            try:
                resp = await pool.request(req.method, req.url, headers, req.body, silence, connect)
            except (TimeoutError, aiohttp.ClientError) as exc:
                if attempt >= retries:
                    raise upstream_failure(exc, upstream) from exc
            else:
                if resp.status == 401 and req.auth is not None and not reauthorised:
                    # Credentials refused before their time (revoked, rotated, skewed): one more try, fresh.
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
        for ref, pool in self._pools:
            if ref() is loop:
                pool.close()
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
