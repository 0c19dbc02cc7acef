"""LiteLLMModel: any provider litellm supports, through one `litellm.completion` call site.

litellm is imported lazily (it takes seconds and reads its price map at import); our own retry loop is the
only one, and provider errors are translated at the boundary (provider_errors.py). Every call is bounded in
wall time: by `llm.timeout_s` for one reply (a server that trickles keep-alive bytes does not hold it open)
and by the run's deadline. What a server reports is not trusted blindly: usage figures are sanitised, tool
call ids made unique, a cut-off reply flagged, and tool calls written as text under `tool_calling = "auto"`
are still understood.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

from branchwise.agent import cancel
from branchwise.agent.config.schema import LLMSettings
from branchwise.agent.errors import BudgetExceeded, ModelConfigError, ModelError
from branchwise.agent.models import images, textformat
from branchwise.agent.models.base import DeltaSink, Message, ModelKind, Reply
from branchwise.agent.models.provider_errors import ErrorInfo, TransientFault, first_line, lookup
from branchwise.agent.models.tokens import count_estimated_first
from branchwise.agent.record.events import ModelDelta, ToolCallRecord, Usage

MAX_BACKOFF_S = 60.0
MAX_PLAUSIBLE_TOKENS = 50_000_000  # more than any context window: a figure above is a server bug
SETUP_ALLOWANCE_S = 20.0  # litellm's own set-up before a request (imports, the HTTP client), not the reply's time
_attempt = threading.local()  # the attempt running in this thread: its `sent` event


def _mark_sent() -> None:
    sent = getattr(_attempt, "sent", None)
    if sent is not None:
        sent.set()


def import_litellm() -> Any:
    """Import litellm quietly, offline, and without it loading a .env file into our environment."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_MODE", "PRODUCTION")  # otherwise `import litellm` runs load_dotenv()
    # litellm's own types trip pydantic warnings (TypedDict ReadOnly at import, serializer warnings on replies
    # that do not match its models); they are not ours to show.
    warnings.filterwarnings("ignore", message=r"Items? .* on TypedDict class .*ReadOnly", category=UserWarning)
    warnings.filterwarnings("ignore", message=r"(?s).*Pydantic serializer warnings", category=UserWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydantic\.main")
    import litellm

    litellm.suppress_debug_info = True  # no banners on stdout
    litellm.disable_hf_tokenizer_download = True  # llama names would try huggingface.co for a tokenizer
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not any(type(cb).__name__ == "_RequestSent" for cb in litellm.callbacks):
        from litellm.integrations.custom_logger import CustomLogger

        class _RequestSent(CustomLogger):
            """Marks when litellm sends the request: a reply's timeout counts from there."""

            def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
                _mark_sent()

        litellm.callbacks.append(_RequestSent())
    return litellm


class LiteLLMModel:
    """A real model behind litellm: native tool calling, or the text format when the model lacks it."""

    kind: ModelKind = "litellm"

    def __init__(self, name: str, settings: LLMSettings, *, notify: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.settings = settings
        self.notify = notify
        self.native_tools = settings.tool_calling != "text"
        self.supports_n = True
        self.supports_images = False
        self.keep_images = 1
        self._api_key: str | None = None
        self._litellm: Any = None
        self._warned: set[str] = set()
        self._count = count_estimated_first(self._precise_count)

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
        self.supports_images = self._supports_vision(litellm)

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

    def _supports_vision(self, litellm: Any) -> bool:
        """Whether litellm's model data says this model takes images (unknown models: no)."""
        try:
            return bool(litellm.supports_vision(model=self.name))
        except Exception:  # a model litellm has no data about
            return False

    def _lib(self) -> Any:
        if self._litellm is None:
            self._litellm = import_litellm()
        return self._litellm

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"name": self.name, "kind": self.kind, "api_base": s.api_base, "native_tools": self.native_tools}

    def count_tokens(self, messages: list[Message], tools: list[dict[str, Any]]) -> int:
        """The prompt's text (picture paths are a few tokens) plus the pictures that would be attached."""
        return images.count(self._count, messages, tools, self.keep_images if self._attaches() else 0)

    def _attaches(self) -> bool:
        return self.supports_images and self.native_tools and self.keep_images > 0

    def _precise_count(self, messages: list[Message], tools: list[dict[str, Any]]) -> int:
        litellm = self._lib()
        try:
            return int(litellm.token_counter(model=self.name, messages=messages, tools=tools or None))
        except Exception:  # a tokenizer litellm cannot load for this model: gpt-4o's stands in
            from branchwise.agent.models.tokens import tiktoken_count

            return tiktoken_count(messages, tools)

    def context_window(self) -> int | None:
        litellm = self._lib()
        try:
            window = litellm.get_model_info(self.name).get("max_input_tokens")
        except Exception:  # a local or new model litellm has no data about
            return None
        return int(window) if window else None

    def query(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        n: int = 1,
        temperature: float | None = None,
        deadline: float | None = None,
    ) -> list[Reply]:
        kwargs = self._request(messages, tools, n=n, temperature=temperature)
        response = self._call(kwargs, deadline)
        return self._replies(response, n, messages, tools)

    def query_stream(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        temperature: float | None = None,
        deadline: float | None = None,
        on_delta: DeltaSink | None = None,
    ) -> list[Reply]:
        """One reply, streamed (`stream=True`): each chunk's text and tool-call fragments go to `on_delta` as
        they arrive; the chunks are then assembled by litellm (tool calls by their index) into the reply
        `query` would have given."""
        kwargs = self._request(messages, tools, n=1, temperature=temperature)
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
        response = self._call(kwargs, deadline, on_delta)
        return self._replies(response, 1, messages, tools)

    def _request(
        self, messages: list[Message], tools: list[dict[str, Any]], *, n: int, temperature: float | None
    ) -> dict[str, Any]:
        s = self.settings
        # The text format has no place for a picture; a model that takes none gets the tool's text only.
        messages = images.with_images(messages, self.keep_images) if self._attaches() else images.strip(messages)
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

    def _call(self, kwargs: dict[str, Any], deadline: float | None, on_delta: DeltaSink | None = None) -> Any:
        """The one litellm call site; retryable errors back off, the rest are translated at once."""
        import tenacity

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: (info := lookup(exc)) is not None and info.retry),
            stop=tenacity.stop_after_attempt(self.settings.max_retries + 1),
            wait=lambda state: self._wait(state, deadline),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            return retrying(self._completion, kwargs, deadline, on_delta)
        except BudgetExceeded:
            raise
        except Exception as exc:
            info = lookup(exc)
            if info is None:
                raise
            raise self._translate(exc, info, retrying.statistics.get("attempt_number", 1)) from None

    def _completion(self, kwargs: dict[str, Any], deadline: float | None, on_delta: DeltaSink | None = None) -> Any:
        """One attempt, in a worker thread, so that it can be given up at the timeout or the run's deadline.

        httpx's timeout is per read, so a server sending a byte a second would hold a blocking call open for
        ever. The reply gets `timeout_s` from the moment the request is sent (litellm's set-up before that, a
        second or so on the first call, is not the server's time). The abandoned thread ends with the process
        (a daemon); its answer is never used.
        """
        litellm = self._lib()
        if deadline is not None and deadline <= time.monotonic():
            raise BudgetExceeded("wall-time limit reached before a model call", limit="wall")
        box: dict[str, Any] = {}
        done, sent, given_up = threading.Event(), threading.Event(), threading.Event()

        def attempt() -> None:
            _attempt.sent = sent
            try:
                response = litellm.completion(**kwargs)
                if kwargs.get("stream"):
                    response = _assemble(litellm, response, kwargs["messages"], on_delta, given_up)
                box["response"] = response
            except BaseException as exc:  # handed to the caller's thread, which raises it
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=attempt, name="branchwise-model-call", daemon=True).start()
        try:
            self._wait_for(done, sent, deadline)
        except BaseException:
            given_up.set()  # a stream that goes on is no longer shown
            raise
        if "error" in box:
            raise box["error"]
        response = box["response"]
        if not getattr(response, "choices", None):
            raise TransientFault(f"{self.name} answered with no choices")
        return response

    def _wait_for(self, done: threading.Event, sent: threading.Event, deadline: float | None) -> None:
        """Wait for the attempt to end: `timeout_s` after it sent its request, never past the run's deadline."""
        started = time.monotonic()
        sent_at: float | None = None
        while not done.wait(0.05):
            cancel.check()  # the user stopped the step (REPL): the call is abandoned like a timed-out one
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise BudgetExceeded("wall-time limit reached during a model call", limit="wall")
            if sent_at is None and sent.is_set():
                sent_at = now
            limit = sent_at + self.settings.timeout_s if sent_at is not None else started + SETUP_ALLOWANCE_S
            if now >= limit:
                raise TransientFault(f"no answer from {self.name} within {self.settings.timeout_s:g} s")

    def _wait(self, state: Any, deadline: float | None) -> float:
        """Exponential backoff, or longer when the provider's Retry-After asks for it; never past the deadline."""
        delay = self.settings.retry_backoff_s * (2 ** (state.attempt_number - 1))
        headers = getattr(state.outcome.exception(), "litellm_response_headers", None)
        if headers is not None:
            try:
                delay = max(delay, float(headers.get("retry-after") or 0))
            except (TypeError, ValueError):
                pass
        delay = min(delay, MAX_BACKOFF_S)
        if deadline is not None:
            delay = max(0.0, min(delay, deadline - time.monotonic()))
        return delay

    def _before_sleep(self, state: Any) -> None:
        if self.notify:
            exc = state.outcome.exception()
            reason = (str(exc).strip().splitlines() or [""])[0][:160]
            self.notify(
                f"model call failed ({type(exc).__name__}: {reason}); retry {state.attempt_number}/"
                f"{self.settings.max_retries} in {state.next_action.sleep:.1f} s"
            )

    def _translate(self, exc: Exception, info: ErrorInfo, attempts: int) -> ModelError:
        s = self.settings
        hint = info.hint.format(
            model=self.name,
            timeout=s.timeout_s,
            base=f" at {s.api_base}" if s.api_base else "",
            key=f" ({s.api_key_env})" if s.api_key_env else "",
        )
        detail = "" if isinstance(exc, TransientFault) else first_line(getattr(exc, "message", None) or str(exc))
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return info.error(f"{hint}{tries}: {detail}" if detail else f"{hint}{tries}")

    def _replies(self, response: Any, n: int, messages: list[Message], tools: list[dict[str, Any]]) -> list[Reply]:
        usage, cost = self._usage(response, messages, tools)
        replies = []
        for index, choice in enumerate(response.choices[:n]):
            message = choice.message
            content, calls = self._calls(message, index)
            # The response's usage and cost cover all choices; book them on the first.
            replies.append(
                Reply(
                    content=content,
                    tool_calls=_unique_ids(calls),
                    usage=usage if index == 0 else Usage(),
                    cost_usd=cost if index == 0 else 0.0,
                    truncated=getattr(choice, "finish_reason", None) == "length",
                )
            )
        return replies

    def _calls(self, message: Any, index: int) -> tuple[str | None, list[ToolCallRecord]]:
        """The reply's text and tool calls; tool calls written as text count too when none came natively."""
        if not self.native_tools:
            return textformat.parse(message.content or "", id_prefix=f"call_{index}")
        calls = _native_calls(message, index)
        content = message.content
        if not calls and content and "<tool_call>" in content:
            self._warn_once(
                "text-tools",
                f'{self.name} wrote its tool calls as text; they are used, but set llm.tool_calling = "text" '
                "so that the model is also told the format",
            )
            return textformat.parse(content, id_prefix=f"call_{index}")
        return content, calls

    def _usage(self, response: Any, messages: list[Message], tools: list[dict[str, Any]]) -> tuple[Usage, float]:
        """The reported usage and cost, or our own count when the server reports nonsense."""
        reported = getattr(response, "usage", None)
        prompt = _plausible(getattr(reported, "prompt_tokens", 0))
        completion = _plausible(getattr(reported, "completion_tokens", 0))
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost")
        if prompt is None or completion is None:
            self._warn_once("usage", f"{self.name} reported impossible token counts; counting them here instead")
            prompt = self.count_tokens(messages, tools)
            text = " ".join(str(c.message.content or "") for c in response.choices)
            completion = max(1, len(text) // 4)
            cost = None
        try:
            cost = float(cost) if cost is not None else self._price(prompt, completion)
        except (TypeError, ValueError):
            cost = 0.0
        if not math.isfinite(cost) or cost < 0:
            cost = self._price(prompt, completion)
        return Usage(prompt=prompt, completion=completion), cost

    def _price(self, prompt: int, completion: int) -> float:
        """litellm's price for these tokens; models it has no price for (local servers) cost 0."""
        try:
            costs = self._lib().cost_per_token(model=self.name, prompt_tokens=prompt, completion_tokens=completion)
            total = float(sum(costs))
        except Exception:
            return 0.0
        return total if math.isfinite(total) and total >= 0 else 0.0

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned and self.notify:
            self._warned.add(key)
            self.notify(message)


def _assemble(litellm: Any, stream: Any, messages: Any, on_delta: DeltaSink | None, given_up: threading.Event) -> Any:
    """Read a stream to its end, handing each piece to `on_delta`; litellm builds the whole response (tool
    calls assembled by index, the usage from the last chunk)."""
    chunks = []
    for chunk in stream:
        if given_up.is_set():
            raise TransientFault("the stream was abandoned")
        chunks.append(chunk)
        if on_delta is not None:
            for delta in _chunk_deltas(chunk):
                on_delta(delta)
    if not chunks:
        raise TransientFault("the model streamed no chunks")
    return litellm.stream_chunk_builder(chunks, messages=messages)


def _chunk_deltas(chunk: Any) -> list[ModelDelta]:
    """The text and tool-call fragments of one streamed chunk (first choice only: streams have n = 1)."""
    choices = getattr(chunk, "choices", None) or []
    delta = getattr(choices[0], "delta", None) if choices else None
    if delta is None:
        return []
    out = [ModelDelta(content=delta.content)] if getattr(delta, "content", None) else []
    for j, call in enumerate(getattr(delta, "tool_calls", None) or []):
        function = getattr(call, "function", None)
        index = getattr(call, "index", None)
        out.append(
            ModelDelta(
                index=index if isinstance(index, int) else j,
                name=getattr(function, "name", None) or None,
                arguments=getattr(function, "arguments", None) or "",
            )
        )
    return out


def _plausible(value: Any) -> int | None:
    """A token count, or None when it is not a count at all (negative, fractional nonsense, astronomically big)."""
    if value is None:
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number < 0 or number > MAX_PLAUSIBLE_TOKENS:
        return None
    return int(number)


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
                raw_arguments=None if isinstance(parsed, dict) else (raw if isinstance(raw, str) else json.dumps(raw)),
            )
        )
    return calls


def _unique_ids(calls: list[ToolCallRecord]) -> list[ToolCallRecord]:
    """Two calls with one id cannot both be answered: the later ones get ids of their own."""
    seen: set[str] = set()
    for call in calls:
        if not call.id or call.id in seen:
            call.id = f"call_{uuid.uuid4().hex[:12]}"
        seen.add(call.id)
    return calls
