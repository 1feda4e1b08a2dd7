"""Evaluation mode: the verdict of the paper's lighteval ``extractive_match`` (commit ed084813, precision 5).

The paper scored with it; its rules: docs/reward.md, "Two modes" (Evaluation).

Follows ``multilingual_extractive_match_metric`` of ``src/lighteval/metrics/dynamic_metrics.py`` at lighteval
ed084813 (https://github.com/huggingface/lighteval/blob/ed084813e0bd12d82a06d9f913291fdbee774905/src/lighteval/metrics/dynamic_metrics.py) as Open-RS's ``src/open_r1/evaluate.py`` configured it.
"""

from __future__ import annotations

from functools import lru_cache

from .candidates import GOLD_TARGETS, PRED_TARGETS, candidate_groups
from .compare import any_equal
from .parse import value_of

PRECISION = 5


def extract(text: str, patterns) -> list:
    """lighteval's ``extract_target_from_pred`` (any match, first-match fallback): ``[value?, string?]``."""
    values: list = []
    fallback = None
    for group in candidate_groups(text, patterns):
        for match, kind in group:
            value, string = value_of(text, match, kind)
            if string and fallback is None:
                fallback = string
            if value is not None:
                values.append(value)
                break
        if values:
            break
    if fallback is not None:
        values.append(fallback)
    return values


@lru_cache(maxsize=4096)
def extract_gold(gold: str, kind: str) -> list:
    """The gold's candidates, or the raw gold string when none can be extracted; memoised: a group of responses
    shares its gold (sympy values are immutable)."""
    return extract(gold, GOLD_TARGETS[kind]) or [gold]


def extract_prediction(text: str) -> list:
    return extract(text, PRED_TARGETS)


def is_correct(golds: list, preds: list) -> bool:
    return any_equal(golds, preds, PRECISION)
