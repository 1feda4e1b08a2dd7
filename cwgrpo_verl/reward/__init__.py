"""The paper's reward (training) and scoring (evaluation) for verl, as a small time-limited service.

Use from verl (``docs/reward.md`` has every rule and option)::

    reward.custom_reward_function.path=pkg://cwgrpo_verl.reward
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.format_weight=0.0   # 7B recipe: accuracy only

``compute_score`` returns ``{"score", "acc", "format", "pred", "reason", "timed_out"}``. The mode follows the
row's ``data_source``: the five evaluation sets get lighteval's verdict (commit ed084813, the paper's
``extractive_match``), everything else the authors' training reward (a name that is none of
:data:`DATA_SOURCES` nor an alias is warned about once). Scoring runs in a pool of worker
processes with a hard limit per sample; model output can neither hang nor crash the caller. An unknown keyword
argument (a typo in ``reward_kwargs``) is a ``ValueError``, never ignored.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
from decimal import Decimal
from numbers import Real
from typing import Any

from .pool import Pool, process_alive
from .sources import (
    DATA_SOURCES,
    EVAL_FILES,
    EVAL_GOLD_KIND,
    answer_from_row,
    gold_from_row,
    last_boxed,
    resolve_data_source,
)

__all__ = [
    "DATA_SOURCES",
    "DEFAULT_TIMEOUT_S",
    "EVAL_FILES",
    "EVAL_GOLD_KIND",
    "answer_from_row",
    "compute_score",
    "default_workers",
    "format_reward",
    "gold_from_row",
    "last_boxed",
    "model_like_response",
    "process_alive",
    "resolve_data_source",
    "self_check",
    "shutdown",
    "worker_pids",
]

DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 86_400.0  # one day
#: Most workers a process starts by default (``min(this, usable cores)``); verl runs ``reward.num_workers``
#: (8) reward processes per job, each with its own pool.
DEFAULT_MAX_WORKERS = 4
#: Most workers a pool may have: 8 reward processes x 64 = 512 scoring processes (about 5 GB). More can only queue
#: stuck samples on the same cores, and a mistyped size (10**6) would fork until the machine runs out.
MAX_WORKERS = 64
#: What verl 0.9.1's reward managers pass besides the four row arguments: the reward-loop managers (naive, dapo,
#: limited, gdpo, remote) add these two when a reward model router is configured. Accepted and unused.
VERL_EXTRA_KWARGS = ("reward_router_address", "reward_model_tokenizer")
_OPTIONS = ("mode", "acc_weight", "format_weight", "timeout_s", "max_chars", "gold_kind", "workers")
_FORMAT_TAG = "\n</think>\n"
_MODES = ("auto", "train", "eval")
_GOLD_KINDS = (None, "expr", "latex")
#: Distinct unknown data sources warned about per process; past this many, one last warning says so.
_MAX_WARNED_SOURCES = 100

logger = logging.getLogger(__name__)


def default_workers() -> int:
    """Pool size when none is given: ``$CWGRPO_REWARD_WORKERS``, else ``min(4, usable cores)``."""
    env = os.environ.get("CWGRPO_REWARD_WORKERS")
    if env:
        return _check_workers(env, "CWGRPO_REWARD_WORKERS")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(DEFAULT_MAX_WORKERS, cores))


def _check_workers(value: Any, name: str = "workers") -> int:
    try:
        n = int(value)
        if isinstance(value, bool) or n != float(value) or not 1 <= n <= MAX_WORKERS:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"cwgrpo reward: {name} must be an integer from 1 to {MAX_WORKERS}, got {value!r}") from None
    return n


def _check_extras(extras: dict) -> None:
    unknown = sorted(set(extras) - set(VERL_EXTRA_KWARGS))
    if unknown:
        raise ValueError(f"cwgrpo reward: unknown keyword argument(s) {', '.join(unknown)} (a typo in reward_kwargs?); "
                         f"known: {', '.join(_OPTIONS)}, and verl's {', '.join(VERL_EXTRA_KWARGS)}")


def _check_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (Real, str)):
        raise ValueError(f"cwgrpo reward: timeout_s must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"cwgrpo reward: timeout_s must be a number of seconds, got {value!r}") from None
    if not 0 < seconds <= MAX_TIMEOUT_S:  # also refuses nan; far larger limits overflow the OS's poll()
        raise ValueError(f"cwgrpo reward: timeout_s must be > 0 and at most {MAX_TIMEOUT_S:.0f} seconds, got {value!r}")
    return seconds


def _check_weight(value: Any, name: str) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        w = math.nan
    if isinstance(value, bool) or not math.isfinite(w):
        raise ValueError(f"cwgrpo reward: {name} must be a finite number, got {value!r}")
    return w


# ---------------------------------------------------------------------------------------------- the pool

_POOL: Pool | None = None
_POOL_LOCK = threading.Lock()


def _pool(workers: int | None) -> Pool:
    global _POOL
    size = default_workers() if workers is None else workers
    with _POOL_LOCK:
        if _POOL is None or _POOL.owner_pid != os.getpid():
            _POOL = Pool(size)
        elif workers is not None and _POOL.size != size:
            _POOL.resize(size)
        return _POOL


def _after_fork_in_child() -> None:
    """The child must not use (or wait on locks of) its parent's pool: forget it, start afresh."""
    global _POOL, _POOL_LOCK
    _POOL_LOCK = threading.Lock()
    if _POOL is not None:
        _POOL.forget()
    _POOL = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def worker_pids() -> dict:
    """This process's scoring processes: ``workers``, ``idle``, ``zygote`` and ``last_killed`` (pids)."""
    pool = _POOL
    if pool is None or pool.owner_pid != os.getpid():
        return {"workers": [], "idle": [], "zygote": None, "last_killed": None}
    return pool.pids()


def shutdown() -> None:
    """Kill this process's workers and zygote (a later call starts new ones)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None and pool.owner_pid == os.getpid():
        pool.close()


atexit.register(shutdown)


# ---------------------------------------------------------------------------------------------- scoring


def format_reward(completion: str) -> float:
    """1.0 iff ``"\\n</think>\\n"`` occurs exactly once (the authors' format reward)."""
    return 1.0 if completion.count(_FORMAT_TAG) == 1 else 0.0


def _text(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, bytes):
        x = x.decode("utf-8", "replace")
    x = x if isinstance(x, str) else str(x)
    return x.replace("\x00", "") if "\x00" in x else x


def _gold_text(x: Any) -> str | None:
    """The gold string of a ``ground_truth`` (str, number, list/array of them as parquet gives them); None for
    anything else (a dict, a bool, an object): its ``str()`` is no answer, and would score as one."""
    if x is None:
        return None
    if not isinstance(x, (str, bytes)) and hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        if not x:
            return None
        x = x[0]
        if not isinstance(x, (str, bytes)) and hasattr(x, "tolist"):
            x = x.tolist()
    if isinstance(x, bool) or not isinstance(x, (str, bytes, Real, Decimal)):
        return None
    if isinstance(x, float) and math.isnan(x):
        return None
    gold = _text(x).strip()
    return gold or None


_WARNED_SOURCES: set[str] = set()
_WARNED_LOCK = threading.Lock()


def _warn_unknown_source(name: str) -> None:
    """Once per distinct name and process: a misspelt evaluation set would be scored with the training reward."""
    with _WARNED_LOCK:
        if name in _WARNED_SOURCES or len(_WARNED_SOURCES) > _MAX_WARNED_SOURCES:
            return
        _WARNED_SOURCES.add(name)
        last = len(_WARNED_SOURCES) > _MAX_WARNED_SOURCES
    if last:
        logger.warning("cwgrpo reward: more than %d unknown data sources; no further ones are reported",
                       _MAX_WARNED_SOURCES)
        return
    logger.warning("cwgrpo reward: unknown data_source %r: scored with the training reward (evaluation sets: %s; "
                   "reward_kwargs.mode=train or eval chooses explicitly)", name, ", ".join(sorted(EVAL_GOLD_KIND)))


def _result(score: float, acc: float, fmt: float, pred: str, reason: str) -> dict:
    return {
        "score": float(score),
        "acc": float(acc),
        "format": float(fmt),
        "pred": str(pred),
        "reason": str(reason),
        "timed_out": 1.0 if reason == "timeout" else 0.0,
    }


def compute_score(
    data_source: Any = None,
    solution_str: Any = "",
    ground_truth: Any = None,
    extra_info: Any = None,
    *,
    mode: str = "auto",
    acc_weight: float = 1.0,
    format_weight: float = 1.0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_chars: int = 0,
    gold_kind: str | None = None,
    workers: int | None = None,
    **verl_extras: Any,
) -> dict:
    """Score one response (verl's ``custom_reward_function`` signature).

    Args:
        data_source: the row's ``data_source``; the five evaluation sets select evaluation mode.
        solution_str: the decoded response. ground_truth: the row's gold (see :func:`gold_from_row`).
        mode: ``"auto"`` (by data source), ``"train"`` or ``"eval"``.
        acc_weight, format_weight: training score = ``acc_weight * acc + format_weight * format``.
        timeout_s: hard limit per sample, in seconds (finite, > 0); past it the sample scores 0, ``timeout``.
        max_chars: score only the last ``max_chars`` characters (0: the whole response, as lighteval).
        gold_kind: ``"expr"`` or ``"latex"`` gold extraction in evaluation mode (default: by data source).
        workers: size of this process's worker pool, 1 to :data:`MAX_WORKERS` (default :func:`default_workers`).
        verl_extras: what verl passes besides (:data:`VERL_EXTRA_KWARGS`); any other name is a ``ValueError``.

    A ``ground_truth`` that is neither text nor a number (nor a list of them) is no gold: ``reason="no_gold"``.
    Never raises on model output; raises ``ValueError`` on invalid options and ``RuntimeError`` if the
    scoring processes cannot start (a broken installation).
    """
    _check_extras(verl_extras)
    if mode not in _MODES:
        raise ValueError(f"cwgrpo reward: mode must be one of {_MODES}, got {mode!r}")
    if gold_kind not in _GOLD_KINDS:
        raise ValueError(f"cwgrpo reward: gold_kind must be 'expr', 'latex' or None, got {gold_kind!r}")
    limit = _check_timeout(timeout_s)
    size = None if workers is None else _check_workers(workers)
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 0:
        raise ValueError(f"cwgrpo reward: max_chars must be an integer >= 0, got {max_chars!r}")
    src = resolve_data_source(data_source) if data_source is not None else ""
    if mode == "auto" and src and src not in DATA_SOURCES.values():
        _warn_unknown_source(src)
    eval_mode = mode == "eval" or (mode == "auto" and src in EVAL_GOLD_KIND)
    if eval_mode:
        w_acc, w_fmt = 1.0, 0.0
        kind = gold_kind or EVAL_GOLD_KIND.get(src, "latex")
    else:
        w_acc, w_fmt = _check_weight(acc_weight, "acc_weight"), _check_weight(format_weight, "format_weight")
        kind = gold_kind or "latex"

    text = _text(solution_str)
    fmt = format_reward(text)
    gold = _gold_text(ground_truth)
    if gold is None:
        return _result(w_fmt * fmt, 0.0, fmt, "", "no_gold")
    if max_chars and len(text) > max_chars:
        text = text[-max_chars:]
    payload = {"mode": "eval" if eval_mode else "train", "gold_kind": kind, "gold": gold, "text": text}
    out = _pool(size).run(payload, limit)
    acc = 1.0 if out.get("acc") else 0.0
    return _result(w_acc * acc + w_fmt * fmt, acc, fmt, out.get("pred") or "", out.get("reason") or "error")


def model_like_response(answer: str) -> str:
    """A short reasoning trace that boxes ``answer`` in the paper's requested format."""
    return (
        "<think>\nLet me work through the problem carefully. First I set up the equations, then I simplify "
        "and check the edge cases. $x = 1$ is a trial value.\n</think>\n\n"
        f"Putting everything together, the final answer is $\\boxed{{{answer}}}$"
    )


def self_check(data_dir, timeout_s: float = 10.0, workers: int | None = None, every: int = 1) -> dict:
    """Score every (``every``-th) gold answer of the five sets, boxed in a model-like response (:mod:`.self_check`)."""
    from .self_check import run

    return run(data_dir, timeout_s=timeout_s, workers=workers, every=every)
