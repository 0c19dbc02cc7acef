"""Choosing a Model implementation from a model name: `scripted:PATH` or anything litellm knows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from branchwise.agent.config.schema import Config
from branchwise.agent.errors import ConfigError
from branchwise.agent.models.base import Model


def make_model(config: Config, *, notify: Callable[[str], None] | None = None) -> Model:
    """Build (and check, before any step runs) the model named by the configuration."""
    name = config.model
    if not name:
        raise ConfigError(
            'no model configured: pass --model, set BRANCHWISE_MODEL, or put model = "..." in a config file'
        )
    if name.startswith("scripted:"):
        from branchwise.agent.models.scripted import ScriptedModel

        return ScriptedModel.from_file(Path(name.removeprefix("scripted:")).expanduser())
    from branchwise.agent.models.litellm_model import LiteLLMModel

    model = LiteLLMModel(name, config.llm, notify=notify)
    model.preflight()
    return model
