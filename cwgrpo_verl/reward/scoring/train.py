"""Training mode: the authors' accuracy reward as they ran it, on math-verify 0.5.2.

The authors (WangCheng0116/CW-GRPO at 4259d83, ``src/open_r1/rewards.py``, ``accuracy_reward``) pinned
math-verify 0.5.2, and with it latex2sympy2_extended 1.0.6. So this runs on the same 0.5.2-era code as evaluation
mode (lighteval at ed084813 is the code math-verify 0.5.2 came from) with the authors' settings: the prediction keeps
every box and has nits and malformed operators off. Rules and agreement: docs/reward.md, "Two modes".
"""

from __future__ import annotations

from functools import lru_cache

from .candidates import candidate_groups, compile_targets
from .compare import any_equal
from .parse import value_of

PRECISION = 6  # math-verify 0.5.2's verify(float_rounding=6)

#: 0.5.2's ``[LatexExtractionConfig(), ExprExtractionConfig()]`` for the gold
GOLD_TARGETS = compile_targets(("latex", "expr"), boxed_priority=50)
#: the authors' ``LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)``
PRED_TARGETS = compile_targets(("latex",), boxed_priority=0, without_anchor=False)


def extract(text: str, patterns, fixes: bool) -> list:
    """0.5.2's ``parse`` with ``extraction_mode="first_match"``: only the first (rightmost) candidate of the first
    priority group that has one, its value if it parses, and its string (the first-match fallback)."""
    try:  # 0.5.2's parse() turns every error into "nothing extracted"
        for group in candidate_groups(text, patterns):
            if group:
                match, kind = group[0]
                value, string = value_of(text, match, kind, fixes=fixes)
                return ([value] if value is not None else []) + ([string] if string else [])
    except Exception:  # noqa: BLE001
        pass
    return []


@lru_cache(maxsize=4096)
def extract_gold(gold: str) -> tuple:
    return tuple(extract(gold, GOLD_TARGETS, fixes=True))


def extract_prediction(text: str) -> list:
    return extract(text, PRED_TARGETS, fixes=False)


def is_correct(golds, preds) -> bool:
    return any_equal(list(golds), preds, PRECISION)
