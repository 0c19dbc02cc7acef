"""Tags of one fixture per language, against golden files (BRANCHWISE_UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from branchwise.tools.repomap.languages import LANGUAGES, definition_patterns, language_for
from branchwise.tools.repomap.tags import FileTags, extract, skip_reason

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "repomap"
GOLDEN = FIXTURES / "golden"
SAMPLES = sorted(p for p in FIXTURES.iterdir() if p.is_file())


def describe(tags: FileTags) -> str:
    """A readable, stable rendering of everything extracted from a file."""
    lines = [f"language: {tags.lang}; syntax errors: {tags.has_errors}"]
    for d in tags.defs:
        parent = tags.defs[d.parent].name if d.parent >= 0 else "-"
        lines.append(f"def {d.kind} {d.name} lines {d.line}-{d.end_line} in {parent}: {d.text.strip()}")
    for name in sorted(tags.refs):
        count, rows = tags.refs[name]
        lines.append(f"ref {name} x{count} at {','.join(map(str, rows))}")
    return "\n".join(lines) + "\n"


def test_every_supported_language_has_a_fixture():
    covered = {language_for(p.name).name for p in SAMPLES if language_for(p.name)}
    assert covered == {spec.name for spec in LANGUAGES}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_fixture_tags_match_golden(sample: Path):
    spec = language_for(sample.name)
    assert spec is not None
    tags = extract(sample.read_bytes(), spec.name)
    assert not tags.has_errors
    assert {d.kind for d in tags.defs} & {"class", "interface", "type", "module"}, "a type-like definition"
    assert any(d.kind in ("function", "method") for d in tags.defs), "a function or method"
    # Each fixture calls a helper it defines: the call is a reference, the definition is not.
    assert {"helper", "scale", "format", "Clean", "clean"} & set(tags.refs)
    golden = GOLDEN / f"{sample.name}.txt"
    text = describe(tags)
    if os.environ.get("BRANCHWISE_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_payload_round_trips():
    sample = FIXTURES / "sample.py"
    tags = extract(sample.read_bytes(), "python")
    again = FileTags.from_payload(tags.payload())
    assert again == tags


def test_methods_nest_under_their_class_and_definition_names_are_not_references():
    tags = extract(b"class A:\n    def run(self):\n        return run_all()\n\ndef run_all():\n    pass\n", "python")
    kinds = {(d.name, d.kind, tags.defs[d.parent].name if d.parent >= 0 else None) for d in tags.defs}
    assert kinds == {("A", "class", None), ("run", "method", "A"), ("run_all", "function", None)}
    assert tags.refs["run_all"] == (1, [3]) and "run" not in tags.refs and "A" not in tags.refs


def test_syntax_errors_still_yield_what_parses():
    tags = extract(b"def ok():\n    pass\n\ndef broken(:\n", "python")
    assert tags.has_errors and [d.name for d in tags.defs][:1] == ["ok"]


def test_binary_huge_and_minified_files_are_skipped():
    assert skip_reason("a.py", b"x\0y", 1000) == "binary"
    assert skip_reason("a.py", b"x" * 2000, 1000) == "too-large"
    assert skip_reason("lib/app.min.js", b"var a=1;", 1000) == "generated"
    assert skip_reason("bundle.js", b"var a=1;" * 5000, 1 << 20) == "generated"  # one 40 kB line
    assert skip_reason("a.py", b"x = 1\n" * 100, 1000) is None


def test_reference_patterns_are_dropped_from_tags_queries():
    source = "(a) @definition.x\n; a comment (with parens\n(call function: (identifier) @name) @reference.call\n"
    assert definition_patterns(source) == ["(a) @definition.x"]
