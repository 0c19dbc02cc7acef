"""Class 3 (and the config part of 4 and 19): a repository's config is judged against the user's own layers,
not the built-in defaults; its security lists add, never replace; it may only name its own files; and a
planted config file cannot hang or flood the host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from branchwise.agent.config.layers import load_config
from branchwise.agent.errors import ConfigError

PUSH_DENY = '[[policy.rules]]\nname = "no-push"\ntool = "shell"\nargv_prefix = ["git", "push"]\ndecision = "deny"\n'


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    home, ws = tmp_path / "home", tmp_path / "ws"
    (home / ".config" / "branchwise").mkdir(parents=True)
    (ws / ".branchwise").mkdir(parents=True)
    return {"home": home, "user": home / ".config" / "branchwise" / "config.toml",
            "project": ws / ".branchwise" / "config.toml", "task": ws / "task.toml", "ws": ws}  # fmt: skip


def load(layout: dict[str, Path], *, task: bool = False):
    env = {"XDG_CONFIG_HOME": str(layout["home"] / ".config"), "HOME": str(layout["home"])}
    return load_config(layout["ws"], task_file=layout["task"] if task else None, env=env)


WIDENINGS = [
    # (the user's config, the repository's, what the refusal names)
    ("", "[sandbox.limits]\nfile_size_mb = 100000000\n", "sandbox.limits.file_size_mb"),
    ("", "[sandbox.limits]\ncpu_seconds = 99000000\n", "sandbox.limits.cpu_seconds"),
    ("[sandbox.limits]\npids_max = 64\n", "[sandbox.limits]\npids_max = 128\n", "sandbox.limits.pids_max"),
    ("[sandbox.limits]\nmemory_mb = 512\n", "[sandbox.limits]\nmemory_mb = 1024\n", "sandbox.limits.memory_mb"),
    ("", "[tools]\noutput_limit_bytes = 1000000000\n", "tools.output_limit_bytes"),
    ("", "[limits]\nmax_cost_usd = 500.0\n", "limits.max_cost_usd"),
    ("", "[limits]\nmax_cost_usd = 0\n", "limits.max_cost_usd"),
    ("[limits]\nmax_tokens = 100000\n", "[limits]\nmax_tokens = 0\n", "limits.max_tokens"),
    ("[limits]\nmax_tokens = 100000\n", "[limits]\nmax_tokens = 200000\n", "limits.max_tokens"),
    ('[sandbox]\nmode = "read-only"\n', '[sandbox]\nmode = "workspace-write"\n', "sandbox.mode"),
    ('[sandbox]\nnetwork = "proxy"\nallowed_domains = ["pypi.org"]\n', '[sandbox]\nnetwork = "on"\n',
     "sandbox.network"),
    ('[sandbox]\nnetwork = "proxy"\nallowed_domains = ["pypi.org"]\n',
     '[sandbox]\nallowed_domains = ["pypi.org", "evil.example"]\n', "sandbox.allowed_domains"),
    ("[sandbox]\nloopback = false\n", "[sandbox]\nloopback = true\n", "sandbox.loopback"),
    ('[policy]\napproval = "untrusted"\n', '[policy]\napproval = "on-request"\n', "policy.approval"),
    ('[policy]\napproval = "never"\n', '[policy]\napproval = "on-request"\n', "policy.approval"),
    ("", "[policy]\ntaint = false\n", "policy.taint"),
    ("", 'instructions = ["/etc/shadow"]\n', "instructions"),
    ("", 'instructions = ["../../outside.md"]\n', "instructions"),
    ("", 'model = "scripted:/dev/zero"\n', "model"),
    ("", 'model = "scripted:../../replies.yaml"\n', "model"),
]  # fmt: skip


@pytest.mark.parametrize(("user", "repository", "key"), WIDENINGS)
@pytest.mark.parametrize("where", ["project", "task"])
def test_a_repository_cannot_widen_the_users_settings(layout, user: str, repository: str, key: str, where: str):
    layout["user"].write_text(user)
    text = ('prompt = "x"\n' + repository) if where == "task" else repository
    layout[where].write_text(text)
    with pytest.raises(ConfigError) as err:
        load(layout, task=where == "task")
    assert key in str(err.value) and "\n" not in str(err.value), str(err.value)
    layout[where].unlink()
    assert load(layout) is not None  # without the repository's file the user's settings load


def test_narrowing_is_still_allowed(layout):
    layout["user"].write_text(
        '[sandbox]\nnetwork = "proxy"\nallowed_domains = ["pypi.org", "files.pythonhosted.org"]\n'
    )
    layout["project"].write_text('[sandbox]\nmode = "read-only"\nallowed_domains = ["pypi.org"]\n'
                                 '[sandbox.limits]\npids_max = 64\n[policy]\napproval = "untrusted"\n'
                                 '[tools]\noutput_limit_bytes = 5000\n'
                                 '[limits]\nmax_cost_usd = 1.0\nmax_tokens = 9000\n')  # fmt: skip
    config = load(layout).config
    assert (config.limits.max_cost_usd, config.limits.max_tokens) == (1.0, 9000)
    assert (config.sandbox.mode, config.sandbox.allowed_domains, config.sandbox.limits.pids_max) == (
        "read-only", ["pypi.org"], 64)  # fmt: skip
    assert (config.policy.approval, config.tools.output_limit_bytes) == ("untrusted", 5000)


def test_security_lists_merge_instead_of_replacing_the_users(layout):
    layout["user"].write_text('[sandbox]\ndenied_domains = ["evil.example"]\ndeny_read = ["~/.ssh", "secrets/**"]\n'
                              'protected = [".git/hooks", "deploy"]\n[policy]\ntaint_sinks = ["shell", "mine"]\n'
                              + PUSH_DENY)  # fmt: skip
    layout["project"].write_text('[sandbox]\ndenied_domains = ["other.example"]\ndeny_read = ["build/keys"]\n'
                                 'protected = []\n[policy]\ntaint_sinks = []\nrules = []\n')  # fmt: skip
    loaded = load(layout)
    sandbox, policy = loaded.config.sandbox, loaded.config.policy
    assert sandbox.denied_domains == ["evil.example", "other.example"]
    assert sandbox.deny_read == ["~/.ssh", "secrets/**", "build/keys"]
    assert sandbox.protected == [".git/hooks", "deploy"]
    assert policy.taint_sinks == ["shell", "mine"]
    assert [r.name for r in policy.rules] == ["no-push"]
    assert loaded.sources["sandbox.deny_read"].startswith("user config") and "project config" in (
        loaded.sources["sandbox.deny_read"])  # fmt: skip


def test_repository_rules_are_added_after_the_users(layout):
    layout["user"].write_text(PUSH_DENY)
    layout["project"].write_text(PUSH_DENY.replace("no-push", "repo-ask").replace('"deny"', '"ask"'))
    assert [r.name for r in load(layout).config.policy.rules] == ["no-push", "repo-ask"]


def test_planted_config_files_are_read_only_when_regular_and_small(layout, tmp_path: Path):
    project = layout["project"]
    os.mkfifo(project)  # a sandboxed command cannot create it (protected), but a checkout or the user could
    with pytest.raises(ConfigError, match="not a regular file"):
        load(layout)
    project.unlink()
    project.symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="outside the repository"):
        load(layout)
    project.unlink()
    project.symlink_to(tmp_path / "home" / ".config" / "branchwise" / "config.toml")
    layout["user"].write_text("")
    with pytest.raises(ConfigError, match="outside the repository"):
        load(layout)
    project.unlink()
    project.write_text("# " + "x" * (2 * 1024 * 1024) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load(layout)


def test_a_link_in_the_repository_cannot_name_a_file_outside(layout):
    (layout["ws"] / "replies.yaml").symlink_to("/dev/zero")
    layout["project"].write_text('model = "scripted:../replies.yaml"\n')  # relative to .branchwise/
    with pytest.raises(ConfigError, match="outside the repository"):
        load(layout)
    (layout["ws"] / "replies.yaml").unlink()
    (layout["ws"] / "replies.yaml").write_text("replies: []\n")
    assert load(layout).config.model == f"scripted:{layout['ws'] / 'replies.yaml'}"
