"""When a prediction equals the gold: lighteval's comparison (commit ed084813), precision 5, strict (math-verify's
later ``verify`` is more lenient: docs/reward.md, "What the paper's scorer really was").

Follows ``src/lighteval/metrics/utils/math_comparison.py`` (``compare_gold_target`` and the ``sympy_*``
comparisons) at lighteval ed084813: https://github.com/huggingface/lighteval/blob/ed084813e0bd12d82a06d9f913291fdbee774905/src/lighteval/metrics/utils/math_comparison.py
"""

from __future__ import annotations

from contextlib import suppress
from itertools import product

from latex2sympy2_extended.latex2sympy2 import is_expr_of_only_symbols
from latex2sympy2_extended.sets import FiniteSet as L2SFiniteSet
from math_verify.grader import safe_sympy_doit as _doit  # math-verify 0.9 kept these three as lighteval wrote them
from math_verify.grader import sympy_symbolic_eq as _symbolic_equal
from math_verify.grader import unwrap_fcs as _unwrap_functions
from sympy import (And, Basic, E, Eq, FiniteSet, Float, GreaterThan, Interval, LessThan, MatrixBase, MatrixExpr, Mul,
                   Number, Rational, Set, StrictGreaterThan, StrictLessThan, Symbol, Tuple, default_sort_key, ordered)
from sympy.core.relational import Relational

_FLIPPED = ((GreaterThan, LessThan), (LessThan, GreaterThan), (StrictGreaterThan, StrictLessThan),
            (StrictLessThan, StrictGreaterThan), (Eq, Eq))


def any_equal(golds: list, preds: list, precision: int = 5) -> bool:
    """True if some (gold, prediction) pair is equal."""
    return any(_pair_equal(g, p, precision) for g, p in product(golds, preds))


def _pair_equal(gold, pred, precision: int) -> bool:
    try:
        if isinstance(gold, (Basic, MatrixBase)) and isinstance(pred, (Basic, MatrixBase)):
            return bool(expr_equal(gold, pred, precision))
        if isinstance(gold, str) and isinstance(pred, str):
            g, p = gold.strip(), pred.strip()
            return bool(g) and g == p
        return False
    except Exception:  # noqa: BLE001 - lighteval scores an erroring comparison as unequal
        return False


def _is_number_or_percent(x, cls) -> bool:
    """``x`` is a ``cls`` or a ``cls`` times 1/100 (a percentage)."""
    return isinstance(x, cls) or (
        isinstance(x, Mul) and len(x.args) == 2 and x.args[1] == Rational(1, 100) and isinstance(x.args[0], cls)
    )


def _numeric_equal(a, b, precision: int) -> bool:
    if isinstance(a, (MatrixBase, MatrixExpr)) and isinstance(b, (MatrixBase, MatrixExpr)):
        a, b = _doit(a), _doit(b)
        if isinstance(a, MatrixBase) and isinstance(b, MatrixBase) and a.shape == b.shape:
            return all(_numeric_equal(x, y, precision) for x, y in zip(a.flat(), b.flat()))
    elif _is_number_or_percent(a, Number) or _is_number_or_percent(b, Number):
        if _is_number_or_percent(a, Float) or _is_number_or_percent(b, Float):
            a, b = _doit(a), _doit(b)
            if isinstance(a, Number) and isinstance(b, Number):
                return a.round(precision) == b.round(precision)
        else:
            return _doit(a) == _doit(b)
    else:
        with suppress(Exception):
            return (a - b).evalf(chop=True) == 0
    return False


def _is_relation(x) -> bool:
    return isinstance(x, Relational) or (isinstance(x, And) and all(isinstance(a, Relational) for a in x.args))


def _is_equation(x) -> bool:
    return isinstance(x, Eq) or (isinstance(x, And) and len(x.args) > 0 and all(isinstance(a, Eq) for a in x.args))


def _is_assignment(x) -> bool:
    """``a = ...`` (or a chain of them) whose left side is made of symbols only."""
    return _is_equation(x) and is_expr_of_only_symbols((x if isinstance(x, Eq) else x.args[0]).lhs)


def _last_relation(x):
    return _last_relation(x.args[-1]) if isinstance(x, And) else x


def _str_equal(a, b) -> bool:
    a, b = _doit(a), _doit(b)
    try:
        return a == b or str(a).strip() == str(b).strip()
    except Exception:  # noqa: BLE001
        return False


def _sort_key(x):
    if _is_assignment(x):
        x = _last_relation(x).rhs
    try:
        return default_sort_key(x.evalf())
    except Exception:  # noqa: BLE001
        return default_sort_key(x)


def _elements_equal(gold, pred, precision: int) -> bool:
    """Element-wise comparison of two finite sets / tuples of the same length (sets in sorted order)."""
    if len(gold) != len(pred):
        return False
    if isinstance(gold, FiniteSet):
        g = list(ordered(gold.args, keys=_sort_key, default=False))
        p = list(ordered(pred.args, keys=_sort_key, default=False))
    elif isinstance(gold, Tuple) and isinstance(pred, L2SFiniteSet):
        g, p = gold.args, pred._unsorted_args
    elif isinstance(pred, FiniteSet):
        g, p = gold.args, list(ordered(pred.args, keys=_sort_key, default=False))
    else:
        g, p = gold.args, pred.args
    return all(expr_equal(x, y, precision) for x, y in zip(g, p))


def _sets_equal(gold, pred, precision: int) -> bool:
    a = gold if isinstance(gold, (Set, Tuple)) else FiniteSet(gold)
    b = pred if isinstance(pred, (Set, Tuple)) else FiniteSet(pred)
    if isinstance(a, Interval) and isinstance(b, Interval):
        return (a.left_open == b.left_open and a.right_open == b.right_open
                and expr_equal(a.start, b.start, precision) and expr_equal(a.end, b.end, precision))
    if a == b:
        return True
    if isinstance(a, Set) and isinstance(b, Set) and a.symmetric_difference(b).is_empty:
        return True
    if isinstance(a, (FiniteSet, Tuple)) and isinstance(b, (FiniteSet, Tuple)):
        return _elements_equal(a, b, precision)
    # (1,2) parses as an open interval; "1, 2" as a set: compare them as pairs
    if isinstance(a, Interval) and isinstance(b, (FiniteSet, Tuple)) and a.is_open and len(b) == 2:
        return _elements_equal(Tuple(a.start, a.end), b, precision)
    if isinstance(b, Interval) and isinstance(a, (FiniteSet, Tuple)) and b.is_open and len(a) == 2:
        return _elements_equal(a, Tuple(b.start, b.end), precision)
    return False


def _symbols_equal(gold, pred) -> bool:
    """A symbol against E, or against a product of symbols spelling it (``\\text{yes}`` vs ``y e s``)."""
    for one, other in ((gold, pred), (pred, gold)):
        if not isinstance(one, Symbol):
            continue
        if one.name.lower() == "e" and other == E:
            return True
        if isinstance(other, Mul) and all(a == E or isinstance(a, Symbol) for a in other.args):
            spelled = "".join(a.name if isinstance(a, Symbol) else "e" for a in other.args)
            return one.name.lower() == spelled.lower()
    return gold == pred


def _relations_equal(gold, pred, precision: int) -> bool:
    if isinstance(gold, And):
        return all(_relations_equal(g, p, precision) for g, p in zip(gold.args, pred.args))
    with suppress(Exception):
        if type(gold) == type(pred) and expr_equal(gold.lhs - gold.rhs, pred.lhs - pred.rhs, precision):  # noqa: E721
            return True
    if any(isinstance(gold, g) and isinstance(pred, p) for g, p in _FLIPPED):
        try:
            return bool(expr_equal(gold.lhs - gold.rhs, pred.rhs - pred.lhs, precision))
        except Exception:  # noqa: BLE001
            return False
    return False


def expr_equal(gold, pred, precision: int):
    """lighteval's ``sympy_expr_eq`` (strict): string, relation, set, symbol, numeric, then symbolic equality."""
    if _is_assignment(gold) and not _is_equation(pred):
        gold = _last_relation(gold).rhs
    if _is_equation(pred) and not _is_equation(gold):
        pred = _last_relation(pred).rhs
    if _is_relation(gold) and isinstance(pred, Set):
        with suppress(Exception):
            gold = _unwrap_functions(gold).as_set()
    if _str_equal(gold, pred):
        return True
    if _is_relation(gold) and _is_relation(pred):
        return _relations_equal(gold, pred, precision)
    if isinstance(gold, (Set, Tuple)) or isinstance(pred, (Set, Tuple)):
        return _sets_equal(gold, pred, precision)
    if isinstance(gold, Symbol) or isinstance(pred, Symbol):
        return _symbols_equal(gold, pred)
    if isinstance(gold, (Basic, MatrixBase)) and isinstance(pred, (Basic, MatrixBase)):
        return _numeric_equal(gold, pred, precision) or _symbolic_equal(gold, pred)
    return False
