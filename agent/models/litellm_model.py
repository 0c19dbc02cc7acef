"""LiteLLMModel: any provider litellm supports, through one `litellm.completion` call site.

litellm is imported lazily (it takes seconds and reads its price map at import); our own retry loop is the
only one, and provider errors are translated here, at the boundary, by the table below.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from branchwise.agent.config.schema import LLMSettings
from branchwise.agent.errors import ContextTooLong, ModelConfigError, ModelError, ModelUnavailable
from branchwise.agent.models import textformat
from branchwise.agent.models.base import Message, Reply
from branchwise.agent.record.events import ToolCallRecord, Usage

MAX_BACKOFF_S = 60.0


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


def import_litellm() -> Any:
    """Import litellm quietly, offline, and without it loading a .env file into our environment."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_MODE", "PRODUCTION")  # otherwise `import litellm` runs load_dotenv()
    # litellm's own types trip a pydantic warning on the first completion; it is not ours to show.
    warnings.filterwarnings("ignore", message=r"Items? .* on TypedDict class .* ReadOnly", category=UserWarning)
    import litellm

    litellm.suppress_debug_info = True  # no banners on stdout
    litellm.disable_hf_tokenizer_download = True  # llama names would try huggingface.co for a tokenizer
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return litellm


class LiteLLMModel:
    """A real model behind litellm: native tool calling, or the text format when the model lacks it."""

    kind = "litellm"

    def __init__(self, name: str, settings: LLMSettings, *, notify: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.settings = settings
        self.notify = notify
        self.native_tools = settings.tool_calling != "text"
        self.supports_n = True
        self._api_key: str | None = None
        self._litellm: Any = None

    def preflight(self) -> None:
        """Check the model name and the API key before any step runs, so mistakes fail in a second."""
        litellm = self._lib()
        try:
            _, provider, _, _ = litellm.get_llm_provider(self.name, api_base=self.settings.api_base)
        except litellm.exceptions.BadRequestError as exc:
            raise ModelConfigError(
                f"unknown model {self.name!r}: litellm cannot tell its provider; write provider/model, "
                "e.g. openai/gpt-4o-mini, anthropic/claude-sonnet-4-5 or ollama/qwen2.5-coder"
            ) from exc
        self._api_key = self._find_key(litellm, provider)
        if self.settings.tool_calling == "auto":
            self.native_tools = self._supports_tools(litellm)
        params = litellm.get_supported_openai_params(model=self.name, custom_llm_provider=provider) or []
        self.supports_n = "n" in params

    def _find_key(self, litellm: Any, provider: str) -> str | None:
        env_name = self.settings.api_key_env
        if env_name:
            key = os.environ.get(env_name)
            if not key:
                raise ModelConfigError(f"missing API key: the environment variable {env_name} is not set")
            return key
        check = litellm.validate_environment(model=self.name, api_base=self.settings.api_base)
        if check.get("keys_in_environment") or not check.get("missing_keys"):
            return None
        if self.settings.api_base:
            return "not-needed"  # local OpenAI-compatible servers usually take any key
        missing = ", ".join(check["missing_keys"])
        raise ModelConfigError(f"missing API key for {self.name} ({provider}): set {missing}")

    def _supports_tools(self, litellm: Any) -> bool:
        """Native tool calling unless litellm knows this model lacks it."""
        try:
            known = self.name in litellm.model_cost or self.name.split("/", 1)[-1] in litellm.model_cost
            return bool(litellm.supports_function_calling(model=self.name)) if known else True
        except Exception:  # unknown models: assume the common case, native tools
            return True

    def _lib(self) -> Any:
        if self._litellm is None:
            self._litellm = import_litellm()
        return self._litellm

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "name": self.name,
            "kind": self.kind,
            "api_base": s.api_base,
            "native_tools": self.native_tools,
        }

    def query(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        n: int = 1,
        temperature: float | None = None,
    ) -> list[Reply]:
        kwargs = self._request(messages, tools, n=n, temperature=temperature)
        response = self._call(kwargs)
        return self._replies(response, n)

    def _request(
        self, messages: list[Message], tools: list[dict[str, Any]], *, n: int, temperature: float | None
    ) -> dict[str, Any]:
        s = self.settings
        kwargs: dict[str, Any] = {
            "model": self.name,
            "messages": messages if self.native_tools else textformat.to_text_messages(messages, tools),
            "temperature": s.temperature if temperature is None else temperature,
            "timeout": s.timeout_s,
            "num_retries": 0,  # our loop in _call is the only retry loop (this also stops the SDK's)
            **s.extra,
        }
        if self.native_tools and tools:
            kwargs["tools"] = tools
        if n > 1:
            kwargs["n"] = n
        if s.api_base:
            kwargs["api_base"] = s.api_base
        if self._api_key:
            kwargs["api_key"] = self._api_key
        if s.max_output_tokens:
            kwargs["max_tokens"] = s.max_output_tokens
        return kwargs

    def _call(self, kwargs: dict[str, Any]) -> Any:
        """The one litellm call site; retryable errors back off, the rest are translated at once."""
        import tenacity

        litellm = self._lib()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: (info := _lookup(exc)) is not None and info.retry),
            stop=tenacity.stop_after_attempt(self.settings.max_retries + 1),
            wait=self._wait,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            return retrying(litellm.completion, **kwargs)
        except Exception as exc:
            info = _lookup(exc)
            if info is None:
                raise
            raise self._translate(exc, info, retrying.statistics.get("attempt_number", 1)) from None

    def _wait(self, state: Any) -> float:
        """Exponential backoff, or longer when the provider's Retry-After asks for it."""
        delay = self.settings.retry_backoff_s * (2 ** (state.attempt_number - 1))
        headers = getattr(state.outcome.exception(), "litellm_response_headers", None)
        if headers is not None:
            try:
                delay = max(delay, float(headers.get("retry-after") or 0))
            except (TypeError, ValueError):
                pass
        return min(delay, MAX_BACKOFF_S)

    def _before_sleep(self, state: Any) -> None:
        if self.notify:
            exc = state.outcome.exception()
            self.notify(
                f"model call failed ({type(exc).__name__}); retry {state.attempt_number}/{self.settings.max_retries} "
                f"in {state.next_action.sleep:.1f} s"
            )

    def _translate(self, exc: Exception, info: ErrorInfo, attempts: int) -> ModelError:
        s = self.settings
        hint = info.hint.format(
            model=self.name,
            timeout=s.timeout_s,
            base=f" at {s.api_base}" if s.api_base else "",
            key=f" ({s.api_key_env})" if s.api_key_env else "",
        )
        detail = _first_line(getattr(exc, "message", None) or str(exc))
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return info.error(f"{hint}{tries}: {detail}" if detail else f"{hint}{tries}")

    def _replies(self, response: Any, n: int) -> list[Reply]:
        usage = getattr(response, "usage", None)
        total = Usage(
            prompt=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion=int(getattr(usage, "completion_tokens", 0) or 0),
        )
        cost = self._cost(response)
        replies = []
        for index, choice in enumerate(response.choices[:n]):
            message = choice.message
            if self.native_tools:
                content, calls = message.content, _native_calls(message, index)
            else:
                content, calls = textformat.parse(message.content or "", id_prefix=f"call_{index}")
            # The response's usage and cost cover all choices; book them on the first.
            replies.append(
                Reply(
                    content=content,
                    tool_calls=calls,
                    usage=total if index == 0 else Usage(),
                    cost_usd=cost if index == 0 else 0.0,
                )
            )
        if not replies:
            raise ModelError(f"{self.name} returned no choices")
        return replies

    @staticmethod
    def _cost(response: Any) -> float:
        """litellm's price for the call; None for models it has no price for (local servers): 0."""
        hidden = getattr(response, "_hidden_params", None) or {}
        return float(hidden.get("response_cost") or 0.0)


def _native_calls(message: Any, choice: int) -> list[ToolCallRecord]:
    calls = []
    for j, call in enumerate(getattr(message, "tool_calls", None) or []):
        raw = call.function.arguments or "{}"
        try:
            parsed = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            parsed = None
        calls.append(
            ToolCallRecord(
                id=call.id or f"call_{choice}_{j}",
                name=call.function.name or "?",
                arguments=parsed if isinstance(parsed, dict) else None,
                raw_arguments=None if isinstance(parsed, dict) else str(raw),
            )
        )
    return calls


def _lookup(exc: BaseException) -> ErrorInfo | None:
    """How to handle a provider error: by its class, unless its HTTP status says it cannot get better."""
    for cls in type(exc).__mro__:
        info = ERRORS.get(cls.__name__)
        if info is not None and cls.__module__.startswith(("litellm", "openai", "httpx")):
            status = getattr(exc, "status_code", None)
            return STATUS_ERRORS.get(status, info) if info.retry else info
    return None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]
