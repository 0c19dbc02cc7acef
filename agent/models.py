"""Choosing a Model implementation from a model name: `scripted:PATH` or anything litellm knows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .config import Config
from .errors import ConfigError
from .model import Model


def make_model(config: Config, *, notify: Callable[[str], None] | None = None) -> Model:
    """Build (and check, before any step runs) the model named by the configuration."""
    name = config.model
    if not name:
        raise ConfigError(
            'no model configured: pass --model, set BRANCHWISE_MODEL, or put model = "..." in a config file'
        )
    if name.startswith("scripted:"):
        from .scripted import ScriptedModel

        return ScriptedModel.from_file(Path(name.removeprefix("scripted:")).expanduser())
    from .llm import LiteLLMModel

    model = LiteLLMModel(name, config.llm, notify=notify)
    model.preflight()
    return model
