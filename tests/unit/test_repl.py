"""The REPL's pieces without a run: completion, slash commands, the live view, the conversation, steering,
approvals answered at the prompt, and the prompt itself driven through prompt-toolkit's pipe input."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from branchwise.agent.record.events import ModelDelta, ModelReply, RunFinished, SearchNode, ToolCallRecord, ToolResult
from branchwise.agent.search.steer import Steering
from branchwise.agent.search.tree import Node, SearchTree
from branchwise.cli.repl import commands as C
from branchwise.cli.repl.app import Repl, ReplOptions, history_path
from branchwise.cli.repl.complete import ReplCompleter, attach_mentions
from branchwise.cli.repl.conversation import Conversation
from branchwise.cli.repl.view import LiveView, fold
from tests.conftest import make_repo


def _repl(repo: Path, tmp_path: Path, inp=None) -> tuple[Repl, list[str]]:
    lines: list[str] = []
    repl = Repl(ReplOptions(cd=repo, history=tmp_path / "history"), input=inp, output=DummyOutput(),
                write=lines.append)  # fmt: skip
    return repl, lines


def _completions(completer: ReplCompleter, text: str) -> list[str]:
    return [c.text for c in completer.get_completions(Document(text), None)]  # type: ignore[arg-type]


def test_slash_commands_and_project_commands_complete(tmp_path):
    repo = make_repo(tmp_path / "r", {".branchwise/commands/review.md": "Review $ARGUMENTS carefully.\n"})
    repl, _ = _repl(repo, tmp_path)
    completer = ReplCompleter(lambda: repo, repl._command_names)
    assert _completions(completer, "/t") == ["/tree"]
    assert "/review" in _completions(completer, "/re") and "/resume" in _completions(completer, "/re")
    assert _completions(completer, "hello /t") == []  # only at the start of the line


def test_at_mentions_complete_paths_inside_the_workspace(tmp_path):
    repo = make_repo(tmp_path / "r", {"src/app.py": "x = 1\n", "src/util.py": "", "README.md": "hi"})
    completer = ReplCompleter(lambda: repo, lambda: [])
    assert _completions(completer, "look at @sr") == ["@src/"]
    assert _completions(completer, "look at @src/a") == ["@src/app.py"]
    assert _completions(completer, "@../") == []  # never outside the workspace


def test_attached_files_are_a_note_not_the_task_and_hidden_paths_stay_hidden(tmp_path):
    repo = make_repo(tmp_path / "r", {"src/app.py": "x = 1\n", "secrets/key.txt": "TOPSECRET"})
    note, attached, problems = attach_mentions("fix @src/app.py and read @secrets/key.txt", repo, ["secrets/**"])
    assert attached == ["src/app.py"] and 'path="src/app.py"' in note and "x = 1" in note
    assert "TOPSECRET" not in note and problems and "secrets/key.txt" in problems[0]


def test_project_command_template_takes_the_arguments(tmp_path):
    repo = make_repo(
        tmp_path / "r", {".branchwise/commands/review.md": "---\ndescription: Review\n---\nReview $ARGUMENTS now."}
    )
    path = C.project_commands(repo)["review"]
    assert C.expand_template(path, "cli/main.py") == "Review cli/main.py now."


def test_a_linked_commands_folder_is_ignored(tmp_path):
    outside = tmp_path / "outside"
    (outside / "commands").mkdir(parents=True)
    (outside / "commands" / "evil.md").write_text("do evil")
    repo = make_repo(tmp_path / "r", {"a.txt": "a"})
    (repo / ".branchwise").symlink_to(outside)
    assert C.project_commands(repo) == {}


def test_unknown_command_says_what_exists(tmp_path):
    repl, lines = _repl(make_repo(tmp_path / "r", {"a": "a"}), tmp_path)
    repl.handle("/frobnicate")
    text = "".join(lines)
    assert "unknown command /frobnicate" in text and "/tree" in text and "/undo" in text


def test_live_view_streams_lines_and_keeps_the_unfinished_one_live():
    out: list[str] = []
    view = LiveView(out.append, width=lambda: 80)
    for piece in ["Hello wo", "rld\nsecond li", "ne"]:
        view(ModelDelta(content=piece))
    assert "Hello world" in "".join(out) and view.streaming_line() == "second line"
    view(ModelDelta(index=0, name="shell"))
    view(ModelDelta(index=0, arguments='{"command": "ls'))
    view(ModelReply(content="Hello world\nsecond line"))
    assert "second line" in "".join(out) and view.streaming_line() == ""


def test_tool_results_are_folded_panels_with_the_exit_code():
    out: list[str] = []
    view = LiveView(out.append, width=lambda: 80)
    call = ToolCallRecord(id="c1", name="shell", arguments={"command": "seq 1 100"})
    from branchwise.agent.record.events import ToolCall

    view(ToolCall(call=call))
    output = "\n".join(str(i) for i in range(1, 101)) + "\n[exit code: 0]"
    view(ToolResult(call_id="c1", name="shell", output=output, data={"exit_code": 0}))
    text = "".join(out)
    assert "seq 1 100" in text and "exit 0" in text and "lines folded" in text and "\n│ 50 " not in text
    assert all(len(_plain(line)) <= 80 for line in text.splitlines())


def test_edits_show_a_coloured_diff():
    out: list[str] = []
    view = LiveView(out.append, width=lambda: 80)
    from branchwise.agent.record.events import ToolCall

    call = ToolCallRecord(
        id="c1", name="str_replace", arguments={"path": "a.py", "old_str": "x = 1", "new_str": "x = 2"}
    )
    view(ToolCall(call=call))
    view(ToolResult(call_id="c1", name="str_replace", output="Edited a.py"))
    text = "".join(out)
    assert "\x1b[32m+x = 2" in text and "\x1b[31m-x = 1" in text  # green addition, red removal


def test_fold_keeps_head_and_tail():
    text = fold("\n".join(map(str, range(100))))
    assert text.splitlines()[0] == "0" and text.splitlines()[-1] == "99" and "90 lines folded" in text


def test_toolbar_fits_80_columns_and_counts_tokens():
    view = LiveView(lambda s: None, width=lambda: 80)
    view.model = "openai/gpt-4o-mini"
    view(RunFinished(status="completed", exit_code=0, steps=3, tokens={"prompt": 1200, "completion": 300},
                     cost_usd=0.0123))  # fmt: skip
    bar = view.toolbar()
    assert "1.5k tok" in bar and "$0.0123" in bar and "search none" in bar and len(bar) < 80


def test_conversation_carries_condenses_and_clears(tmp_path):
    conv = Conversation()
    assert conv.carry() == ""
    for i in range(5):
        conv.add(f"task {i}", SimpleNamespace(status="completed", summary=f"did {i}", changed_files=[f"f{i}.py"],
                                               run_id=f"r{i}"), reply=f"reply {i}")  # fmt: skip
    carry = conv.carry()
    assert "task 0" in carry and "task 4" in carry and "f4.py" in carry and "f0.py" not in carry
    before, after = conv.compact()
    assert after < before and "f4.py" not in conv.carry()
    conv.clear()
    assert conv.carry() == ""


def _tree() -> SearchTree:
    tree = SearchTree(strategy="mcts")
    tree.nodes = [Node(id=0, children=[1, 2]), Node(id=1, parent=0, children=[3]), Node(id=2, parent=0),
                  Node(id=3, parent=1)]  # fmt: skip
    return tree


def test_steering_prune_pick_expand():
    tree = _tree()
    steering = Steering()
    kept, forced = steering.steer(tree, tree.nodes)
    assert [n.id for n in kept] == [0, 1, 2, 3] and forced is None
    steering.post("prune", 1)
    kept, _ = steering.steer(tree, tree.nodes)
    assert [n.id for n in kept] == [0, 2]  # node 1 and its subtree
    steering.clear()
    steering.post("pick", 1)
    kept, _ = steering.steer(tree, tree.nodes)
    assert [n.id for n in kept] == [1, 3]
    steering.clear()
    steering.post("expand", 2)
    kept, forced = steering.steer(tree, tree.nodes)
    assert forced is not None and forced.id == 2
    _, forced = steering.steer(tree, tree.nodes)
    assert forced is None  # once
    steering.post("expand", 9)
    steering.steer(tree, tree.nodes)
    assert "cannot expand #9" in steering.applied[-1]


def test_mcts_selection_obeys_the_inbox():
    from branchwise.agent.search.mcts import MCTS
    from branchwise.agent.search.steer import inbox

    search = MCTS.__new__(MCTS)
    search.tree = _tree()
    search.sc = SimpleNamespace(settings=SimpleNamespace(max_expansions=3, max_depth=5, exploration=0.1,
                                                          depth_penalty=0.0))  # fmt: skip
    try:
        inbox.post("prune", 0)
        assert search.select() is None  # everything pruned: nothing to expand
        inbox.clear()
        inbox.post("expand", 3)
        assert search.select().id == 3
    finally:
        inbox.clear()


def test_tree_view_draws_nodes_and_marks_pruned(tmp_path):
    repl, lines = _repl(make_repo(tmp_path / "r", {"a": "a"}), tmp_path)
    for node, parent in ((0, None), (1, 0), (2, 0)):
        repl.view(SearchNode(node=node, parent=parent, action=f"shell: step {node}", reward=0.5))
    repl.handle("/tree prune 2")
    lines.clear()
    repl.handle("/tree")
    text = "".join(lines)
    assert "#1 shell: step 1" in text and "#2 shell: step 2" in text and "[pruned]" in text
    from branchwise.agent.search.steer import inbox

    inbox.clear()


def _ask(repl: Repl, call: ToolCallRecord) -> dict:
    decision = SimpleNamespace(rule="approval.untrusted", reason="runs a command", action="ask")
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("answer", repl.approve(call, decision)))
    thread.start()
    for _ in range(200):
        if repl.question is not None:
            break
        threading.Event().wait(0.01)
    box["thread"] = thread
    return box


@pytest.mark.parametrize(("typed", "expected"), [("y", True), ("n", False), ("", False)])
def test_an_approval_is_answered_at_the_prompt(tmp_path, typed, expected):
    repl, lines = _repl(make_repo(tmp_path / "r", {"a": "a"}), tmp_path)
    box = _ask(repl, ToolCallRecord(id="c", name="shell", arguments={"command": "rm -rf build"}))
    assert "rm -rf build" in "".join(lines) and "approval.untrusted" in "".join(lines)
    repl.handle(typed)
    box["thread"].join(5)
    assert box["answer"] is expected


def test_always_approves_the_same_program_for_the_session(tmp_path):
    repl, _ = _repl(make_repo(tmp_path / "r", {"a": "a"}), tmp_path)
    box = _ask(repl, ToolCallRecord(id="c", name="shell", arguments={"command": "make test"}))
    repl.handle("a")
    box["thread"].join(5)
    decision = SimpleNamespace(rule="approval.untrusted", reason="", action="ask")
    assert box["answer"] is True
    assert repl.approve(ToolCallRecord(id="d", name="shell", arguments={"command": "make lint"}), decision)


def test_edit_replaces_the_command_before_it_runs(tmp_path):
    repl, _ = _repl(make_repo(tmp_path / "r", {"a": "a"}), tmp_path)
    call = ToolCallRecord(id="c", name="shell", arguments={"command": "rm -rf /"})
    box = _ask(repl, call)
    repl.handle("e")
    assert repl.default_text() == "rm -rf /"
    repl.handle("rm -rf build")
    box["thread"].join(5)
    assert box["answer"] is True and call.arguments == {"command": "rm -rf build"}


def test_prompt_driven_by_pipe_input(tmp_path):
    repo = make_repo(tmp_path / "r", {"a": "a"})
    with create_pipe_input() as inp:
        repl, lines = _repl(repo, tmp_path, inp)
        inp.send_text("/help\r/search mcts\r/cost\r/exit\r")
        assert repl.run() == 0
    text = _plain("".join(lines))
    assert "/tree" in text and "search with mcts" in text and "0 task(s)" in text
    assert repl.flags["search.strategy"] == "mcts"
    assert "/search mcts" in (tmp_path / "history").read_text()  # history is kept


def test_ctrl_c_twice_at_an_empty_prompt_exits_and_ctrl_d_too(tmp_path):
    repo = make_repo(tmp_path / "r", {"a": "a"})
    with create_pipe_input() as inp:
        repl, lines = _repl(repo, tmp_path, inp)
        inp.send_text("\x03\x03")
        assert repl.run() == 0
    assert "press Ctrl-C again" in "".join(lines)
    with create_pipe_input() as inp:
        repl, _ = _repl(repo, tmp_path, inp)
        inp.send_text("\x04")
        assert repl.run() == 0


def test_multiline_input_with_ctrl_j_is_one_message(tmp_path):
    repo = make_repo(tmp_path / "r", {"a": "a"})
    with create_pipe_input() as inp:
        repl, _ = _repl(repo, tmp_path, inp)
        seen: list[str] = []
        repl.start_task = lambda task, **kw: seen.append(task)  # type: ignore[method-assign]
        inp.send_text("first line\nsecond line\r/exit\r")
        repl.run()
    assert seen == ["first line\nsecond line"]


def test_history_is_per_repository(tmp_path):
    assert history_path(tmp_path / "a") != history_path(tmp_path / "b")


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_nothing_heavy_is_imported_before_the_prompt():
    import json
    import subprocess
    import sys

    probe = ("import json, sys, branchwise.cli.main, branchwise.cli.repl.app; "
             "print(json.dumps(sorted(sys.modules)))")  # fmt: skip
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                       check=True).stdout)  # fmt: skip
    heavy = [m for m in loaded if m.split(".")[0] in ("litellm", "pydantic", "rich", "yaml", "git")]
    assert "prompt_toolkit" in loaded and not heavy and not [m for m in loaded if m.startswith("branchwise.agent")]


def test_a_pasted_block_is_one_message(tmp_path):
    repo = make_repo(tmp_path / "r", {"a": "a"})
    with create_pipe_input() as inp:
        repl, _ = _repl(repo, tmp_path, inp)
        seen: list[str] = []
        repl.start_task = lambda task, **kw: seen.append(task)  # type: ignore[method-assign]
        # bracketed paste: the newlines inside are text, not Enter
        inp.send_text("\x1b[200~first pasted line\rsecond pasted line\x1b[201~\r")
        inp.send_text("/exit\r")
        repl.run()
    assert seen == ["first pasted line\nsecond pasted line"]


def test_vi_mode_is_an_option(tmp_path):
    from prompt_toolkit.enums import EditingMode

    repl = Repl(ReplOptions(cd=tmp_path, vi=True, history=tmp_path / "h"), output=DummyOutput(), write=print)
    assert repl.prompt.editing_mode == EditingMode.VI


def test_a_redraw_asked_for_as_the_prompt_ends_is_dropped(tmp_path):
    # The task's thread asks for a redraw while SIGTERM ends the prompt: prompt-toolkit reads the app's loop
    # twice and the second read found none. That once ended the task with an internal error and no ending.
    repl, _ = _repl(make_repo(tmp_path / "r", {"a": "a"}), tmp_path)
    app = repl.prompt.app

    class EndingLoop:
        def is_closed(self) -> bool:
            return False

        def call_soon_threadsafe(self, *args, **kwargs) -> None:
            app.loop = None  # the prompt ends just after the first read

    app._is_running, app.loop = True, EndingLoop()  # type: ignore[assignment]
    try:
        repl.invalidate()
    finally:
        app._is_running, app.loop = False, None
