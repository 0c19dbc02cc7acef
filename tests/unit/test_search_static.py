from __future__ import annotations

from branchwise.agent.search import value as V
from branchwise.agent.search.static import check_python


def test_syntax_errors_and_undefined_names_are_reported_per_file():
    syntax, lint = check_python(
        {
            "ok.py": b"import os\n\ndef f(x):\n    return x + 1\n",
            "typo.py": b"def f(x):\n    return y + x\n",
            "broken.py": b"def f(:\n",
        }
    )
    assert syntax == ["broken.py:1: invalid syntax"]
    assert lint == ["typo.py:2: undefined name 'y'"]  # the unused import in ok.py is not this check's business


def test_a_return_outside_a_function_is_a_syntax_error():
    assert check_python({"a.py": b"return 1\n"})[0] == ["a.py:1: 'return' outside function"]


def test_lint_problems_lower_the_reward_without_overriding_the_tests():
    clean = V.blend(V.Signals(tests=(5, 0)), None, finished=False, previous_tests=None)
    linted = V.blend(V.Signals(tests=(5, 0), lint_errors=["a.py:1: undefined name 'y'"]), None, finished=False,
                     previous_tests=None)  # fmt: skip
    assert clean == 1.0 and linted == clean - V.LINT_PENALTY
