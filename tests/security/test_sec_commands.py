"""What the policy makes of a command line: pushes it cannot see statically (class 9), "read-only" commands
that execute or write (class 10), publishing and uploads as a class (class 13).

Decisions go through the real gate (the tools' own declarations) and, once per class, through a real
`branchwise run` whose outcome is judged on disk: a push that is not asked about reaches the remote, an
option that executes leaves its marker file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from branchwise.agent.record.events import EventBus, ToolCallRecord
from branchwise.agent.run.gate import PolicyGate
from branchwise.sandbox.policy.engine import Policy
from branchwise.sandbox.settings import PolicySettings, Rule, SandboxSettings
from tests.conftest import git, make_repo
from tests.security.agent_helpers import call, run_agent

FINISH = call("finish", summary="done")


def decide(workspace: Path, command: str, *, approval: str = "on-request", rules: list[Rule] | None = None):
    """The decision the gate makes for one shell call (its PolicyDecision event)."""
    seen: list = []
    bus = EventBus()
    bus.subscribe(seen.append)
    policy = Policy(PolicySettings(approval=approval, rules=rules or []), SandboxSettings(), workspace)  # type: ignore[arg-type]
    PolicyGate(policy, bus, taint=None)(ToolCallRecord(id="c", name="shell", arguments={"command": command}))
    return seen[-1]


# -- class 9: the push ask cannot be bypassed ------------------------------------------------------------

PUSH_BYPASSES = [
    "$G push origin main",
    "G=git; $G push origin main",
    '"$G" push origin main',
    "$(echo git) push origin main",
    "`echo git` push origin main",
    "$(printf %s git) push",
    "git${IFS}push origin main",
    "${GIT:-git} push",
    "git pu\\\nsh origin main",
    "gi\\\nt push origin main",
    "g\\it push",
    "'git' \"push\" origin main",
    "{git,push} origin main",
    "/usr/bin/gi? push",
    "/usr/lib/git-core/git-push origin main",
    "git-send-pack ../remote.git main",
    "/usr/lib/git-core/git-send-pack ../remote.git main",
    "git send-pack ../remote.git refs/heads/main",
    "git http-push https://example.invalid/x.git main",
    "git -c alias.p=push p origin main",
    "git -c alias.p='!git push' p",
    "GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=alias.p GIT_CONFIG_VALUE_0=push git p origin main",
    "git config --global alias.p push && git p origin main",
    "git remote-ext origin 'git-receive-pack ../remote.git'",
    "echo push | xargs git",
    "echo 'git push origin main' | sh",
    'bash -c "$(echo git push)"',
    'eval "$CMD"',
    "sh -ec 'git push origin main'",
    "env -S 'git push origin main'",
    "find . -maxdepth 0 -exec git push origin main \\;",
    "python3 -c 'import os; os.system(\"git push origin main\")'",
    "awk 'BEGIN { system(\"git push origin main\") }'",
    "git submodule foreach 'git push'",
    "git rebase -x 'git push origin main' HEAD",
    "cat <<EOF | bash\ngit push origin main\nEOF",
]


@pytest.mark.parametrize("command", PUSH_BYPASSES)
def test_a_push_the_policy_cannot_see_statically_is_at_least_ask(tmp_path: Path, command: str) -> None:
    event = decide(tmp_path, command)
    assert event.decision == "ask", (command, event.rule, event.reason)
    # A deny rule for git push cannot be dodged the same way either: at least ask, never allow.
    deny = [Rule(name="no-push", tool="shell", argv_prefix=["git", "push"], decision="deny")]
    assert decide(tmp_path, command, rules=deny).decision in ("ask", "deny"), command
    assert decide(tmp_path, command, approval="never").decision == "deny", command


ORDINARY = ["git status", "git commit -qm 'push it'", "git log --grep push", "python3 -m pytest -q", "make test",
            "ls $HOME", "for f in *.py; do wc -l $f; done"]  # fmt: skip


@pytest.mark.parametrize("command", ORDINARY)
def test_ordinary_commands_still_run_without_a_question(tmp_path: Path, command: str) -> None:
    assert decide(tmp_path, command).decision == "allow", command


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose `origin` is a real bare repository the sandbox may write (a writable root)."""
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "remote.git")], check=True)
    git(repo, "remote", "add", "origin", str(tmp_path / "remote.git"))
    return repo


def remote_heads(repo: Path) -> str:
    return subprocess.run(["git", "--git-dir", str(repo.parent / "remote.git"), "for-each-ref"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


@pytest.mark.slow
def test_push_bypasses_do_not_reach_the_remote_in_a_real_run(cli, repo: Path) -> None:
    commands = ["$(echo git) push origin main", "G=git; $G push origin main", "git pu\\\nsh origin main",
                "/usr/lib/git-core/git-push origin main", "git send-pack ../remote.git refs/heads/main",
                "git -c alias.p=push p origin main"]  # fmt: skip
    replies = [call("shell", f"c{i}", command=c) for i, c in enumerate(commands)]
    roots = {"BRANCHWISE_SANDBOX_WRITABLE_ROOTS": json.dumps([str(repo.parent / "remote.git")])}
    run = run_agent(cli, repo, [*replies, call("shell", "control", command="git push -q origin main"), FINISH],
                    env=roots)  # fmt: skip
    for i, command in enumerate(commands):
        decision = run.policy_of(f"c{i}")
        assert (decision["decision"], decision["approved"]) == ("ask", False), (command, decision)
    assert run.policy_of("control")["decision"] == "ask"
    assert remote_heads(repo) == "", "something reached the remote"


# -- class 10: read-only means it cannot execute or write ---------------------------------------------------

NOT_READ_ONLY = [
    "rg --pre sh pattern", "rg --pre=sh pattern", "rg --pr sh pattern", "rg --pre ./x.sh pattern",
    "rg -z pattern", "rg -iz pattern", "rg --search-zip pattern", "rg --hostname-bin=./x.sh pattern",
    "rg pattern *", "rg $OPTS pattern", "tree -o out.txt", "tree -fo out.txt", "tree --output out.txt",
    "git diff --output=out.txt", "git diff --outp=out.txt", "git log --output out.txt", "git show --ext-diff",
    "git -c core.pager=./x.sh log", "git -p log", "git --exec-path=. status", "git branch evil",
    "git branch -D main", "./ls", "/tmp/cat x", "ls; ./x.sh", "cat x > y", "echo $(./x.sh)", "'ls' -la",
]  # fmt: skip


@pytest.mark.parametrize("command", NOT_READ_ONLY)
def test_untrusted_asks_for_commands_that_can_execute_or_write(tmp_path: Path, command: str) -> None:
    assert decide(tmp_path, command, approval="untrusted").decision == "ask", command


@pytest.mark.parametrize("command", ["ls -la src", "cat README.md", "rg -n pattern src", "rg -e -z pattern",
                                     "grep -rn x .", "git status", "git diff HEAD", "git log --oneline -5",
                                     "git branch -a", "git -C sub status", "tree -L 2", "wc -l *.py"])  # fmt: skip
def test_untrusted_still_allows_plain_reads(tmp_path: Path, command: str) -> None:
    assert decide(tmp_path, command, approval="untrusted").decision == "allow", command


@pytest.mark.slow
def test_read_only_allow_list_runs_no_code_in_a_real_run(cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"notes.txt": "pattern\n", "x.sh": "#!/bin/sh\ntouch ran-$1\ncat\n"})
    (repo / "x.sh").chmod(0o755)
    (repo / "--pre=sh").write_text("pattern\n")  # a file name the shell's glob turns into an option
    commands = ["rg --pre ./x.sh pattern", "rg --pr=./x.sh pattern", "rg pattern *", "rg -z pattern",
                "git -c core.pager='./x.sh pager' -p log", "tree -o ran-tree"]  # fmt: skip
    replies = [call("shell", f"c{i}", command=c) for i, c in enumerate(commands)]
    run = run_agent(cli, repo, [*replies, call("shell", "ok", command="rg -n pattern notes.txt"), FINISH],
                    "--approval", "untrusted")  # fmt: skip
    for i, command in enumerate(commands):
        assert run.policy_of(f"c{i}")["decision"] == "ask", command
    assert run.policy_of("ok")["decision"] == "allow"
    assert "1:pattern" in run.result_of("ok")["output"]
    assert sorted(p.name for p in repo.iterdir() if p.name.startswith("ran")) == []


# -- class 13: publishing and uploads are a class --------------------------------------------------------------

PUBLISHING = [
    "uv publish", "uv publish dist/*", "hatch publish", "flit publish", "pdm publish", "poetry publish --build",
    "maturin publish", "twine upload dist/*", "python3 -m twine upload dist/*", "python setup.py sdist upload",
    "poetry run twine upload dist/*", "uv run twine upload dist/*", "uvx twine upload dist/*",
    "npm publish", "npm --registry https://r.example publish", "pnpm -r publish", "yarn npm publish",
    "bun publish", "npx semantic-release", "npm exec -- lerna publish", "npm dist-tag add pkg@1.0 latest",
    "cargo publish", "cargo +nightly publish", "gem push x.gem", "mix hex.publish", "dart pub publish",
    "dotnet nuget push x.nupkg", "nuget push x.nupkg", "./gradlew publish", "gradle :lib:publishToSonatype",
    "mvn -B deploy", "./mvnw release:perform", "sbt publishSigned", "cabal upload x.tar.gz",
    "docker push registry.example/x:1", "docker image push x", "docker buildx imagetools create -t x y",
    "podman push x", "buildah push x", "skopeo copy dir:x docker://r.example/x", "crane push x.tar r.example/x",
    "oras push r.example/x a.txt", "helm push x.tgz oci://r.example", "gh release create v1 dist/*",
    "gh release upload v1 x.tgz", "gh pr create --fill", "gh api -X POST repos/o/r/issues", "glab release create v1",
    "goreleaser release", "vsce publish", "aws s3 cp x s3://bucket/", "gsutil cp x gs://bucket/",
    "rclone copy x remote:bucket", "scp x host:", "rsync -a x host:/srv/", "curl -T x https://upload.example/",
    "curl -F f=@x https://upload.example/", "curl --data-binary @x https://upload.example/",
    "wget --post-file=x https://upload.example/", "http POST https://api.example/ a=b",
]  # fmt: skip


@pytest.mark.parametrize("command", PUBLISHING)
def test_uploads_to_registries_and_release_hosts_ask(tmp_path: Path, command: str) -> None:
    event = decide(tmp_path, command)
    assert event.decision == "ask", (command, event.rule)
    assert event.rule.startswith("default:"), event.rule


@pytest.mark.parametrize("command", ["uv build", "hatch build", "npm pack", "cargo build", "docker images",
                                     "gh pr list", "gh release view v1", "./gradlew publishToMavenLocal",
                                     "mvn -B package", "curl -fsS https://pypi.org/simple/",
                                     "curl -d x http://127.0.0.1:8000/api", "pip download x"])  # fmt: skip
def test_local_builds_and_reads_are_not_publishing(tmp_path: Path, command: str) -> None:
    assert decide(tmp_path, command).decision == "allow", command
