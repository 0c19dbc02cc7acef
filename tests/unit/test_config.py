from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from branchwise.agent.config.layers import env_layer, load_config
from branchwise.agent.config.schema import Config
from branchwise.agent.errors import ConfigError
from branchwise.cli.commands.config import starter_text


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    home = tmp_path / "home"
    (home / ".config" / "branchwise").mkdir(parents=True)
    ws = tmp_path / "ws"
    (ws / ".branchwise").mkdir(parents=True)
    return {
        "user": home / ".config" / "branchwise" / "config.toml",
        "project": ws / ".branchwise" / "config.toml",
        "task": ws / "task.toml",
        "ws": ws,
        "env": {"XDG_CONFIG_HOME": str(home / ".config")},  # type: ignore[dict-item]
    }


def load(layout: dict, *, task: bool = False, env: dict | None = None, flags: dict | None = None):
    return load_config(
        layout["ws"],
        task_file=layout["task"] if task else None,
        env={**layout["env"], **(env or {})},
        flags=flags,
    )


def test_defaults_apply_with_no_files(layout):
    loaded = load(layout)
    assert loaded.config == Config()
    assert loaded.sources["limits.max_steps"] == "default"


def test_each_layer_overrides_the_one_below_and_is_named_as_the_source(layout):
    layout["user"].write_text('model = "user/m"\n[limits]\nmax_steps = 10\nmax_cost_usd = 1.5\nmax_wall_s = 99\n')
    layout["project"].write_text("[limits]\nmax_steps = 20\nmax_cost_usd = 1.0\n")
    layout["task"].write_text('prompt = "do it"\n[limits]\nmax_steps = 30\n')
    loaded = load(layout, task=True, env={"BRANCHWISE_LIMITS_MAX_STEPS": "40"}, flags={"model": "flag/m"})
    cfg, src = loaded.config, loaded.sources
    assert (cfg.model, cfg.limits.max_steps, cfg.limits.max_cost_usd, cfg.limits.max_wall_s) == (
        "flag/m",
        40,
        1.0,
        99,
    )
    assert src["model"] == "command line"
    assert src["limits.max_steps"] == "environment"
    assert src["limits.max_cost_usd"].startswith("project config (")
    assert src["limits.max_wall_s"].startswith("user config (")
    assert loaded.task == {"prompt": "do it"}


def test_flags_beat_environment(layout):
    loaded = load(layout, env={"BRANCHWISE_LIMITS_MAX_STEPS": "7"}, flags={"limits.max_steps": 3})
    assert loaded.config.limits.max_steps == 3


def test_unknown_key_names_file_and_key(layout):
    layout["project"].write_text("[limits]\nmax_stepz = 3\n")
    with pytest.raises(ConfigError) as info:
        load(layout)
    message = str(info.value)
    assert str(layout["project"]) in message and "limits.max_stepz" in message
    assert "\n" not in message


def test_unknown_top_level_key_in_task_file(layout):
    layout["task"].write_text('prompt = "x"\nmodle = "gpt"\n')
    with pytest.raises(ConfigError, match=r"task file .*unknown key 'modle'"):
        load(layout, task=True)


def test_bad_value_names_source_and_value(layout):
    layout["user"].write_text('[llm]\ntool_calling = "smoke-signals"\n')
    with pytest.raises(ConfigError, match=r"user config .*llm\.tool_calling.*smoke-signals"):
        load(layout)


def test_malformed_toml_is_one_line_naming_the_file(layout):
    layout["project"].write_text("[limits\n")
    with pytest.raises(ConfigError, match=r"config\.toml: invalid TOML"):
        load(layout)


def test_unknown_environment_variable_is_an_error():
    with pytest.raises(ConfigError, match="BRANCHWISE_NOPE"):
        env_layer({"BRANCHWISE_NOPE": "1"})


def test_environment_parses_json_lists_and_section_keys():
    layer = env_layer({"BRANCHWISE_CHECKS": '["make test", "make lint"]', "BRANCHWISE_LLM_API_BASE": "http://x"})
    assert layer.data == {"checks": ["make test", "make lint"], "llm": {"api_base": "http://x"}}


def test_scripted_path_is_relative_to_the_file_that_names_it(layout):
    layout["task"].write_text('prompt = "x"\nmodel = "scripted:replies.yaml"\n')
    loaded = load(layout, task=True)
    assert loaded.config.model == f"scripted:{layout['ws'] / 'replies.yaml'}"


def test_starter_file_uncommented_is_valid_and_equals_defaults():
    lines = []
    for line in starter_text().splitlines():
        body = line.removeprefix("# ")
        # Uncomment `key = value` lines; settings without a default stay commented.
        if (
            line.startswith("# ")
            and " = " in body
            and not body.startswith(("Layers", "#"))
            and body.split(" = ")[0].isidentifier()
        ):
            lines.append(body)
        elif not line.startswith("#"):
            lines.append(line)
    data = tomllib.loads("\n".join(lines))
    assert Config.model_validate(data) == Config()


@pytest.mark.parametrize("key", ["api_base = 'http://attacker.example/v1'", "api_key_env = 'AWS_SECRET_ACCESS_KEY'",
                                 "extra = {api_base = 'http://attacker.example'}"])  # fmt: skip
def test_a_repository_cannot_choose_where_the_api_key_goes(layout, key):
    layout["project"].write_text(f"[llm]\n{key}\n")
    with pytest.raises(ConfigError, match=r"project config .*llm\.\w+ could send your API key elsewhere"):
        load(layout)
    layout["project"].unlink()
    layout["user"].write_text(f"[llm]\n{key}\n")  # the user's own file may
    assert load(layout).config.llm != Config().llm


def test_protected_paths_must_lie_inside_the_workspace() -> None:
    from pydantic import ValidationError

    from branchwise.sandbox.settings import SandboxSettings

    assert SandboxSettings(protected=["./.git//hooks/", "a/./b"]).protected == [".git/hooks", "a/b"]
    for bad in ("/etc/passwd", "../outside", "a/../../b", ".", ""):
        with pytest.raises(ValidationError, match="not a path inside the workspace"):
            SandboxSettings(protected=[bad])
