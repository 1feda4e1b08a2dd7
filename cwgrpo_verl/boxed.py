"""The one ``\\boxed{}`` reader: brace matching shared by the reward's lighteval port and the data's gold rule.

Standard library only, so data prep and the reward workers import it without verl, torch or sympy.
"""

from __future__ import annotations

import re

_BOX_SEPARATOR = re.compile(r"^\s*(?:and|or|,)\s*$")
_BOX_COMMAND = re.compile(r"\\(boxed|fbox|framebox)\s*")


def closing_brace(text: str, opening: int, limit: int, escapes: bool = False) -> int | None:
    """Index of the ``}`` that closes the ``{`` at ``opening`` (before ``limit``), or None.
    ``escapes``: ``\\{`` and ``\\}`` are literal braces, not grouping."""
    depth = 0
    for i in range(opening, limit):
        if escapes and i > 0 and text[i - 1] == "\\":
            continue
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def boxed_contents(text: str, last: bool) -> str:
    """lighteval's (latex2sympy2_extended 1.0.6) rule: the contents of the ``\\boxed{}``/``\\fbox{}`` of ``text``,
    right to left, joined by commas (the text itself if there is none). ``last``: only the rightmost, plus the
    ones before it joined by "and", "or" or a comma. An unclosed box yields the rest of the text when it is the
    rightmost."""
    results: list[str] = []
    limit, prev_start = len(text), None
    while True:
        boxed, fbox = text.rfind("\\boxed", 0, limit), text.rfind("\\fbox", 0, limit)
        start = max(boxed, fbox)
        if start < 0:
            break
        brace = start + (6 if boxed > fbox else 5)
        while brace < limit and text[brace].isspace():
            brace += 1
        if brace >= limit:
            break
        close = closing_brace(text, brace, limit) if text[brace] == "{" else None
        if close is None:
            if not results:
                results.append(text[brace:])
            break
        if last and prev_start is not None and not _BOX_SEPARATOR.match(text[close + 1 : prev_start]):
            break
        results.append(text[brace + 1 : close].strip())
        prev_start = limit = start
    return ",".join(reversed(results)) if results else text


def last_boxed(text: str) -> str | None:
    """The data's gold rule: the content of the last balanced ``\\boxed{...}`` (or ``\\fbox``/``\\framebox``, or
    ``\\boxed 5``), escaped braces taken literally; None when there is none or it is empty."""
    if not isinstance(text, str):
        return None
    for m in reversed(list(_BOX_COMMAND.finditer(text))):
        i = m.end()
        if i < len(text) and text[i] == "{":
            close = closing_brace(text, i, len(text), escapes=True)
            if close is None:
                continue  # unbalanced: try an earlier one
            return text[i + 1 : close].strip() or None
        if m.group(1) == "boxed" and m.group(0).endswith(" "):
            rest = re.match(r"[^\s$.,;]+", text[i:])
            if rest:
                return rest.group(0)
    return None
