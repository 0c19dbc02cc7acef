"""Prompt tokens are counted with the model's tokenizer, tool schemas included (budgets and condensation use it)."""

from __future__ import annotations

from branchwise.agent.config.schema import LLMSettings
from branchwise.agent.models.litellm_model import LiteLLMModel
from branchwise.agent.models.scripted import ScriptedModel
from branchwise.agent.models.tokens import tiktoken_count
from branchwise.tools import ToolBox, default_tools

# Digits tokenise at about 3 characters a token, not 4: an estimate by characters is well off here.
BIG = [{"role": "system", "content": "You are a coding agent."},
       {"role": "user", "content": " ".join(str(n) for n in range(100_000, 103_000))}]  # fmt: skip


def schemas() -> list[dict]:
    return ToolBox(default_tools()).schemas()


def test_scripted_counts_with_gpt_4o_tokenizer_and_the_tools():
    model = ScriptedModel([])
    tools = schemas()
    with_tools, without = model.count_tokens(BIG, tools), model.count_tokens(BIG, [])
    assert with_tools == tiktoken_count(BIG, tools)
    assert with_tools - without == tiktoken_count([], tools) - tiktoken_count([], []) > 300  # the schemas count
    chars = sum(len(m["content"]) for m in BIG)
    assert abs(without - chars / 4) > 0.1 * without  # not the characters / 4 estimate


def test_litellm_model_counts_with_litellm_tokenizer_and_the_tools():
    import litellm

    model = LiteLLMModel("gpt-4o", LLMSettings())
    tools = schemas()
    expected = litellm.token_counter(model="gpt-4o", messages=BIG, tools=tools)
    assert model.count_tokens(BIG, tools) == expected
    assert model.count_tokens(BIG, tools) > model.count_tokens(BIG, [])
