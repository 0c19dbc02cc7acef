"""Making untrusted text inert before a person sees it: no terminal control sequences, no markup.

Anything a command printed, a model wrote or a repository planted (labels in a tree, task texts in a run log)
could otherwise move the cursor, redraw an approval prompt, retitle the window or write the clipboard.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (0x80-0x9f: a single-byte CSI is 0x9b), and the bidi
# overrides and isolates that make a line read differently from what it holds.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def inert(text: str) -> str:
    """`text` with every control character shown as a visible escape (\\x1b, \\r ...), tabs and newlines kept."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)
