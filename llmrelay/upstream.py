"""What an upstream's reply means to a client: which deployment it came from, and replies or
stream frames that are not valid (a 502 or a failed stream naming the deployment, the bytes
in the log only), or an upstream refusing the deployment's own key."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import openai

from . import errors
from .http_client import Response
from .providers.base import StreamTranslator
from .providers.registry import Deployment
from .streaming.events import StreamEvent
from .streaming.sse import Frame
from .transport import upstream_failure

log = logging.getLogger("llmrelay")


def describe(dep: Deployment) -> str:
    """A deployment as errors name it to clients: its public name and upstream model."""
    return f"deployment '{dep.model_name}' ({dep.provider.name}/{dep.model})"


class Garbled(Exception):
    """The upstream sent a stream frame its protocol cannot have."""


def _garbled(dep: Deployment) -> Garbled:
    return Garbled(f"The upstream of {describe(dep)} sent a stream event that is not valid.")


def translate(translator: StreamTranslator, frame: Frame, dep: Deployment) -> list[StreamEvent]:
    if frame.data == b"[DONE]":  # the end marker vLLM and gateways send, on any protocol
        return translator.finish()
    try:
        return translator.feed(frame)
    except Exception as exc:
        log.warning("%s sent an unreadable stream frame %r: %s", describe(dep), frame.data[:200], exc)
        raise _garbled(dep) from exc


def translate_wire(translator: Any, chunk: bytes | None, dep: Deployment) -> Iterator[StreamEvent]:
    """`translate` for a translator's wire path (`Call.sse_runs`): a chunk's events, or with
    None what it still holds at the end of the stream."""
    try:
        yield from (translator.feed_wire(chunk) if chunk is not None else translator.finish_wire())
    except Exception as exc:
        log.warning("%s sent unreadable stream bytes %r: %s", describe(dep), (chunk or b"")[:200], exc)
        raise _garbled(dep) from exc


def translate_frames(translator: Any, batch: list[Frame], dep: Deployment) -> Iterator[StreamEvent]:
    """`translate` over a chunk's frames at once, for a translator that handles them so
    (`feed_frames`, when the consumer writes SSE itself)."""
    try:
        yield from translator.feed_frames(batch)
    except Exception as exc:
        log.warning("%s sent an unreadable stream frame among %d: %s", describe(dep), len(batch), exc)
        raise _garbled(dep) from exc


def frames(dep: Deployment, decode: Callable[..., list[Frame]], *args: Any) -> list[Frame]:
    """A stream decoder's frames; bytes that break the protocol's framing (an event-stream CRC
    mismatch, a message cut short) fail the stream naming the deployment, the detail in the log."""
    try:
        return decode(*args)
    except ValueError as exc:
        log.warning("%s sent bytes that are not valid stream framing: %s", describe(dep), exc)
        raise _garbled(dep) from exc


def parsed(dep: Deployment, parse: Callable[..., Any], *args: Any) -> Any:
    """An upstream reply read by `parse`; one it cannot read is a 502 naming the deployment."""
    try:
        return parse(*args)
    except openai.APIError:
        raise
    except Exception as exc:
        body = args[0] if args and isinstance(args[0], bytes) else b""
        log.warning("%s sent an unreadable reply %r: %s", describe(dep), body[:200], exc)
        raise errors.status_error(
            502, f"The upstream of {describe(dep)} sent a reply that is not valid.", code="bad_upstream_reply"
        ) from exc


def upstream_error(err: errors.APIStatusError, dep: Deployment) -> errors.APIStatusError:
    """An upstream's own 401 means the deployment's key was refused, not the client's: say so."""
    if err.status_code != 401:
        return err
    body = err.body if isinstance(err.body, dict) else {}
    what = "API key" if dep.credentials is None else "credentials"
    message = f"The upstream of {describe(dep)} refused the deployment's {what}: {body.get('message') or err.message}"
    return errors.status_error(401, message, type="upstream_authentication_error", code=body.get("code"),
                               headers=err.response.headers)  # fmt: skip


async def read_body(resp: Response, dep: Deployment) -> bytes:
    """A whole upstream body; the connection goes back to the pool either way."""
    try:
        return await resp.read()
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise upstream_failure(exc, describe(dep)) from exc
    finally:
        resp.release()
