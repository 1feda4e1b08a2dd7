"""The scoring inside a worker process: one sample in, ``{"acc", "pred", "reason"}`` out; docs/reward.md, "Two modes".

It imports neither verl nor torch, so a worker starts fast, and applies no time limit: the pool kills a worker past it.

Evaluation: the verdict of the paper's lighteval ``extractive_match``. Follows ``multilingual_extractive_match_metric``
of ``src/lighteval/metrics/dynamic_metrics.py`` at lighteval ed084813 (https://github.com/huggingface/lighteval/blob/ed084813e0bd12d82a06d9f913291fdbee774905/src/lighteval/metrics/dynamic_metrics.py)
as Open-RS's ``src/open_r1/evaluate.py`` configured it (precision 5).

Training: the authors' ``accuracy_reward`` (WangCheng0116/CW-GRPO at 4259d83, ``src/open_r1/rewards.py``) as they ran
it, on math-verify 0.5.2 (their pin; lighteval ed084813 is the code 0.5.2 came from), with their settings: the
prediction keeps every box and has nits and malformed operators off.
"""

from __future__ import annotations

from functools import lru_cache

from .candidates import GOLD_TARGETS, PRED_TARGETS, candidate_groups, compile_targets
from .compare import any_equal
from .parse import value_of

#: Longest ``pred`` string returned (``str`` of a huge sympy object is cut here).
PRED_MAX_CHARS = 200
EVAL_PRECISION = 5
TRAIN_PRECISION = 6  # math-verify 0.5.2's verify(float_rounding=6)
#: 0.5.2's ``[LatexExtractionConfig(), ExprExtractionConfig()]`` for the gold
TRAIN_GOLD_TARGETS = compile_targets(("latex", "expr"), boxed_priority=50)
#: the authors' ``LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)``
TRAIN_PRED_TARGETS = compile_targets(("latex",), boxed_priority=0, without_anchor=False)


def extract(text: str, patterns, fixes: bool = True, first_match: bool = False) -> list:
    """lighteval's ``extract_target_from_pred``: ``[value?, string?]``, the first value that parses in the first
    priority group where one does, and the first candidate's string (the first-match fallback). ``first_match``:
    0.5.2's ``parse(extraction_mode="first_match")``, only the first (rightmost) candidate of the first group that
    has one. ``fixes``: see :func:`.parse.normalize`."""
    values: list = []
    fallback = None
    for group in candidate_groups(text, patterns):
        for match, kind in group[:1] if first_match else group:
            value, string = value_of(text, match, kind, fixes=fixes)
            fallback = fallback or string or None
            if value is not None:
                values.append(value)
                break
        if values or (first_match and group):
            break
    return values + ([fallback] if fallback else [])


def _train_extract(text: str, patterns, fixes: bool) -> list:
    try:  # 0.5.2's parse() turns every error into "nothing extracted"
        return extract(text, patterns, fixes, first_match=True)
    except Exception:  # noqa: BLE001
        return []


@lru_cache(maxsize=4096)
def eval_gold(gold: str, kind: str) -> list:
    """The gold's candidates, or the raw gold string when none can be extracted; memoised: a group of responses
    shares its gold (sympy values are immutable)."""
    return extract(gold, GOLD_TARGETS[kind]) or [gold]


def eval_prediction(text: str) -> list:
    return extract(text, PRED_TARGETS)


@lru_cache(maxsize=4096)
def train_gold(gold: str) -> tuple:
    return tuple(_train_extract(gold, TRAIN_GOLD_TARGETS, fixes=True))


def train_prediction(text: str) -> list:
    return _train_extract(text, TRAIN_PRED_TARGETS, fixes=False)


def check_answer(mode: str, gold_kind: str, gold: str, text: str) -> dict:
    """Score one sample. ``mode``: "train" or "eval"; ``gold_kind`` (eval): "expr" or "latex"."""
    if mode == "train":
        golds, precision = list(train_gold(gold)), TRAIN_PRECISION
        if not golds:
            return {"acc": False, "pred": "", "reason": "no_gold"}
        preds = train_prediction(text)
    else:
        golds, precision = eval_gold(gold, "expr" if gold_kind == "expr" else "latex"), EVAL_PRECISION
        preds = eval_prediction(text)
    if not preds:
        return {"acc": False, "pred": "", "reason": "no_pred"}
    acc = any_equal(golds, preds, precision)
    try:
        pred = str(preds[0])[:PRED_MAX_CHARS]
    except Exception:  # noqa: BLE001 - str() of odd sympy objects can fail
        pred = ""
    return {"acc": acc, "pred": pred, "reason": "ok"}
