"""The streaming model path over HTTP: litellm with stream=True against the local OpenAI-compatible server."""

from __future__ import annotations

import threading

import pytest

from branchwise.agent import cancel
from branchwise.agent.config.schema import LLMSettings
from branchwise.agent.models.litellm_model import LiteLLMModel
from tests.support.openai_server import FakeOpenAI, reply

pytestmark = pytest.mark.slow


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with FakeOpenAI() as srv:
        yield srv


def _model(server: FakeOpenAI, notes: list[str] | None = None) -> LiteLLMModel:
    settings = LLMSettings(api_base=server.base_url, retry_backoff_s=0.05)
    model = LiteLLMModel("openai/fake-model", settings, notify=notes.append if notes is not None else None)
    model.preflight()
    return model


TOOLS = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in ("shell", "view")]


def test_a_streamed_reply_with_two_tool_calls_is_assembled_by_index(server):
    calls = [{"id": "c1", "name": "shell", "arguments": {"command": "ls -la && echo done"}},
             {"id": "c2", "name": "view", "arguments": {"path": "src/app.py"}}]  # fmt: skip
    server.script(reply("I will list the files, then read the app.", tool_calls=calls, stream_chunk=5))
    deltas, notes = [], []
    try:
        replies = _model(server, notes).query_stream([{"role": "user", "content": "hi"}], TOOLS, on_delta=deltas.append)
    except Exception as exc:  # the retry notices say why each attempt failed (a warning raised in litellm, once)
        raise AssertionError(f"{exc}; the attempts before: {notes}") from exc
    assert notes == []
    assert server.chat_requests[0]["body"]["stream"] is True
    (r,) = replies
    assert r.content == "I will list the files, then read the app."
    assert [(c.name, c.arguments) for c in r.tool_calls] == [
        ("shell", {"command": "ls -la && echo done"}),
        ("view", {"path": "src/app.py"}),
    ]
    text = [d.content for d in deltas if d.index is None]
    assert len(text) > 3 and "".join(text) == r.content  # it came in pieces
    args = {i: "".join(d.arguments for d in deltas if d.index == i) for i in (0, 1)}
    assert args == {0: '{"command": "ls -la && echo done"}', 1: '{"path": "src/app.py"}'}
    assert r.usage.prompt > 0 and r.usage.completion > 0


def test_a_slow_stream_arrives_piece_by_piece_and_a_stop_abandons_it(server):
    server.script(reply("word " * 200, stream_chunk=5, stream_delay=0.05))  # 200 pieces, 10 s in all
    model = _model(server)
    seen: list[str] = []

    def on_delta(delta) -> None:
        seen.append(delta.content)
        if len(seen) == 5:  # the reply is arriving: stop the step now
            threading.Thread(target=cancel.request).start()

    cancel.clear()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.query_stream([{"role": "user", "content": "hi"}], [], on_delta=on_delta)
    finally:
        cancel.clear()
    assert 5 <= len(seen) < 150  # pieces came before the reply was complete, and the rest was not waited for
