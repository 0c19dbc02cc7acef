"""The repository map of a real little repository: ranking, budget, cache, edits, ignore rules, tools."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from branchwise.sandbox.isolation.host import HostSandbox
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.tools import ToolBox, ToolContext, ToolError
from branchwise.tools.repomap.prompt import INTRO, map_section
from branchwise.tools.repomap.service import RepoMap
from branchwise.tools.repomap.tokens import default_counter
from branchwise.tools.repomap.tools import repomap_tools

FILES = {
    "shop/models.py": "class Order:\n    def total(self):\n        return sum_prices(self.lines)\n\n\n"
    "class Customer:\n    def orders(self):\n        return [Order()]\n",
    "shop/pricing.py": "def sum_prices(lines):\n    return sum(line.price for line in lines)\n\n\n"
    "def apply_discount(order, rate):\n    return order.total() * (1 - rate)\n",
    "shop/views.py": "from shop.models import Order, Customer\nfrom shop.pricing import apply_discount\n\n\n"
    "def checkout(customer_id):\n    order = Order()\n    return apply_discount(order, 0.1)\n",
    "web/app.js": "import { render } from './render.js';\nexport function start() { return render(); }\n",
    "web/render.js": "export function render() { return 'ok'; }\n",
    "build/generated.py": "def generated_helper():\n    pass\n",
    "secrets/keys.py": "def private_key_loader():\n    pass\n",
    ".gitignore": "build/\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    old = time.time() - 60  # older than the racy-mtime window, so unchanged files are trusted by stat
    for path in root.rglob("*"):
        os.utime(path, (old, old))
    return root


@pytest.fixture
def index(repo: Path, tmp_path: Path):
    m = RepoMap(repo, cache_path=tmp_path / "cache.sqlite", deny_read=["secrets"])
    yield m
    m.close()


def test_map_ranks_the_definitions_the_task_names_first(index):
    result = index.build(400, text="Fix the discount in `apply_discount`")
    lines = result.text.splitlines()
    assert lines[1] == "shop/pricing.py:"  # the file first, its lines in source order
    assert "5│def apply_discount(order, rate):" in lines[2:4]
    assert "shop/views.py:" in lines  # the file that uses it comes next
    assert result.tokens <= 400 and result.tokens == default_counter().count(result.text)


def test_map_is_never_over_budget(index):
    counter = default_counter()
    for budget in range(1, 400, 19):
        for text in ("", "checkout Order", "web/app.js render"):
            result = index.build(budget, text=text)
            assert counter.count(result.text) <= budget
            assert result.tokens <= budget


def test_ignored_and_hidden_files_stay_out(index, repo):
    text = index.build(2000).text
    assert "shop/models.py" in text and "web/render.js" in text
    assert "generated_helper" not in text and "build/" not in text  # .gitignore
    assert "private_key_loader" not in text and "secrets" not in text  # deny_read
    assert index.outline("secrets/keys.py") == (None, "hidden by deny_read")


def test_a_file_edited_in_the_session_shows_in_the_next_map(index, repo):
    assert "refund" not in index.build(2000).text
    with open(repo / "shop/pricing.py", "a") as f:
        f.write("\n\ndef refund(order):\n    return -order.total()\n")
    assert "def refund(order):" in index.build(2000, text="refund").text
    (repo / "shop/views.py").unlink()
    assert "shop/views.py" not in index.build(2000).text
    assert [p for p, _ in index.find_symbol("refund")] == ["shop/pricing.py"]


def test_a_second_session_reuses_the_cache(repo, tmp_path, index):
    index.build(500)
    assert index.stats.parsed == 5
    again = RepoMap(repo, cache_path=tmp_path / "cache.sqlite", deny_read=["secrets"])
    try:
        result = again.build(500)
        assert result.stats.parsed == 0 and result.stats.reused == 5
        assert result.text == index.build(500).text
    finally:
        again.close()


def test_prompt_section_counts_its_introduction(index):
    counter = default_counter()
    section = map_section(index, 120, task="checkout")
    assert section.startswith(INTRO) and counter.count(section) <= 120
    assert map_section(index, 5, task="checkout") == ""


@pytest.fixture
def ctx(repo: Path):
    sandbox = HostSandbox(repo)
    yield ToolContext(sandbox=sandbox, fs=WorkspaceFS(repo))
    sandbox.close()


def test_tools_answer_from_the_index(index, ctx):
    box = ToolBox(repomap_tools(index, default_tokens=300))

    def call(tool: str, **args):
        return box.get(tool).run(box.parse_args(tool, args), ctx)

    assert call("find_symbol", name="total").output == "shop/models.py:2: method in Order: def total(self):"
    refs = call("find_references", name="Order").output.splitlines()
    assert refs == ["shop/views.py: 2 uses, lines 1, 6", "shop/models.py: 1 use, lines 8"]
    assert call("outline", path="shop/models.py").output.splitlines() == [
        "shop/models.py:",
        "1│class Order:",
        "2│    def total(self):",
        "6│class Customer:",
        "7│    def orders(self):",
    ]
    mapped = call("repo_map", symbols=["render"])
    assert mapped.output.splitlines()[1] == "web/render.js:" and mapped.data["tokens"] <= 300
    with pytest.raises(ToolError, match="similar names: sum_prices"):
        call("find_symbol", name="sum_price")
    # An ignored file has no place in the map, but its outline can still be asked for.
    assert "generated_helper" in call("outline", path="build/generated.py").output
    for tool in box.tools.values():
        assert tool.effect == "read" and tool.output_source == "file"


@pytest.mark.slow
def test_the_process_pool_gives_the_same_tags(tmp_path: Path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(330):  # above the pool threshold
        (root / f"mod{i}.py").write_text(f"def f{i}():\n    return f{(i + 1) % 330}()\n")
    pooled = RepoMap(root, cache_path=tmp_path / "a.sqlite", workers=2)
    serial = RepoMap(root, cache_path=tmp_path / "b.sqlite", workers=1)
    try:
        assert pooled.build(800).text == serial.build(800).text
        assert pooled.stats.parsed == serial.stats.parsed == 330
    finally:
        pooled.close()
        serial.close()
