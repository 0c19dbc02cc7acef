"""The simulated task and environment: a hidden chain of correct actions, and the Sandbox and Workspace over it.

A task is a chain of `length` steps. At step d there are `actions` possible actions, of which 1 or 2 are
correct. A state is the sequence of (step, action) pairs applied so far; one wrong action makes it a dead
end that nothing the agent does later repairs, and nothing in a command's output reveals it. The task's
checks pass on the one correct complete state (except for flaky runs, probability `fn`); any other state
passes them with probability `fp`, fixed per state (weak tests miss the same wrong state every time).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from branchwise.sandbox.base import BackgroundError, BackgroundProcess, ExecResult, OutputLimits
from branchwise.sandbox.workspace.snapshots import FileChange, WorkspaceDiff

State = tuple[tuple[int, str], ...]
CHECK_COMMAND = "sim-check"
_STEP = re.compile(r"^step (\d+) (\w+)$")
_CWD_MARKER = re.compile(r"printf '\\n(__branchwise_cwd_\w+__)%s\\n'")


@dataclass(frozen=True)
class Noise:
    """The knobs of one benchmark setting (research note, section d.1)."""

    p_skill: float = 0.75
    """Probability the policy proposes a correct action at a step."""
    p_finish: float = 0.9
    """Probability the policy calls finish once it has made every step (else it looks around)."""
    p_premature: float = 0.1
    """Probability the policy calls finish before the work is done, at each step."""
    zipf: float = 1.0
    """Exponent of the Zipf distribution over wrong actions: the same mistakes recur."""
    p_heed: float = 0.7
    """Probability a re-expansion follows the hindsight note and avoids every action listed in it."""
    sigma: float = 0.15
    """Standard deviation of the judge's noise on [0, 1]."""
    deceive: float = 0.2
    """Probability the judge rates a state that is off track as if it were on track."""
    sticky: bool = False
    """Deception as fixed blind spots: each wrong action is one with probability `deceive`, and every state
    after it is misjudged the same way (harsher than the research note's independent draw per judgement)."""
    fp: float = 0.1
    """Probability the checks pass on a wrong state (fixed per state)."""
    fn: float = 0.05
    """Probability the checks fail on the correct state (per run: flaky)."""


@dataclass
class Task:
    """One hidden chain: the correct actions per step, the policy's favourite mistakes, the judge's blind spots."""

    name: str
    length: int
    correct: list[frozenset[str]]
    mistakes: list[list[str]]
    """Wrong actions per step, most tempting first (the Zipf rank)."""
    blind: list[dict[str, float]]
    """A uniform draw per (step, wrong action): a blind spot of a sticky judge when below `deceive`."""
    salt: int

    @classmethod
    def generate(cls, name: str, rng: random.Random, *, length: int = 6, actions: int = 12) -> Task:
        names = [f"a{i}" for i in range(actions)]
        correct, mistakes, blind = [], [], []
        for _ in range(length):
            good = frozenset(rng.sample(names, rng.choice((1, 2))))
            wrong = [a for a in names if a not in good]
            rng.shuffle(wrong)
            correct.append(good)
            mistakes.append(wrong)
            blind.append({a: rng.random() for a in wrong})
        return cls(name, length, correct, mistakes, blind, rng.getrandbits(32))

    def on_track(self, state: State) -> bool:
        return all(a in self.correct[d - 1] for d, a in state)

    def solved(self, state: State) -> bool:
        return len(state) == self.length and self.on_track(state)

    def checks_pass(self, state: State, noise: Noise, rng: random.Random) -> bool:
        if self.solved(state):
            return rng.random() >= noise.fn
        if not state:
            return False  # a task starts with failing checks
        return random.Random(f"{self.salt}:{state}").random() < noise.fp


@dataclass
class World:
    """The live simulated state the Sandbox changes and the Workspace snapshots."""

    task: Task
    noise: Noise
    rng: random.Random
    state: State = ()
    check_log: list[State] = field(default_factory=list)
    """The state at every run of the checks."""


class SimSandbox:
    """A Sandbox whose `bash -c` understands `step <d> <action>`, `inspect` and the task's check command."""

    def __init__(self, world: World, workspace: Path) -> None:
        self.world, self.workspace = world, workspace

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        timeout: float = 120.0,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        limits: OutputLimits | None = None,
        keep_background: bool = False,
    ) -> ExecResult:
        script = argv[-1]
        code, output = self.execute(script.split("\n", 1)[0].strip())
        marker = _CWD_MARKER.search(script)
        if marker:  # what the shell tool's trailer would print: the directory after the command
            output += f"\n{marker.group(1)}{cwd or self.workspace}\n"
        return ExecResult(exit_code=code, output=output, duration_s=0.001)

    def execute(self, command: str) -> tuple[int, str]:
        world = self.world
        step = _STEP.match(command)
        if step:
            depth, action = int(step.group(1)), step.group(2)
            if depth != len(world.state) + 1 or depth > world.task.length:
                return 2, f"step: expected step {len(world.state) + 1}, got {depth}\n"
            world.state = (*world.state, (depth, action))
            return 0, f"applied {action} at step {depth}\n"
        if command == "inspect":
            return 0, f"{len(world.state)} of {world.task.length} steps applied\n"
        if command == CHECK_COMMAND:
            world.check_log.append(world.state)
            if world.task.checks_pass(world.state, world.noise, world.rng):
                return 0, "1 passed in 0.01s\n"
            return 1, "FAILED test_task - AssertionError\n1 failed in 0.01s\n"
        return 127, f"bash: {command.split(' ', 1)[0]}: command not found\n"

    def start_background(
        self, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> BackgroundProcess:
        raise BackgroundError("the simulated sandbox runs no background processes")

    def background(self) -> list[BackgroundProcess]:
        return []

    def stop_background(self, process_id: str | None = None) -> None:
        return None

    def describe(self) -> dict[str, object]:
        return {"kind": "simulated", "isolated": True}

    def close(self) -> None:
        return None


class SimWorkspace:
    """A Workspace whose snapshots are the applied action sequence, kept in memory."""

    def __init__(self, world: World, root: Path) -> None:
        self.world, self.root = world, root
        self.states: dict[str, State] = {}

    def snapshot(self, label: str = "") -> str:
        snapshot_id = f"sim{len(self.states)}"
        self.states[snapshot_id] = self.world.state
        return snapshot_id

    def restore(self, snapshot_id: str) -> None:
        self.world.state = self.states[snapshot_id]

    def changed_paths(self, a: str, b: str | None = None) -> list[str]:
        return [c.path for c in self._changes(a, b)]

    def diff(self, a: str, b: str | None = None) -> WorkspaceDiff:
        new = self.world.state if b is None else self.states[b]
        patch = "".join(f"+step {d} {action}\n" for d, action in new if (d, action) not in self.states[a])
        return WorkspaceDiff(files=tuple(self._changes(a, b)), patch=patch)

    def describe(self) -> dict[str, object]:
        return {"kind": "simulated", "root": str(self.root)}

    def _changes(self, a: str, b: str | None) -> list[FileChange]:
        old, new = dict(self.states[a]), dict(self.world.state if b is None else self.states[b])
        changes = []
        for depth in sorted(old.keys() | new.keys()):
            if old.get(depth) != new.get(depth):
                status = "added" if depth not in old else "deleted" if depth not in new else "modified"
                changes.append(FileChange(f"sim/step{depth}", status))
        return changes
