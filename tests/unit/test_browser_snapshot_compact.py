"""What the model reads of a page: refs only on elements it can act on, no cursor notes, no nameless wrappers,
and every ref it does see still names the element the full snapshot gives it."""

from __future__ import annotations

from branchwise.tools.browser.snapshot import compact, elements

FULL = """- generic [active] [ref=e1]:
  - navigation "Related" [ref=e2]:
    - heading "Navigation" [level=3] [ref=e3]
    - list [ref=e4]:
      - listitem [ref=e5]:
        - link "index" [ref=e6] [cursor=pointer]:
          - /url: ../genindex.html
  - generic [ref=e7]:
    - paragraph [ref=e8]: Some text
    - generic [ref=e9]:
      - button "Go" [ref=e10] [cursor=pointer]
  - textbox "Name" [ref=e11]: Ada
  - generic "labelled box" [ref=e12]: kept, it has a name"""


def test_compact_keeps_what_the_model_can_act_on_and_drops_the_rest() -> None:
    assert (
        compact(FULL)
        == """- navigation "Related":
  - heading "Navigation" [level=3]
  - list:
    - listitem:
      - link "index" [ref=e6]:
        - /url: ../genindex.html
- paragraph: Some text
- button "Go" [ref=e10]
- textbox "Name" [ref=e11]: Ada
- generic "labelled box": kept, it has a name"""
    )


def test_focus_moving_off_the_page_body_changes_one_line_not_the_indentation() -> None:
    after = FULL.replace("- generic [active] [ref=e1]:", "- generic [ref=e1]:").replace(
        'button "Go" [ref=e10]', 'button "Go" [active] [ref=e10]'
    )
    changed = [(a, b) for a, b in zip(compact(FULL).splitlines(), compact(after).splitlines(), strict=True) if a != b]
    assert changed == [('- button "Go" [ref=e10]', '- button "Go" [active] [ref=e10]')]


def test_every_ref_left_names_the_same_element_as_in_the_full_snapshot() -> None:
    full, short = elements(FULL), elements(compact(FULL))
    assert set(short) == {"e6", "e10", "e11"}
    assert all((short[r].role, short[r].name) == (full[r].role, full[r].name) for r in short)
    assert len(compact(FULL)) < 0.7 * len(FULL)
