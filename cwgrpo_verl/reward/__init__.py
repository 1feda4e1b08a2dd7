"""The paper's reward (training) and scoring (evaluation) for verl, as a small time-limited service.

:func:`compute_score` is verl's ``custom_reward_function``: the evaluation sets get lighteval's verdict (commit
ed084813, the paper's ``extractive_match``), everything else the authors' training reward. Scoring runs in worker
processes (:mod:`.pool`), so model output can neither hang nor crash the caller. Use and rules: docs/reward.md.
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

from cwgrpo_verl import data_sets

from .options import DEFAULT_TIMEOUT_S, RewardOptions, default_workers
from .pool import Pool

__all__ = ["DEFAULT_TIMEOUT_S", "RewardOptions", "compute_score", "default_workers", "format_reward",
           "model_like_response", "self_check", "shutdown", "worker_pids"]

#: Distinct unknown data sources warned about per process; past this many, one last warning says so.
_MAX_WARNED_SOURCES = 100

logger = logging.getLogger(__name__)
_POOL: Pool | None = None
_POOL_LOCK = threading.Lock()


def _pool(size: int) -> Pool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.owner_pid != os.getpid():
            _POOL = Pool(size)
        elif _POOL.size != size:
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


def format_reward(completion: str) -> float:
    """1.0 iff ``"\\n</think>\\n"`` occurs exactly once (the authors' format reward)."""
    return 1.0 if completion.count("\n</think>\n") == 1 else 0.0


def _text(x: Any) -> str:
    x = x.decode("utf-8", "replace") if isinstance(x, bytes) else x
    return ("" if x is None else str(x)).replace("\x00", "")


def _plain(x: Any) -> Any:
    return x.tolist() if hasattr(x, "tolist") else x  # numpy arrays and scalars, as parquet gives them


def _gold_text(x: Any) -> str | None:
    """The gold string of a ``ground_truth`` (str, number, list/array of them); None for anything else (a dict, a
    bool, an object): its ``str()`` is no answer, and would score as one."""
    x = _plain(x)
    if isinstance(x, (list, tuple)):
        x = _plain(x[0]) if x else None
    nan = isinstance(x, float) and math.isnan(x)
    if nan or isinstance(x, bool) or not isinstance(x, (str, bytes, Real, Decimal)):
        return None
    return _text(x).strip() or None


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
                   "reward_kwargs.mode=train or eval chooses explicitly)", name,
                   ", ".join(d.data_source for d in data_sets.EVALUATION))


def _result(score: float, acc: float, fmt: float, pred: str, reason: str) -> dict:
    return {"score": float(score), "acc": float(acc), "format": float(fmt), "pred": str(pred), "reason": str(reason),
            "timed_out": 1.0 if reason == "timeout" else 0.0}


def compute_score(data_source: Any = None, solution_str: Any = "", ground_truth: Any = None, extra_info: Any = None,
                  **options: Any) -> dict:
    """Score one response (verl's ``custom_reward_function``; ``options``: :class:`.options.RewardOptions`). Never
    raises on model output; raises ``ValueError`` on invalid options, ``RuntimeError`` if no scoring process starts."""
    opts = RewardOptions.from_kwargs(options)
    name = "" if data_source is None else str(data_source).strip()
    dataset = data_sets.resolve(name) if name else None
    if opts.mode == "auto" and dataset is None and name:
        _warn_unknown_source(name)
    eval_mode = opts.mode == "eval" or (opts.mode == "auto" and dataset is not None and dataset.gold_kind is not None)
    w_acc, w_fmt = (1.0, 0.0) if eval_mode else (opts.acc_weight, opts.format_weight)
    text = _text(solution_str)
    fmt = format_reward(text)
    gold = _gold_text(ground_truth)
    if gold is None:
        return _result(w_fmt * fmt, 0.0, fmt, "", "no_gold")
    payload = {"mode": "eval" if eval_mode else "train", "gold": gold, "text": text[-opts.max_chars:],
               "gold_kind": opts.gold_kind or (dataset and dataset.gold_kind) or "latex"}  # training ignores it
    out = _pool(opts.workers).run(payload, opts.timeout_s)
    acc = 1.0 if out.get("acc") else 0.0
    return _result(w_acc * acc + w_fmt * fmt, acc, fmt, out.get("pred") or "", out.get("reason") or "error")


def model_like_response(answer: str) -> str:
    """A short reasoning trace that boxes ``answer`` in the paper's requested format."""
    return (
        "<think>\nLet me work through the problem carefully. First I set up the equations, then I simplify "
        "and check the edge cases. $x = 1$ is a trial value.\n</think>\n\n"
        f"Putting everything together, the final answer is $\\boxed{{{answer}}}$"
    )


# Last: it imports compute_score from here. (The name is the function, never the submodule of the same name.)
from .self_check import run as self_check  # noqa: E402
