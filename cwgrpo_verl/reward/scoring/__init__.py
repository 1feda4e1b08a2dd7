"""The scoring that runs inside a worker process: one sample in, ``{"acc", "pred", "reason"}`` out.

This package imports only the standard library, sympy, latex2sympy2_extended and math-verify (never verl or
the rest of ``cwgrpo_verl``), so a worker starts fast; :mod:`.worker` loads it by path. It applies no time
limit itself: the caller's pool kills a worker that runs past the sample's limit.
"""

from __future__ import annotations

from collections import OrderedDict

from . import lighteval, train

__all__ = ["check_answer", "PRED_MAX_CHARS"]

#: Longest ``pred`` string returned (``str`` of a huge sympy object is cut here).
PRED_MAX_CHARS = 200
_GOLD_CACHE: OrderedDict = OrderedDict()
_GOLD_CACHE_MAX = 4096


def _pred_string(preds: list) -> str:
    try:
        return str(preds[0])[:PRED_MAX_CHARS] if preds else ""
    except Exception:  # noqa: BLE001 - str() of odd sympy objects can fail
        return ""


def _eval_gold(gold: str, kind: str) -> list:
    """Gold candidates, memoised: a group of responses shares its gold (sympy values are immutable)."""
    key = (kind, gold)
    hit = _GOLD_CACHE.get(key)
    if hit is None:
        hit = lighteval.extract_gold(gold, kind)
        _GOLD_CACHE[key] = hit
        if len(_GOLD_CACHE) > _GOLD_CACHE_MAX:
            _GOLD_CACHE.popitem(last=False)
    return hit


def check_answer(mode: str, gold_kind: str, gold: str, text: str) -> dict:
    """Score one sample. ``mode``: "train" or "eval"; ``gold_kind`` (eval): "expr" or "latex"."""
    if mode == "train":
        golds = train.extract_gold(gold)
        if not golds:
            return {"acc": False, "pred": "", "reason": "no_gold"}
        preds = train.extract_prediction(text)
        if not preds:
            return {"acc": False, "pred": "", "reason": "no_pred"}
        return {"acc": train.is_correct(golds, preds), "pred": _pred_string(preds), "reason": "ok"}
    golds = _eval_gold(gold, "expr" if gold_kind == "expr" else "latex")
    preds = lighteval.extract_prediction(text)
    if not preds:
        return {"acc": False, "pred": "", "reason": "no_pred"}
    return {"acc": lighteval.is_correct(golds, preds), "pred": _pred_string(preds), "reason": "ok"}
