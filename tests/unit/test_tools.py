from __future__ import annotations

from pathlib import Path

import pytest

from branchwise.sandbox.isolation.host import HostSandbox
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.tools import ToolBox, ToolContext, ToolError, default_tools
from branchwise.tools import code_search as search_tools


@pytest.fixture
def ws(tmp_path: Path):
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n")
    (root / "README.md").write_text("hello\n")
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "x.py").write_text("return 1\n")
    sandbox = HostSandbox(root)
    yield ToolContext(sandbox=sandbox, fs=WorkspaceFS(root), shell_timeout_s=10, output_limit_bytes=2000)
    sandbox.close()


BOX = ToolBox(default_tools())


def call(ctx: ToolContext, name: str, **args):
    return BOX.get(name).run(BOX.parse_args(name, args), ctx)


def test_tool_names_are_exactly_the_public_ones():
    assert list(BOX.tools) == [
        "shell",
        "view",
        "create",
        "str_replace",
        "insert",
        "undo_edit",
        "grep",
        "glob",
        "background",
        "finish",
    ]
    for schema in BOX.schemas():
        assert schema["type"] == "function"
        assert schema["function"]["parameters"]["type"] == "object"


def test_bad_arguments_name_the_field():
    with pytest.raises(ToolError, match="invalid arguments for view: path: Field required"):
        BOX.parse_args("view", {})
    with pytest.raises(ToolError, match="unknown tool 'nope'"):
        BOX.parse_args("nope", {})


def test_view_file_numbers_lines_and_honours_range(ws):
    assert call(ws, "view", path="src/a.py").output.splitlines()[1] == "     2\t    return a - b"
    ranged = call(ws, "view", path="src/a.py", view_range=[5, -1]).output
    assert ranged.splitlines()[0] == "     5\tdef sub(a, b):" and len(ranged.splitlines()) == 2
    with pytest.raises(ToolError, match="outside the file"):
        call(ws, "view", path="src/a.py", view_range=[3, 99])


def test_view_directory_lists_but_does_not_descend_into_dependencies(ws):
    listing = call(ws, "view", path=".").output.splitlines()
    assert "src/a.py" in listing and "node_modules/" in listing
    assert not any(line.startswith("node_modules/dep") for line in listing)


def test_str_replace_requires_exactly_one_match(ws):
    with pytest.raises(ToolError, match=r"occurs 2 times in src/a.py \(lines 2, 6\)"):
        call(ws, "str_replace", path="src/a.py", old_str="return a - b", new_str="return a + b")
    with pytest.raises(ToolError, match="not found"):
        call(ws, "str_replace", path="src/a.py", old_str="return a * b", new_str="x")
    with pytest.raises(ToolError, match="whitespace is ignored"):
        call(ws, "str_replace", path="src/a.py", old_str="def add(a,  b):", new_str="x")
    out = call(
        ws,
        "str_replace",
        path="src/a.py",
        old_str="def add(a, b):\n    return a - b",
        new_str="def add(a, b):\n    return a + b",
    )
    assert "     2\t    return a + b" in out.output
    assert (ws.workspace / "src/a.py").read_text().count("a + b") == 1


def test_insert_and_undo_restore_previous_contents(ws):
    original = (ws.workspace / "src/a.py").read_text()
    call(ws, "insert", path="src/a.py", insert_line=0, new_str='"""Module."""')
    call(ws, "str_replace", path="src/a.py", old_str='"""Module."""', new_str='"""Math."""')
    assert (ws.workspace / "src/a.py").read_text().startswith('"""Math."""\ndef add')
    call(ws, "undo_edit", path="src/a.py")
    assert (ws.workspace / "src/a.py").read_text().startswith('"""Module."""\n')
    call(ws, "undo_edit", path="./src/a.py")
    assert (ws.workspace / "src/a.py").read_text() == original
    with pytest.raises(ToolError, match="no edit"):
        call(ws, "undo_edit", path="src/a.py")


def test_create_then_undo_removes_the_new_file(ws):
    call(ws, "create", path="pkg/new/mod.py", file_text="x = 1\n")
    assert (ws.workspace / "pkg/new/mod.py").read_text() == "x = 1\n"
    call(ws, "undo_edit", path="pkg/new/mod.py")
    assert not (ws.workspace / "pkg/new/mod.py").exists()


def test_file_tools_cannot_leave_the_workspace(ws, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    (ws.workspace / "link").symlink_to(secret)
    from branchwise.sandbox.workspace.safefs import PathEscape

    for path in ("link", "../secret.txt", str(secret)):
        with pytest.raises(PathEscape):
            call(ws, "view", path=path)
    with pytest.raises(PathEscape):
        call(ws, "create", path="link", file_text="overwrite")
    assert secret.read_text() == "s3cret"


def test_shell_tracks_directory_exit_code_and_output(ws):
    out = call(ws, "shell", command="cd src && echo -n here")
    assert out.output == "here\n[exit code: 0]"
    assert call(ws, "shell", command="pwd").output.startswith(str(ws.workspace / "src"))
    assert call(ws, "shell", command="exit 3").data["exit_code"] == 3
    reset = call(ws, "shell", command="cd /").output
    assert "reset to" in reset and ws.shell_cwd == ws.workspace


def test_shell_timeout_and_output_cap(ws):
    slow = call(ws, "shell", command="sleep 5", timeout_s=0.3)
    assert slow.data["killed"] == "timeout" and "killed: no exit after 0.3 s" in slow.output
    big = call(ws, "shell", command="seq 1 100000")
    assert big.data["truncated"]
    assert big.output.startswith("1\n2\n3\n") and "100000" in big.output and "bytes of output omitted" in big.output


def test_shell_does_not_see_api_keys(ws, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test")
    assert "sk-secret-test" not in call(ws, "shell", command="env").output


def test_grep_with_ripgrep_and_python_fallback_agree(ws, monkeypatch):
    rg = call(ws, "grep", pattern=r"return a \- b", glob="*.py").output.splitlines()
    assert rg == ["src/a.py:2:    return a - b", "src/a.py:6:    return a - b"]
    monkeypatch.setattr(search_tools.shutil, "which", lambda name: None)
    py = call(ws, "grep", pattern=r"return a \- b", glob="*.py").output.splitlines()
    assert py == rg
    assert call(ws, "grep", pattern="nothing-here").output == "(no matches)"
    with pytest.raises(ToolError, match="invalid regular expression"):
        call(ws, "grep", pattern="(")


def test_glob_matches_recursive_patterns_and_skips_dependencies(ws):
    assert call(ws, "glob", pattern="**/*.py").output.splitlines() == ["src/a.py"]
    assert call(ws, "glob", pattern="*.md").output == "README.md"
    assert call(ws, "glob", pattern="*.py", path="src").output == "src/a.py"
    assert call(ws, "glob", pattern="*.rs").output == "(no files match)"
