"""Training mode: the authors' TRL accuracy reward, on math-verify.

Gold: the Open-RS ``solution`` parsed with math-verify's default targets (LaTeX, then expression), first match.
Prediction: the whole completion, LaTeX only, ``\\boxed{}`` first, every boxed kept, nothing taken without an
anchor, first match; ``verify`` with math-verify's defaults (6-decimal rounding). math-verify's own time limits
are off: the pool's per-sample limit is the only one.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _configs():
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig
    from math_verify.parser import get_extraction_regexes

    pred = [
        LatexExtractionConfig(
            normalization_config=NormalizationConfig(
                nits=False, malformed_operators=False, basic_latex=True, equations=True, boxed="all", units=True
            ),
            boxed_match_priority=0,
            try_extract_without_anchor=False,
        )
    ]
    gold = [LatexExtractionConfig(), ExprExtractionConfig()]
    # math-verify caches the regexes of one configuration at a time; keep both compiled here
    return get_extraction_regexes(gold), get_extraction_regexes(pred)


def _parse(text: str, regexes) -> list:
    from math_verify.parser import extract_target_from_pred

    try:  # math-verify's parse() turns every error into "nothing extracted"
        return extract_target_from_pred(text, regexes, fallback_mode="first_match", extraction_mode="first_match")
    except Exception:  # noqa: BLE001
        return []


@lru_cache(maxsize=4096)
def extract_gold(gold: str) -> tuple:
    return tuple(_parse(gold, _configs()[0]))


def extract_prediction(text: str) -> list:
    return _parse(text, _configs()[1])


def is_correct(golds, preds) -> bool:
    from math_verify import verify

    return bool(verify(list(golds), preds, timeout_seconds=None))
