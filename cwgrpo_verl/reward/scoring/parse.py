"""From a candidate match to a value: lighteval's extraction step (commit ed084813) on today's parser.

The parser is latex2sympy2_extended 1.11 (math-verify 0.9's pin), not the paper's 1.0.6; :func:`normalize` and
:func:`parse_latex` redo the steps whose behaviour changed since (docs/reward.md).

Follows ``extract_expr``, ``extract_latex`` and ``convert_to_pct`` of ``src/lighteval/metrics/utils/
extractive_match_utils.py`` at lighteval ed084813 (https://github.com/huggingface/lighteval/blob/ed084813e0bd12d82a06d9f913291fdbee774905/src/lighteval/metrics/utils/extractive_match_utils.py), with
latex2sympy2_extended 1.0.6's ``normalize_latex`` where lighteval called it.
"""

from __future__ import annotations

import re
from contextlib import suppress
from functools import lru_cache

import sympy
from latex2sympy2_extended import math_normalization as l2s_norm
from latex2sympy2_extended.latex2sympy2 import ConversionConfig, NormalizationConfig, latex2sympy, normalize_latex
from latex2sympy2_extended.sets import FiniteSet as L2SFiniteSet
from math_verify.grader import should_treat_as_complex
from sympy.parsing import parse_expr

from cwgrpo_verl.boxed import boxed_contents

from .candidates import group_text

# 1.11 steps that are kept: basic LaTeX clean-up, then (after lighteval's equation and unit steps) nits and
# malformed operators. Steps that changed since 1.0.6 are done here instead: \boxed extraction, "and"/"or",
# the word "percent", unit words (1.0.6 removed none), and symbol case (1.0.6 kept it).
_BASIC = NormalizationConfig(basic_latex=True, units=False, malformed_operators=False, nits=False, boxed="none")
_FIXES = NormalizationConfig(basic_latex=False, units=False, malformed_operators=True, nits=True, boxed="none")
_CONVERSION = ConversionConfig(lowercase_symbols=False)
_AND_OR = re.compile(r"(?<!\w)(?:and|or)(?!\w)|\\text\{\s*(?:and|or)\s*\}")
_PERCENT_WORD = re.compile(r"\s*percent|\\text\{percent\}")
_EMPTY_TEXT = re.compile(r"\\text\s*\{\s*\}")
_PERCENT_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*\\?%")


def percent_of(value):
    """``value %`` as lighteval wrote it: an unevaluated product with 1/100."""
    return sympy.Mul(value, sympy.Rational(1, 100), evaluate=False)


def normalize(latex: str, boxed_last: bool, fixes: bool = True) -> str:
    """1.0.6's ``normalize_latex`` as lighteval (and math-verify 0.5.2's ``LatexExtractionConfig()``) configured
    it: boxed contents, basic LaTeX, equations, units, and with ``fixes`` nits and malformed operators (the
    authors' training prediction turns both off). The word "percent" becomes 1.0.6's ``\\\\%``, which parses
    as nothing."""
    text = boxed_contents(latex, last=boxed_last)
    text = _PERCENT_WORD.sub(lambda _: "\\\\%", _AND_OR.sub(";", text))
    text = normalize_latex(text, _BASIC)
    if "," not in text and ";" not in text:  # "a = b = c" -> "c"; "a=1, b=2" stays
        parts = l2s_norm.equation_split_regex.split(text)
        if len(parts) > 2:
            text = parts[-1]
    text = l2s_norm.unit_superscript_regex.sub("", text).strip() or text  # a trailing \text{unit}, maybe squared
    text = _EMPTY_TEXT.sub(" ", text)
    return normalize_latex(text, _FIXES) if fixes else text


@lru_cache(maxsize=256)
def parse_latex(latex: str):
    """sympy value of a normalised LaTeX string (raises when it does not parse).

    Numbers followed by a percent sign are parsed here (1.11 fails on them, and writes 1/100 differently)."""
    is_real = not should_treat_as_complex(latex)
    percents: dict[str, str] = {}
    if "%" in latex:

        def placeholder(m: re.Match) -> str:
            name = f"cwgrpopercent{len(percents)}"
            percents[name] = m.group(1)
            return f"\\text{{{name}}}"

        latex = _PERCENT_NUMBER.sub(placeholder, latex)
    value = latex2sympy(
        latex, is_real=is_real, convert_degrees=False, normalization_config=None, conversion_config=_CONVERSION
    )
    if percents:
        number = lambda v: sympy.Number((v.lstrip("0") or "0") if v.isdigit() else v)  # noqa: E731 - as 1.0.6
        value = value.xreplace({sympy.Symbol(k, real=is_real): percent_of(number(v)) for k, v in percents.items()})
    return value


def _latex_value(text: str, match: re.Match, fixes: bool = True):
    """lighteval's ``extract_latex``: every environment of the match, joined into a set when all parse."""
    groups = match.re.groupindex
    values, strings = [], []
    for prefix in ("first", "next1", "next2", "next3", "next4", "next5"):
        found = ((name, group_text(text, match, name)) for name in groups if name.startswith(prefix + "_latex"))
        name, content = next(((name, content) for name, content in found if content), ("", ""))
        if not content:
            continue
        normalized = normalize(content, boxed_last=name.endswith("_latexBoxed"), fixes=fixes)
        strings.append(normalized)
        try:
            value = parse_latex(normalized)
            if prefix + "_percent" in groups and group_text(text, match, prefix + "_percent"):
                value = percent_of(value)
        except Exception:  # noqa: BLE001 - lighteval: any parsing failure means "not parsed"
            value = None
        values.append(value)
    if not values:
        return None, ""
    if len(values) > 1 and all(v is not None for v in values):
        items = [x for v in values for x in (v.args if isinstance(v, sympy.FiniteSet) else [v])]
        return L2SFiniteSet(*items), " and ".join(strings)
    return values[0], strings[0]


@lru_cache(maxsize=256)
def _parse_expr(expr: str):
    return parse_expr(expr, evaluate=False)


def _expr_value(text: str, match: re.Match):
    """lighteval's ``extract_expr``: a number (thousands separators and leading zeros dropped) or an expression."""
    groups = match.re.groupindex
    get = lambda n: (group_text(text, match, n) or "") if n in groups else ""  # noqa: E731
    integer = next((v for v in (get("integer1"), get("integer2"), get("integer3")) if v), "")
    decimal = next((v for v in (get("decimal1"), get("decimal2"), get("decimal3")) if v), "")
    if integer or decimal:
        integer = integer.translate(str.maketrans("", "", ", ")).lstrip("0") or "0"
        number_str = integer + decimal.replace(",", ".")
        try:
            number = sympy.Number(number_str)
        except Exception:  # noqa: BLE001  (e.g. more digits than Python converts): not a parsable candidate
            return None, number_str
        return (percent_of(number) if get("percent") else number), number_str
    expr = get("expr")
    if expr:
        with suppress(Exception):
            return _parse_expr(expr.replace("\n", " ").replace("^", "**")), expr
    return None, expr


def value_of(text: str, match: re.Match, kind: str, fixes: bool = True):
    """``(value or None, fallback string)`` of one candidate (``fixes``: see :func:`normalize`)."""
    return _latex_value(text, match, fixes) if kind == "latex" else _expr_value(text, match)
