"""The repository map as a section of the system prompt, personalised to the task, the plan and recent steps."""

from __future__ import annotations

from collections.abc import Sequence

from branchwise.tools.repomap.service import RepoMap
from branchwise.tools.repomap.tokens import default_counter

INTRO = "The repository map below lists the files and definitions most relevant to the task (line│source).\n"


def map_section(
    index: RepoMap, budget: int, *, task: str, plan: str = "", recent: Sequence[str] = (), paths: Sequence[str] = ()
) -> str:
    """The map with its one-line introduction, at most `budget` tokens in all; "" when nothing fits."""
    if budget <= 0:
        return ""
    intro = default_counter().count(INTRO)
    text = "\n".join(part for part in (task, plan, *recent) if part)
    result = index.build(budget - intro, text=text, paths=paths)
    return INTRO + result.text if result.text else ""
