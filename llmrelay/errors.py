"""Errors raised by llmrelay.

Every class subclasses the `openai` package's own exception, so `except openai.NotFoundError`
keeps working, and every status error carries OpenAI's error object in `.body`
(`{"message", "type", "param", "code"}`), which the proxy sends back as `{"error": body}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import openai
from openai import _exceptions

# openai 3.x builds its errors on httpx2, older releases on httpx: use whichever it uses.
httpx: Any = getattr(_exceptions, "httpx2", None) or _exceptions.httpx

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnprocessableEntityError",
    "error_body",
    "status_error",
]

# A placeholder request: openai's exceptions insist on one, and errors raised before any
# upstream call (validation, store lookups) have none of their own.
_LOCAL = httpx.Request("POST", "http://llmrelay.local/v1/responses")


class APIStatusError(openai.APIStatusError):
    pass


class BadRequestError(openai.BadRequestError, APIStatusError):
    pass


class AuthenticationError(openai.AuthenticationError, APIStatusError):
    pass


class PermissionDeniedError(openai.PermissionDeniedError, APIStatusError):
    pass


class NotFoundError(openai.NotFoundError, APIStatusError):
    pass


class ConflictError(openai.ConflictError, APIStatusError):
    pass


class UnprocessableEntityError(openai.UnprocessableEntityError, APIStatusError):
    pass


class RateLimitError(openai.RateLimitError, APIStatusError):
    pass


class InternalServerError(openai.InternalServerError, APIStatusError):
    pass


class APIConnectionError(openai.APIConnectionError):
    pass


class APITimeoutError(openai.APITimeoutError):
    def __init__(self, request: Any, message: str = "Request timed out.") -> None:
        openai.APIConnectionError.__init__(self, message=message, request=request)


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

_DEFAULT_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def status_error(
    status: int,
    message: str,
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    request: Any = None,
) -> APIStatusError:
    """Build the exception class that matches `status`, carrying OpenAI's error object."""
    body = {
        "message": message,
        "type": type or _DEFAULT_TYPE.get(status, "api_error" if status >= 500 else "invalid_request_error"),
        "param": param,
        "code": code,
    }
    return from_body(status, body, headers=headers, request=request)


def from_body(
    status: int,
    body: dict[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    request: Any = None,
) -> APIStatusError:
    """Wrap an OpenAI-shaped error object (the value under "error") in the right exception."""
    cls = _BY_STATUS.get(status) or (InternalServerError if status >= 500 else APIStatusError)
    response = httpx.Response(status, headers=dict(headers or {}), request=request or _LOCAL)
    return cls(str(body.get("message") or f"HTTP {status}"), response=response, body=body)


def local_response(status: int, headers: Mapping[str, str] | None = None) -> Any:
    """The response an error raised by llmrelay itself (not relayed from an upstream) carries."""
    return httpx.Response(status, headers=dict(headers or {}), request=_LOCAL)


_PASSTHROUGH = ("retry-after", "retry-after-ms", "x-request-id", "request-id")


def passthrough_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The upstream headers a client should see again: Retry-After and the request id."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in _PASSTHROUGH}


def error_body(err: openai.APIStatusError) -> dict[str, Any]:
    """OpenAI's wire shape for an error: `{"error": {"message", "type", "param", "code"}}`."""
    body = err.body if isinstance(err.body, dict) else {}
    return {
        "error": {
            "message": body.get("message") or err.message,
            "type": body.get("type") or _DEFAULT_TYPE.get(err.status_code, "api_error"),
            "param": body.get("param"),
            "code": body.get("code"),
        }
    }


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIStatusError:
    return status_error(400, message, param=param, code=code)


def not_found(message: str, *, param: str | None = None, code: str | None = None) -> APIStatusError:
    return status_error(404, message, param=param, code=code)


def connection_error(message: str, request: Any = None) -> APIConnectionError:
    return APIConnectionError(message=message, request=request or _LOCAL)


def upstream_failure_status(exc: openai.APIError) -> APIStatusError:
    """A failed upstream call as the status a server answers: 504 for a timeout, else 502."""
    if isinstance(exc, openai.APITimeoutError):
        return status_error(504, exc.message, type="timeout_error", code="upstream_timeout")
    return status_error(502, exc.message, type="api_connection_error")


def timeout_error(message: str = "Request timed out.", request: Any = None) -> APITimeoutError:
    return APITimeoutError(request=request or _LOCAL, message=message)
