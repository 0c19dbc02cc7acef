"""Untrusted text made inert for a terminal: nothing a model, a command or a repository wrote can move the
cursor, rewrite a line, retitle the window, write the clipboard (OSC 52) or reorder what a person reads.

Control characters (C0 and C1, DEL), Unicode format characters (bidirectional overrides and isolates,
zero-width characters, invisible tag characters) and line/paragraph separators are shown as escapes
(`\\x1b`, `\\u202e`); newlines and tabs are kept unless the text must stay on one line.
"""

from __future__ import annotations

import re

_INVISIBLE = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 (but tab and newline), DEL, C1 (CSI 0x9b, OSC 0x9d, ...)
    "\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000e0000-\U000e007f"  # tag characters: invisible text
)
_UNSAFE = re.compile(f"[{_INVISIBLE}]")
_UNSAFE_LINE = re.compile(f"[{_INVISIBLE}\t\n]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def inert(text: str, *, one_line: bool = False) -> str:
    """`text` with every character a terminal would act on shown as an escape instead."""
    return (_UNSAFE_LINE if one_line else _UNSAFE).sub(_escape, text)


def has_hidden(text: str) -> bool:
    """Whether `inert` would change this text (it carries control or invisible characters)."""
    return _UNSAFE.search(text) is not None
