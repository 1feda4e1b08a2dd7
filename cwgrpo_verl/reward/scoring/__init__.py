"""The scoring that runs inside a worker process: one sample in, ``{"acc", "pred", "reason"}`` out.

It imports only the standard library, sympy, latex2sympy2_extended and math-verify (never verl or the rest of
``cwgrpo_verl``), so a worker starts fast, and applies no time limit: the caller's pool kills a worker past it.
"""

from __future__ import annotations

from . import lighteval, train

#: Longest ``pred`` string returned (``str`` of a huge sympy object is cut here).
PRED_MAX_CHARS = 200


def _pred_string(preds: list) -> str:
    try:
        return str(preds[0])[:PRED_MAX_CHARS]
    except Exception:  # noqa: BLE001 - str() of odd sympy objects can fail
        return ""


def check_answer(mode: str, gold_kind: str, gold: str, text: str) -> dict:
    """Score one sample. ``mode``: "train" or "eval"; ``gold_kind`` (eval): "expr" or "latex"."""
    if mode == "train":
        golds, scorer = train.extract_gold(gold), train
        if not golds:
            return {"acc": False, "pred": "", "reason": "no_gold"}
    else:
        golds, scorer = lighteval.extract_gold(gold, "expr" if gold_kind == "expr" else "latex"), lighteval
    preds = scorer.extract_prediction(text)
    if not preds:
        return {"acc": False, "pred": "", "reason": "no_pred"}
    return {"acc": scorer.is_correct(golds, preds), "pred": _pred_string(preds), "reason": "ok"}
