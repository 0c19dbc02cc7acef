"""`branchwise tree --html` shows a browser step's page: its URL as inert text and its picture as a data: image,
read only from a plain JPEG or PNG in the run's browser/ directory."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from branchwise.agent.record.events import ToolCallRecord
from branchwise.agent.search.actions import page_seen
from branchwise.agent.search.tree import Node, SearchTree
from branchwise.cli.commands.tree import render_html
from branchwise.tools import Observation

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 60


def tree_with(*pictures: tuple[str | None, str | None]) -> SearchTree:
    tree = SearchTree(strategy="best-of-n")
    tree.add(Node(id=0, action="(start)"))
    for url, picture in pictures:
        tree.add(Node(id=0, parent=0, action="browser_navigate", url=url, screenshot=picture))
    return tree


def images(page: str) -> list[str]:
    return re.findall(r'<img class=page alt="[^"]*" src="([^"]*)">', page)


def test_a_browser_node_shows_its_url_and_an_embedded_thumbnail(tmp_path: Path) -> None:
    (tmp_path / "browser").mkdir()
    (tmp_path / "browser" / "thumb-1.jpg").write_bytes(JPEG)
    (tmp_path / "browser" / "shot-1.png").write_bytes(PNG)
    tree = tree_with(("http://127.0.0.1:8000/b.html", "browser/thumb-1.jpg"), ("http://x/", "browser/shot-1.png"))
    page = render_html([("search tree", tree)], "r1", tmp_path)
    assert "page: http://127.0.0.1:8000/b.html" in page
    assert images(page) == [
        "data:image/jpeg;base64," + base64.b64encode(JPEG).decode(),
        "data:image/png;base64," + base64.b64encode(PNG).decode(),
    ]
    assert "<script" not in page and "default-src 'none'" in page


def test_a_tree_file_cannot_embed_other_files_or_markup(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "browser").mkdir(parents=True)
    (tmp_path / "secret.jpg").write_bytes(JPEG)
    (run / "browser" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (run / "browser" / "page.png").write_bytes(b"<svg onload=alert(1)>")  # not a PNG, whatever its name
    hostile = '"><script>alert(1)</script>\x1b[2J'
    tree = tree_with(
        (hostile, "browser/../../secret.jpg"),
        ("http://a/", "/etc/passwd"),
        ("http://b/", "browser/link.jpg"),
        ("http://c/", "browser/page.png"),
        ("http://d/", "browser/missing.jpg"),
    )
    page = render_html([("search tree", tree)], "r1", run)
    assert images(page) == []
    assert "<script>" not in page and "\x1b" not in page
    assert "&quot;&gt;&lt;script&gt;" in page


def test_page_seen_takes_the_last_browser_url_and_prefers_the_models_screenshot(tmp_path: Path) -> None:
    def call(name: str) -> ToolCallRecord:
        return ToolCallRecord(id="c", name=name, arguments={})

    shot, thumb = tmp_path / "browser" / "shot-1.png", tmp_path / "browser" / "thumb-2.jpg"
    results = [
        (call("browser_navigate"), Observation("", data={"url": "http://a/", "thumbnail": str(thumb)})),
        (call("browser_screenshot"), Observation("", data={"url": "http://a/#x", "image": str(shot)})),
        (call("shell"), Observation("", data={"url": "http://not-a-page/"})),
        (call("browser_click"), Observation("failed", is_error=True, data={"url": "http://b/"})),
    ]
    assert page_seen(results, tmp_path) == ("http://a/#x", "browser/shot-1.png")
    assert page_seen(results[:1], tmp_path) == ("http://a/", "browser/thumb-2.jpg")
    assert page_seen(results[:1], tmp_path / "elsewhere") == ("http://a/", None)
    assert page_seen(results[2:3], tmp_path) == (None, None)
