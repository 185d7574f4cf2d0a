"""How the router judges a failed upstream call, in LiteLLM's error classes.

The class decides everything that follows: how often to retry (`num_retries`, or
`retry_policy["<Class>Retries"]`), whether the failure counts towards the deployment's
cooldown (`allowed_fails`, or `allowed_fails_policy["<Class>AllowedFails"]`), and which
fallback list applies (context window and content policy errors have their own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import openai

from ..transport import backoff, retry_after

ErrorClass = Literal[
    "BadRequestError",
    "AuthenticationError",
    "TimeoutError",
    "RateLimitError",
    "ContentPolicyViolationError",
    "InternalServerError",
    "ContextWindowExceededError",
]
RETRY_KEYS = frozenset(f"{c}Retries" for c in ErrorClass.__args__)  # type: ignore[attr-defined]
ALLOWED_FAILS_KEYS = frozenset(f"{c}AllowedFails" for c in ErrorClass.__args__)  # type: ignore[attr-defined]

# Failures of the deployment rather than of the request: another try (there or elsewhere) may
# succeed, and enough of them in a minute cool the deployment down.
TRANSIENT: frozenset[ErrorClass] = frozenset({"TimeoutError", "RateLimitError", "InternalServerError"})
COUNTED: frozenset[ErrorClass] = TRANSIENT | {"AuthenticationError"}
_CONTEXT_CODES = frozenset({"context_length_exceeded", "context_window_exceeded", "string_above_max_length"})
_POLICY_CODES = frozenset({"content_policy_violation", "content_filter", "content_filtered", "safety"})


def classify(err: BaseException) -> ErrorClass:
    """The LiteLLM class of an error `Relay` raised for an upstream call."""
    if isinstance(err, openai.APITimeoutError):
        return "TimeoutError"
    if isinstance(err, openai.APIConnectionError):
        return "InternalServerError"  # refused, reset or cut short: the upstream's side
    status = getattr(err, "status_code", 500)
    code = str(getattr(err, "code", None) or "")
    if status == 429:
        return "RateLimitError"
    if status == 408:
        return "TimeoutError"
    if status in (401, 403):
        return "AuthenticationError"
    if code in _CONTEXT_CODES:
        return "ContextWindowExceededError"
    if code in _POLICY_CODES:
        return "ContentPolicyViolationError"
    if status >= 500 or status == 409:
        return "InternalServerError"
    return "BadRequestError"


def wait_hint(err: BaseException) -> float | None:
    """Seconds the upstream asked for (Retry-After) on an error status, if any."""
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    return retry_after(headers) if headers is not None else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    num_retries: int = 0
    per_class: Mapping[str, int] = field(default_factory=dict)  # "RateLimitErrorRetries": 3
    retry_after: float = 0.0  # the least wait before trying the same deployment again

    def retries(self, kind: ErrorClass, default: int) -> int:
        """Retries for this class: the policy's, else `default` for transient errors, else none."""
        explicit = self.per_class.get(f"{kind}Retries")
        if explicit is not None:
            return explicit
        return default if kind in TRANSIENT else 0

    def wait(self, attempt: int, err: BaseException) -> float:
        """Backoff before trying the same deployment again, honouring Retry-After."""
        return max(self.retry_after, backoff(attempt, wait_hint(err)))


def fail_threshold(kind: ErrorClass, allowed_fails: int, policy: Mapping[str, int]) -> int | None:
    """Failures of this class a deployment may have in a minute before it cools down; None:
    this class never cools a deployment down (the request was at fault, not the upstream)."""
    explicit = policy.get(f"{kind}AllowedFails")
    if explicit is not None:
        return explicit
    return allowed_fails if kind in COUNTED else None
