from __future__ import annotations

from branchwise.agent.models import textformat


def test_parse_splits_prose_from_calls():
    text = (
        'Let me look.\n<tool_call>\n{"name": "view", "arguments": {"path": "a.py"}}\n</tool_call>\nthen\n'
        '<tool_call>{"name": "finish", "arguments": {"summary": "ok"}}</tool_call>'
    )
    prose, calls = textformat.parse(text)
    assert prose == "Let me look.\n\nthen"
    assert [(c.name, c.arguments) for c in calls] == [
        ("view", {"path": "a.py"}),
        ("finish", {"summary": "ok"}),
    ]
    assert [c.id for c in calls] == ["call_0", "call_1"]


def test_parse_accepts_fences_and_an_unclosed_last_block():
    _, calls = textformat.parse(
        '<tool_call>\n```json\n{"name": "shell", "arguments": {"command": "ls"}}\n```\n</tool_call>'
    )
    assert calls[0].arguments == {"command": "ls"}
    _, calls = textformat.parse('<tool_call>{"name": "shell", "arguments": {"command": "ls"}}')
    assert calls[0].arguments == {"command": "ls"}


def test_malformed_call_keeps_its_raw_text_for_the_error_message():
    _, calls = textformat.parse('<tool_call>{"name": "shell", "arguments": {"command": "ls"</tool_call>')
    assert calls[0].name == "shell" and calls[0].arguments is None and calls[0].raw_arguments


def test_no_block_means_no_calls():
    assert textformat.parse("just talking") == ("just talking", [])


def test_conversation_is_rewritten_without_tool_roles():
    tools = [{"type": "function", "function": {"name": "shell", "parameters": {}}}]
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "task"},
        {
            "role": "assistant",
            "content": "ok",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "shell", "arguments": '{"command": "ls"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "shell", "arguments": '{"command": "pwd"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "name": "shell", "content": "a.py"},
        {"role": "tool", "tool_call_id": "c2", "name": "shell", "content": "/w"},
    ]
    out = textformat.to_text_messages(messages, tools)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert '"name": "shell"' in out[0]["content"] and "<tool_call>" in out[0]["content"]
    assert out[2]["content"].count("<tool_call>") == 2
    assert "a.py" in out[3]["content"] and "/w" in out[3]["content"]
    _, calls = textformat.parse(out[2]["content"])
    assert [c.arguments for c in calls] == [{"command": "ls"}, {"command": "pwd"}]
