"""Where the answer may be: lighteval's candidate matches, in the order it tries them, over the whole text.

The paper scored with lighteval's ``extractive_match`` at commit ed084813. It finds answers with regular
expressions in five priority groups (0: ``\\boxed{}`` and "final answer is ... I hope", 50: "final answer ...
is", 100: "answer:", 200: "answer", 300: any LaTeX environment or number), tries the matches of a group from
the rightmost end, and stops at the first group where one parses. The expressions here describe the same
language (written from the documented behaviour of that commit and checked against its verdicts by
``tests/test_reward_parity.py``). Only the groups that are needed are scanned, and every scan is linear in the
text on realistic and adversarial input alike:

* openers that can never close (``\\[`` with no ``\\]`` after it, ``\\(`` with no ``\\)`` later on its line)
  are masked in a same-length copy of the text, so no attempt scans to the end of the text for each of them;
* runs of more than :data:`MAX_EXPR_RUN` expression characters (digits, spaces, operators) are cut for the
  expression patterns, whose nested repetition would otherwise backtrack polynomially on such runs;
* an environment is only tried as a "boxed environment" when a ``\\boxed{`` lies between its delimiters.

Match positions are those of the original text (the copies have its length), and matched strings are read
from the original text.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
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


def _expr_patterns(without_anchor: bool = True) -> list[tuple[int, str]]:
    pats = [
        (0, rf"(?i:final answer is)\:?\s*{_EXPR_OR_NUMBER}\.?\s?I hope"),
        (50, rf"(?i:final answer.{{0,100}}?)\s+is\:?{_EXPR_OR_NUMBER}"),
        (100, rf"(?i:answer)\:(?:.{{0,100}}=\s*|.{{0,50}}?){_EXPR_OR_NUMBER}(?!\s*=)"),
        (200, rf"(?i:answer)(?:.{{0,100}}=\s*|.{{0,50}}?){_EXPR_OR_NUMBER}(?!\s*=)"),
    ]
    if without_anchor:
        pats += [(300, _EXPR_ANCHORED), (300, _NUMBER_ANCHORED)]
    return pats


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
    if boxed:
        bodies = {k: rf"{v}*?\\boxed{{{v}+?}}{v}*?" for k, v in bodies.items()}
    else:
        bodies = {k: rf"{v}+?" for k, v in bodies.items()}
    g = {k: f"(?P<{prefix}latex{k}>{v})" for k, v in bodies.items()}
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


def _latex_patterns(boxed_priority: int, without_anchor: bool = True) -> list[tuple[int, str]]:
    envs = _envs(False)
    pats = [
        (0, rf"(?i:final answer is)\:?\s*{envs}\.?\s?I hope"),
        (50, rf"(?i:final answer.{{0,100}}?)\s+is\:?\s*{envs}"),
        (100, rf"(?i:answer)\:.{{0,50}}?{envs}"),
        (200, rf"(?i:answer).{{0,50}}?{envs}"),
    ]
    if without_anchor:
        pats.append((300, envs))
    if boxed_priority >= 0:
        pats.append((boxed_priority, _envs(True)))
        pats.append((boxed_priority, r"(?P<first_latexBoxed>\\boxed{.+})"))
    return pats


# ---------------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern: its priority, the target kind ("latex"/"expr") and what it needs to be fast."""

    priority: int
    kind: str
    regex: re.Pattern
    boxed_env: bool = False  # only worth trying at environments that contain \boxed{


def compile_targets(kinds: tuple[str, ...], boxed_priority: int = 55) -> list[Pattern]:
    """Patterns of the given targets ("latex" first, then "expr", as lighteval orders them), by priority."""
    out: list[Pattern] = []
    for kind in ("latex", "expr"):
        if kind not in kinds:
            continue
        if kind == "latex":
            boxed_env = _envs(True)
            for prio, src in _latex_patterns(boxed_priority):
                out.append(Pattern(prio, kind, re.compile(src, re.DOTALL), boxed_env=src == boxed_env))
        else:
            for prio, src in _expr_patterns():
                out.append(Pattern(prio, kind, re.compile(src)))
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
        self._latex: str | None = None
        self._expr: str | None = None
        self._boxed: list[int] | None = None

    @property
    def latex(self) -> str:
        if self._latex is None:
            self._latex = _mask_unclosable(self.text)
        return self._latex

    @property
    def expr(self) -> str:
        if self._expr is None:
            self._expr = _cut_long_runs(self.text)
        return self._expr

    def boxed_between(self, start: int, end: int) -> bool:
        if self._boxed is None:
            self._boxed = [m.start() for m in re.finditer(r"\\boxed\{", self.text)]
        i = bisect.bisect_left(self._boxed, start)
        return i < len(self._boxed) and self._boxed[i] < end


def _mask_unclosable(text: str) -> str:
    """Mask the backslash of every ``\\[`` after the last ``\\]`` and every ``\\(`` with no ``\\)`` after it
    on its line. They can open no environment; as content of another one they are read from the original."""
    if "\\[" not in text and "\\(" not in text:
        return text
    chars = None
    last_close = text.rfind("\\]")
    pos = text.find("\\[", last_close + 1 if last_close >= 0 else 0)
    while pos >= 0:
        chars = chars or list(text)
        chars[pos] = _MASK
        pos = text.find("\\[", pos + 2)
    line_start = 0
    while line_start <= len(text):
        line_end = text.find("\n", line_start)
        line_end = len(text) if line_end < 0 else line_end
        close = text.rfind("\\)", line_start, line_end)
        pos = text.find("\\(", max(line_start, close + 1) if close >= 0 else line_start, line_end)
        while pos >= 0:
            chars = chars or list(text)
            chars[pos] = _MASK
            pos = text.find("\\(", pos + 2, line_end)
        line_start = line_end + 1
    return text if chars is None else "".join(chars)


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


def _boxed_env_matches(pattern: re.Pattern, t: _Text) -> Iterator[re.Match]:
    """``finditer`` of the boxed-environment pattern, attempted only where a ``\\boxed{`` can be inside."""
    if "\\boxed{" not in t.text:
        return
    scan, pos = t.latex, 0
    for opener in _ENV_OPENER.finditer(scan):
        start = opener.start()
        if start < pos:
            continue
        if not t.boxed_between(start, _env_limit(scan, opener)):
            continue
        m = pattern.match(scan, start)
        if m is not None:
            yield m
            pos = m.end()


def _env_limit(scan: str, opener: re.Match) -> int:
    """An upper bound of where the environment opened here can close (its content cannot pass it)."""
    start, tok = opener.start(), opener.group()
    if tok == "$":
        if scan.startswith("$$", start):
            end = scan.find("$$", start + 2)
            return len(scan) if end < 0 else end
        end = scan.find("\n", start)
        return len(scan) if end < 0 else end
    if tok == "\\[":
        end = scan.find("\\]", start + 2)
        return len(scan) if end < 0 else end
    end = scan.find("\n", start + 1)
    return len(scan) if end < 0 else end


def _matches(p: Pattern, t: _Text) -> Iterator[re.Match]:
    if p.boxed_env:
        return _boxed_env_matches(p.regex, t)
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
