"""Property test: random edits between snapshots and restores; every restore gives back the exact tree."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace
from tests.support.trees import Entry, changed_leaves, clear, dirs_without_files, make_parents, tree_state

NAMES = ("a", "b", "sp ace", "st*r", "ü", "n\nl", "q'\"\\")
rel_paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join)
contents = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"", b"a\r\nb\r\n", b"\x00" * 9000, b"same"]),
)
link_targets = st.sampled_from(["a", "b/a", "../a", "nowhere", "..", "/", "sp ace"])


class RestoreMachine(RuleBasedStateMachine):
    """Random edits with snapshots and restores in between: restore must give back the exact tree."""

    @initialize()
    def setup(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="bw-ws-")
        base = Path(self.tmp.name)
        self.root = base / "ws"
        self.root.mkdir()
        (base / "outside").mkdir()
        (base / "outside" / "keep").write_text("outside\n")
        self.ws = ShadowGitWorkspace(self.root, base / "shadow")
        self.snaps: list[tuple[str, dict[str, Entry]]] = []

    def teardown(self) -> None:
        if hasattr(self, "tmp"):
            assert (Path(self.tmp.name) / "outside" / "keep").read_text() == "outside\n"
            self.tmp.cleanup()

    @rule(path=rel_paths, data=contents)
    def write(self, path: str, data: bytes) -> None:
        target = make_parents(self.root, path)
        clear(target)
        target.write_bytes(data)

    def _existing(self, pick: int, kinds: tuple[str, ...]) -> Path | None:
        """One of the entries now in the tree (tree_state never follows links), or None."""
        paths = sorted(p for p, e in tree_state(self.root).items() if e[0] in kinds)
        return self.root / paths[pick % len(paths)] if paths else None

    @rule(pick=st.integers(min_value=0, max_value=1000))
    def toggle_exec(self, pick: int) -> None:
        target = self._existing(pick, ("file",))
        if target is not None:
            target.chmod(target.stat().st_mode ^ 0o111)

    @rule(path=rel_paths, dest=link_targets)
    def symlink(self, path: str, dest: str) -> None:
        target = make_parents(self.root, path)
        clear(target)
        target.symlink_to(dest)

    @rule(path=rel_paths)
    def mkdir(self, path: str) -> None:
        target = make_parents(self.root, path)
        if target.is_symlink() or not target.is_dir():
            clear(target)
            target.mkdir()

    @rule(pick=st.integers(min_value=0, max_value=1000))
    def remove(self, pick: int) -> None:
        target = self._existing(pick, ("file", "link", "dir"))
        if target is not None:
            clear(target)

    @rule()
    def snapshot(self) -> None:
        state = tree_state(self.root)
        snap = self.ws.snapshot()
        assert tree_state(self.root) == state
        assert set(self.ws.info(snap).empty_dirs) == dirs_without_files(state)
        if self.snaps:
            prev_id, prev = self.snaps[-1]
            diff = self.ws.diff(prev_id, snap)
            assert set(diff.paths) == changed_leaves(prev, state)
            assert set(diff.empty_dirs_added) == dirs_without_files(state) - dirs_without_files(prev)
        self.snaps.append((snap, state))

    @precondition(lambda self: self.snaps)
    @rule(pick=st.integers(min_value=0, max_value=50))
    def restore(self, pick: int) -> None:
        snap, state = self.snaps[pick % len(self.snaps)]
        self.ws.restore(snap)
        assert tree_state(self.root) == state

    @precondition(lambda self: self.snaps)
    @rule()
    def changed_paths_since_the_last_snapshot(self) -> None:
        snap, state = self.snaps[-1]
        now = tree_state(self.root)
        assert set(self.ws.changed_paths(snap)) == changed_leaves(state, now)
        assert tree_state(self.root) == now


RestoreMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_restore_is_exact_after_random_edits = RestoreMachine.TestCase
