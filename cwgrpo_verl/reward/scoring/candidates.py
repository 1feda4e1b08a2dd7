"""Where the answer may be: lighteval's candidate matches, in the order it tries them, over the whole text.

Written from lighteval's documented behaviour and checked against its verdicts (``tests/test_reward_parity.py``);
every scan is linear in the text (docs/reward.md, "Where it departs from lighteval, and why"). Follows
``lazy_expr_regex``, ``lazy_latex_regex``, ``get_extraction_regexes`` and ``extract_target_from_pred`` of
``src/lighteval/metrics/utils/extractive_match_utils.py`` at lighteval ed084813: https://github.com/huggingface/lighteval/blob/ed084813e0bd12d82a06d9f913291fdbee774905/src/lighteval/metrics/utils/extractive_match_utils.py
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import cached_property
from itertools import groupby
from typing import Iterator

#: Longest run of expression characters read as one expression. Longer runs are cut
#: into pieces of this length; lighteval would read them whole (and could backtrack for minutes).
MAX_EXPR_RUN = 200

_MASK = "\x01"  # replaces the backslash of an opener that cannot close; matched by no pattern

# ---------------------------------------------------------------------------------------------- expressions

_OPS = r"\+\-\*\×\/\^\(\)\÷"
_EXPR_CHAR = rf"[\d\.\s{_OPS}]"
_NUMBER = (
    r"(?:(?P<integer1>-?\d{1,3}(?:[ ,]\d{3})+)(?P<decimal1>\.\d+)?"
    r"|(?P<integer2>-?\d+)(?P<decimal2>[.,]\d+)"
    r"|(?P<decimal3>\.\d+)"
    r"|(?P<integer3>-?\d+))"
    r"(?P<percent>\s*(?:%|[Pp]ercent|\s*[Pp]ercentage|\s*[Pp]ct))?"
)
_EXPR = rf"(?P<expr>-?\(?-?\d{_EXPR_CHAR}*[{_OPS}]{_EXPR_CHAR}+\)?)"
_CURRENCY = re.escape("$€£¥₹₽₪₩₫฿₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₴₵₶₷₸₹₺₻₼₽₾₿")  # noqa: E501
_BEFORE = r"(?:^|\s|\=)(?:\*\*)?"
_AFTER = r"(?:\*\*)?(?:\.|,|:|\s|\)|\$|$)"
_EXPR_ANCHORED = rf"(?:{_BEFORE}{_EXPR}{_AFTER})"
_NUMBER_ANCHORED = rf"(?:{_BEFORE}[{_CURRENCY}]?{_NUMBER})"
_EXPR_OR_NUMBER = rf"(?:{_EXPR_ANCHORED}|{_NUMBER_ANCHORED})"
_EXPR_PATTERNS = [
    (0, rf"(?i:final answer is)\:?\s*{_EXPR_OR_NUMBER}\.?\s?I hope"),
    (50, rf"(?i:final answer.{{0,100}}?)\s+is\:?{_EXPR_OR_NUMBER}"),
    (100, rf"(?i:answer)\:(?:.{{0,100}}=\s*|.{{0,50}}?){_EXPR_OR_NUMBER}(?!\s*=)"),
    (200, rf"(?i:answer)(?:.{{0,100}}=\s*|.{{0,50}}?){_EXPR_OR_NUMBER}(?!\s*=)"),
    (300, _EXPR_ANCHORED),
    (300, _NUMBER_ANCHORED),
]


# ---------------------------------------------------------------------------------------------- LaTeX


def _env(prefix: str, boxed: bool) -> str:
    """One LaTeX environment ($$..$$, \\[..\\], $..$, \\(..\\), " [..] ", or a plain \\frac) plus a percent sign."""
    bodies = {
        "DisplayDollar": r"(?:[^$]|\$(?!\$))",
        "DisplayBracket": r"(?:[^\\]|\\(?!\]))",
        "InlineDollar": r"(?:\\[$]|[^\n$])",
        "InlineParenthesis": r"(?:[^\\\n]|\\(?!\)))",
        "InlineBracket": r"[^\n\]\[]",
    }
    g = {k: f"(?P<{prefix}latex{k}>" + (rf"{v}*?\\boxed{{{v}+?}}{v}*?" if boxed else rf"{v}+?") + ")"
         for k, v in bodies.items()}
    alts = [
        rf"(?<!\\)\$\${g['DisplayDollar']}(?<!\\)\$\$",
        rf"(?<!\\)\\\[{g['DisplayBracket']}(?<!\\)\\\]",
        rf"(?<!\\|\d)\${g['InlineDollar']}(?<!\\)\$",
        rf"(?<!\\)\\\({g['InlineParenthesis']}(?<!\\)\\\)",
        rf"\s\[{g['InlineBracket']}\]\s",
    ]
    if not boxed:
        number = r"-?\d+(?:[.,]\d+)?"
        alts.append(rf"(?P<{prefix}latexFraction>-?\\frac{{{number}}}{{{number}}})")
    percent = rf"(?P<{prefix}percent>(?:\\?%|[Pp]ercent|[Pp]ercentage|[Pp]ct))"
    return rf"(?:(?:{'|'.join(alts)})\s*{percent}?)"


def _envs(boxed: bool) -> str:
    """Up to six environments joined by "and", "or" or commas (one answer with several parts)."""
    rest = "".join(rf"(?:\s*(?:and|or|,)\s*{_env(f'next{i}_', boxed)})?" for i in range(1, 6))
    return _env("first_", boxed) + rest


_ENVS = _envs(False)
_BOXED_ENVS = _envs(True)
_BOXED = r"(?P<first_latexBoxed>\\boxed{.+})"
_LATEX_PATTERNS = [
    (0, rf"(?i:final answer is)\:?\s*{_ENVS}\.?\s?I hope"),
    (50, rf"(?i:final answer.{{0,100}}?)\s+is\:?\s*{_ENVS}"),
    (100, rf"(?i:answer)\:.{{0,50}}?{_ENVS}"),
    (200, rf"(?i:answer).{{0,50}}?{_ENVS}"),
    (300, _ENVS),
]


# ---------------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern: its priority, the target kind ("latex"/"expr") and what it needs to be fast."""

    priority: int
    kind: str
    regex: re.Pattern
    boxed_env: bool = False  # only worth trying at environments that contain \boxed{
    ends_with_brace: bool = False  # a match ends at a "}"


def compile_targets(kinds: tuple[str, ...], boxed_priority: int = 55, without_anchor: bool = True) -> list[Pattern]:
    """Patterns of the given targets ("latex" first, then "expr", as lighteval orders them), by priority;
    ``without_anchor=False`` leaves out the plain environments and numbers (priority 300)."""
    out: list[Pattern] = []
    if "latex" in kinds:
        latex = [(prio, src) for prio, src in _LATEX_PATTERNS if without_anchor or prio < 300]
        out += [Pattern(prio, "latex", re.compile(src, re.DOTALL), boxed_env=src == _BOXED_ENVS,
                        ends_with_brace=src == _BOXED)
                for prio, src in latex + [(boxed_priority, _BOXED_ENVS), (boxed_priority, _BOXED)]]
    if "expr" in kinds:
        out += [Pattern(prio, "expr", re.compile(src)) for prio, src in _EXPR_PATTERNS if without_anchor or prio < 300]
    out.sort(key=lambda p: p.priority)  # stable: latex before expr, list order within a kind
    return out


#: Prediction targets of the paper's metric: ExprExtractionConfig(), LatexExtractionConfig(boxed_match_priority=0).
PRED_TARGETS = compile_targets(("latex", "expr"), boxed_priority=0)
#: Gold targets: ExprExtractionConfig() for AIME/AMC, LatexExtractionConfig() (boxed priority 55) otherwise.
GOLD_TARGETS = {"expr": compile_targets(("expr",)), "latex": compile_targets(("latex",), boxed_priority=55)}


# ---------------------------------------------------------------------------------------------- scanning


class _Text:
    """The text, the same-length copies the patterns run on, and the positions of a few delimiters."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._positions: dict[str, list[int]] = {}

    @cached_property
    def latex(self) -> str:
        return _mask_unclosable(self.text)

    @cached_property
    def expr(self) -> str:
        return _cut_long_runs(self.text)

    def next(self, token: str, at: int) -> int | None:
        """The first position >= ``at`` where ``token`` starts in the scanned copy (occurrences may overlap)."""
        positions = self._positions.get(token)
        if positions is None:
            positions = self._positions[token] = [m.start() for m in re.finditer(f"(?={re.escape(token)})",
                                                                                   self.latex)]
        return _first_at(positions, at)


def _mask_unclosable(text: str) -> str:
    """Mask the backslash of every ``\\[`` and ``\\(`` that cannot close: an environment's body cannot pass the
    first ``\\]`` (``\\)`` or line end) after its opener, and a closing delimiter after a backslash does not
    close. Such openers open nothing; as content of another environment they are read from the original."""
    if "\\[" not in text and "\\(" not in text:
        return text
    chars = None
    bracket_closes = [m.start() for m in re.finditer(r"\\\]", text)]
    paren_closes = [m.start() for m in re.finditer(r"\\\)", text)]
    newlines = [m.start() for m in re.finditer("\n", text)]
    for opener in re.finditer(r"\\[\[(]", text):
        start = opener.start()
        if text[start + 1] == "[":
            close = _first_at(bracket_closes, start + 2)
            closes = close is not None and text[close - 1] != "\\"
        else:
            close, newline = _first_at(paren_closes, start + 2), _first_at(newlines, start + 2)
            closes = close is not None and (newline is None or close < newline) and text[close - 1] != "\\"
        if not closes:
            chars = chars or list(text)
            chars[start] = _MASK
    return text if chars is None else "".join(chars)


def _first_at(positions: list[int], at: int) -> int | None:
    i = bisect.bisect_left(positions, at)
    return positions[i] if i < len(positions) else None


_RUN = re.compile(rf"{_EXPR_CHAR}+")


def _cut_long_runs(text: str) -> str:
    """Break runs of expression characters longer than :data:`MAX_EXPR_RUN` every that many characters."""
    chars = None
    for m in _RUN.finditer(text):
        if m.end() - m.start() <= MAX_EXPR_RUN:
            continue
        chars = chars or list(text)
        for pos in range(m.start() + MAX_EXPR_RUN, m.end(), MAX_EXPR_RUN):
            chars[pos] = _MASK
    return text if chars is None else "".join(chars)


_ENV_OPENER = re.compile(r"\$|\\\[|\\\(|\s\[")
_INLINE_DOLLAR_BODY = re.compile(r"(?:\\[$]|[^\n$])*")
_INLINE_BRACKET_BODY = re.compile(r"[^\n\]\[]*")


def _boxed_env_matches(pattern: re.Pattern, t: _Text) -> Iterator[re.Match]:
    """``finditer`` of the boxed-environment pattern, attempted only at openers where it matches.

    Trying the pattern at every opener would cost, for each opener inside one environment (``\\[`` after
    ``\\[`` ...), a scan to its end for every ``\\boxed{`` in between: cubic in the text."""
    if "\\boxed{" not in t.text:
        return
    scan, pos = t.latex, 0
    for opener in _ENV_OPENER.finditer(scan):
        start = opener.start()
        if start >= pos and _holds_boxed_answer(scan, t, opener):
            m = pattern.match(scan, start)
            if m is not None:  # always, by the conditions checked
                yield m
                pos = m.end()


def _holds_boxed_answer(scan: str, t: _Text, opener: re.Match) -> bool:
    """Whether a boxed environment matches at ``opener``: the opener may open, its body (as far as the body's
    characters reach) ends at a closing delimiter that may close, and holds ``\\boxed{`` with a ``}`` at least
    one character after it."""
    start, token = opener.start(), opener.group()
    before = scan[start - 1] if start else ""
    if token == "$" and scan.startswith("$$", start):
        content, may_open = start + 2, before != "\\"
        end = t.next("$$", content)
    elif token == "$":
        content, may_open = start + 1, before != "\\" and not before.isdecimal()
        end = _INLINE_DOLLAR_BODY.match(scan, content).end()
        end = end if scan.startswith("$", end) else None
    elif token == "\\[":
        content, may_open = start + 2, before != "\\"
        end = t.next("\\]", content)
    elif token == "\\(":
        content, may_open = start + 2, before != "\\"
        end, newline = t.next("\\)", content), t.next("\n", content)
        end = None if end is None or (newline is not None and newline < end) else end
    else:  # whitespace and "[", closed by "]" and whitespace
        content, may_open = start + 2, True
        end = _INLINE_BRACKET_BODY.match(scan, content).end()
        return (scan.startswith("]", end) and scan[end + 1:end + 2].isspace()
                and _boxed_with_content(t, content, end))
    return may_open and end is not None and scan[end - 1] != "\\" and _boxed_with_content(t, content, end)


def _boxed_with_content(t: _Text, content: int, end: int) -> bool:
    box = t.next("\\boxed{", content)
    brace = None if box is None else t.next("}", box + 8)
    return brace is not None and brace < end


def _matches(p: Pattern, t: _Text) -> Iterator[re.Match]:
    if p.boxed_env:
        return _boxed_env_matches(p.regex, t)
    if p.ends_with_brace:
        return p.regex.finditer(t.latex, 0, t.latex.rfind("}") + 1)
    return p.regex.finditer(t.latex if p.kind == "latex" else t.expr)


def candidate_groups(text: str, patterns: list[Pattern]) -> Iterator[list[tuple[re.Match, str]]]:
    """Per priority group, lazily: every ``(match, kind)`` sorted as lighteval tries them (rightmost end first,
    then leftmost start; ties keep pattern order). Group contents must be read with :func:`group_text`."""
    t = _Text(text)
    for _, group in groupby(patterns, key=lambda p: p.priority):
        found = [(m, p.kind) for p in group for m in _matches(p, t)]
        found.sort(key=lambda x: (x[0].end(), -x[0].start()), reverse=True)
        yield found


def group_text(text: str, match: re.Match, name: str) -> str | None:
    """The named group of ``match`` read from the original text (matches run on same-length copies)."""
    start, end = match.span(name)
    return None if start < 0 else text[start:end]
