"""Two families of related tasks on real git repositories, for the memory benchmark and its tests.

- `subcommand`: a small CLI project (notes) gets a new subcommand six times; each has a test waiting for it.
- `fix`: six modules of a geometry package share the same kind of bug (floor division where true division
  is meant); each task fixes one module's failing test.

Each family is one repository whose history grows task by task (the next task starts where the previous one
left off), so all tasks share the repository's root commit, which is what memory is scoped by.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

RUNNER = "python3 -m unittest tests.test_{module} -q"

CLI = '''"""The notes command line: one module per subcommand in notes/commands, registered in COMMANDS."""

from notes.commands import hello

COMMANDS = {
    "hello": hello.run,
}


def main(argv):
    name = argv[0] if argv else "hello"
    if name not in COMMANDS:
        raise SystemExit(f"unknown command {name}")
    return COMMANDS[name](argv[1:])
'''
HELLO = """def run(args):
    return "Hello!"
"""
SUBCOMMAND_TEST = """import unittest

from notes.cli import main


class Test{title}(unittest.TestCase):
    def test_prints_its_message(self):
        self.assertEqual(main(["{name}"]), "{message}")
"""
SUBCOMMANDS = [
    ("greet", "Hi there"),
    ("wave", "Bye now"),
    ("thank", "Thanks a lot"),
    ("cheer", "Hooray"),
    ("nod", "Noted"),
    ("ping", "Pong"),
]
# module, function, buggy expression, fixed expression, call, expected value
FIXES = [
    ("area", "triangle(b, h)", "b * h // 2", "b * h / 2", "triangle(3, 5)", "7.5"),
    ("perimeter", "semi(a, b, c)", "(a + b + c) // 2", "(a + b + c) / 2", "semi(3, 4, 6)", "6.5"),
    ("volume", "pyramid(b, h)", "b * h // 3", "b * h / 3", "pyramid(2, 5)", "10 / 3"),
    ("mean", "average(total, count)", "total // count", "total / count", "average(7, 2)", "3.5"),
    ("ratio", "share(part, whole)", "part // whole", "part / whole", "share(1, 4)", "0.25"),
    ("scale", "percent(value, factor)", "value * factor // 100", "value * factor / 100", "percent(5, 30)", "1.5"),
]


@dataclass
class FamilyTask:
    """One task of a family, with what the simulated agent knows about its solution (hidden from memory)."""

    family: str
    index: int
    prompt: str
    checks: list[str]
    values: dict[str, str] = field(default_factory=dict)


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return out.stdout


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(
        repo,
        "-c",
        "user.name=bench",
        "-c",
        "user.email=bench@example.invalid",
        "commit",
        "-q",
        "-m",
        message,
        "--allow-empty",
    )


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "init", "-q", "-b", "main")
    commit(path, "initial")
    return path


def subcommand_repo(path: Path) -> Path:
    files = {
        "README.md": "# notes\n\nA tiny command line for notes.\n",
        "notes/__init__.py": "",
        "notes/cli.py": CLI,
        "notes/commands/__init__.py": "",
        "notes/commands/hello.py": HELLO,
        "tests/__init__.py": "",
    }
    for name, message in SUBCOMMANDS:
        files[f"tests/test_{name}.py"] = SUBCOMMAND_TEST.format(title=name.title(), name=name, message=message)
    return make_repo(path, files)


def fix_repo(path: Path) -> Path:
    files = {
        "README.md": "# geometry\n\nSmall geometry helpers.\n",
        "geometry/__init__.py": "",
        "tests/__init__.py": "",
    }
    for module, signature, bug, _fix, call, expected in FIXES:
        files[f"geometry/{module}.py"] = f"def {signature}:\n    return {bug}\n"
        function = signature.split("(")[0]
        files[f"tests/test_{module}.py"] = (
            f"import unittest\n\nfrom geometry.{module} import {function}\n\n\n"
            f"class Test{module.title()}(unittest.TestCase):\n    def test_value(self):\n"
            f"        self.assertAlmostEqual({call}, {expected})\n"
        )
    return make_repo(path, files)


def subcommand_tasks() -> list[FamilyTask]:
    return [
        FamilyTask(
            "subcommand",
            i,
            f"Add a `{name}` subcommand to the notes CLI that prints `{message}`.",
            [RUNNER.format(module=name)],
            {"name": name, "message": message},
        )
        for i, (name, message) in enumerate(SUBCOMMANDS)
    ]


def fix_tasks() -> list[FamilyTask]:
    return [
        FamilyTask(
            "fix",
            i,
            f"The test `tests/test_{module}.py` fails. Fix the bug in `geometry/{module}.py` "
            "without changing the tests.",
            [RUNNER.format(module=module)],
            {"module": module, "bug": bug, "fix": fix},
        )
        for i, (module, _sig, bug, fix, _call, _expected) in enumerate(FIXES)
    ]


FAMILIES = {"subcommand": (subcommand_repo, subcommand_tasks), "fix": (fix_repo, fix_tasks)}
