"""Provider errors, translated at the boundary: which litellm exceptions are retried, and what the user is told.

Looked up along the exception's class hierarchy, most specific class first; an HTTP status that can never get
better by retrying (a 403 filed by litellm under a generic class) overrides a retryable class.
"""

from __future__ import annotations

from dataclasses import dataclass

from branchwise.agent.errors import ContextTooLong, ModelConfigError, ModelError, ModelUnavailable


@dataclass(frozen=True)
class ErrorInfo:
    """How one litellm exception class is handled: retried or not, and what the user is told."""

    retry: bool
    error: type[ModelError]
    hint: str


# Looked up along the exception's class hierarchy, most specific class first.
ERRORS: dict[str, ErrorInfo] = {
    "AuthenticationError": ErrorInfo(False, ModelConfigError, "the provider rejected the API key{key}"),
    "PermissionDeniedError": ErrorInfo(False, ModelConfigError, "the provider denied access to {model}"),
    "NotFoundError": ErrorInfo(False, ModelConfigError, "the provider does not know model {model}"),
    "ContextWindowExceededError": ErrorInfo(False, ContextTooLong, "the conversation no longer fits {model}"),
    "ContentPolicyViolationError": ErrorInfo(False, ModelError, "the provider refused the request (content policy)"),
    "UnsupportedParamsError": ErrorInfo(False, ModelConfigError, "{model} does not accept a parameter we sent"),
    "BadRequestError": ErrorInfo(False, ModelError, "the provider rejected the request"),
    "UnprocessableEntityError": ErrorInfo(False, ModelError, "the provider could not process the request"),
    "RateLimitError": ErrorInfo(True, ModelUnavailable, "rate limited by the provider"),
    "Timeout": ErrorInfo(True, ModelUnavailable, "no answer from {model} within {timeout:g} s"),
    "APIConnectionError": ErrorInfo(True, ModelUnavailable, "cannot reach the model server{base}"),
    "InternalServerError": ErrorInfo(True, ModelUnavailable, "the model server{base} failed or cannot be reached"),
    "ServiceUnavailableError": ErrorInfo(True, ModelUnavailable, "the model service is unavailable"),
    "BadGatewayError": ErrorInfo(True, ModelUnavailable, "the model server failed (bad gateway)"),
    "APIError": ErrorInfo(True, ModelUnavailable, "the model server failed"),
}
# litellm files some statuses under generic classes (a 403 is an APIError); these never get better by retrying.
STATUS_ERRORS: dict[int | None, ErrorInfo] = {
    400: ERRORS["BadRequestError"],
    401: ERRORS["AuthenticationError"],
    403: ERRORS["PermissionDeniedError"],
    404: ERRORS["NotFoundError"],
    413: ErrorInfo(False, ModelError, "the request is too large for {model}"),
    422: ERRORS["UnprocessableEntityError"],
}


class TransientFault(Exception):
    """An answer that may be better next time though no HTTP error said so: nothing within the timeout, or a
    200 with no choices. Retried like a 5xx; after the last retry the user sees `hint`."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.info = ErrorInfo(True, ModelUnavailable, hint)


def lookup(exc: BaseException) -> ErrorInfo | None:
    """How to handle a provider error: by its class, unless its HTTP status says it cannot get better."""
    if isinstance(exc, TransientFault):
        return exc.info
    for cls in type(exc).__mro__:
        info = ERRORS.get(cls.__name__)
        if info is not None and cls.__module__.startswith(("litellm", "openai", "httpx")):
            status = getattr(exc, "status_code", None)
            return STATUS_ERRORS.get(status, info) if info.retry else info
    return None


def first_line(text: str) -> str:
    """The first line of an error message, capped (provider errors can be whole HTML pages)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]
