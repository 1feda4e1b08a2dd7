"""The paper's reward (training) and scoring (evaluation) for verl, as a small time-limited service.

:func:`compute_score` is verl's ``custom_reward_function``: the evaluation sets get lighteval's verdict (commit
ed084813, the paper's ``extractive_match``), everything else the authors' training reward. Scoring runs in worker
processes (:mod:`.pool`), so model output can neither hang nor crash the caller. Use and rules: docs/reward.md.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from decimal import Decimal
from numbers import Real
from pathlib import Path
from typing import Any, Callable

from cwgrpo_verl import argtypes, data_sets

from .pool import Pool

__all__ = ["DEFAULT_TIMEOUT_S", "RewardOptions", "compute_score", "default_workers", "format_reward", "main",
           "model_like_response", "self_check", "shutdown", "worker_pids"]

DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 86_400.0  # one day: far larger limits overflow the OS's poll()
DEFAULT_MAX_WORKERS = 4  # per process by default, at most the usable cores; verl runs 8 reward processes per job
#: 8 reward processes x 64 = 512 scoring processes (about 5 GB); a mistyped size (10**6) would fork the machine dead.
MAX_WORKERS = 64
VERL_EXTRA_KWARGS = ("reward_router_address", "reward_model_tokenizer")  # verl 0.9.1's reward-loop extras: ignored
MODES = ("auto", "train", "eval")


def _fail(name: str, what: str, value: Any):
    raise ValueError(f"cwgrpo reward: {name} must be {what}, got {value!r}")


@dataclass(frozen=True)
class RewardOptions:
    """``reward_kwargs``, checked once per call (so an environment variable is read when scoring, not at import);
    their meaning: docs/reward.md. ``workers`` defaults to :func:`default_workers`."""

    mode: str = "auto"
    acc_weight: float = 1.0
    format_weight: float = 1.0
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_chars: int = 0
    gold_kind: str | None = None
    workers: int | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            _fail("mode", f"one of {MODES}", self.mode)
        if self.gold_kind not in (None, "expr", "latex"):
            _fail("gold_kind", "'expr', 'latex' or None", self.gold_kind)
        for name in ("acc_weight", "format_weight"):
            object.__setattr__(self, name, _checked(name, getattr(self, name), "a finite number", float, math.isfinite))
        seconds = _checked("timeout_s", self.timeout_s, "a number of seconds", float,
                           lambda _: isinstance(self.timeout_s, (Real, str)))
        if not 0 < seconds <= MAX_TIMEOUT_S:  # also refuses nan
            _fail("timeout_s", f"> 0 and at most {MAX_TIMEOUT_S:.0f} seconds", self.timeout_s)
        object.__setattr__(self, "timeout_s", seconds)
        if isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int) or self.max_chars < 0:
            _fail("max_chars", "an integer >= 0", self.max_chars)
        object.__setattr__(self, "workers", default_workers() if self.workers is None else
                           pool_size(self.workers, "workers"))

    @classmethod
    def from_kwargs(cls, kwargs: dict) -> "RewardOptions":
        """The options in ``kwargs`` (verl's own extras accepted and dropped); an unknown name is a ValueError."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(kwargs) - set(known) - set(VERL_EXTRA_KWARGS))
        if unknown:
            raise ValueError(f"cwgrpo reward: unknown keyword argument(s) {', '.join(unknown)} (a typo in "
                             f"reward_kwargs?); known: {', '.join(known)}, and verl's {', '.join(VERL_EXTRA_KWARGS)}")
        return cls(**{k: v for k, v in kwargs.items() if k in known})


def default_workers() -> int:
    """Pool size when none is given: ``$CWGRPO_REWARD_WORKERS``, else ``min(4, usable cores)``."""
    env = os.environ.get("CWGRPO_REWARD_WORKERS")
    if env:
        return pool_size(env, "CWGRPO_REWARD_WORKERS")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(DEFAULT_MAX_WORKERS, cores))


def pool_size(value: Any, name: str) -> int:
    return _checked(name, value, f"an integer from 1 to {MAX_WORKERS}", int,
                    lambda n: n == float(value) and 1 <= n <= MAX_WORKERS)


def _checked(name: str, value: Any, what: str, convert: Callable[[Any], Any], ok: Callable[[Any], bool]) -> Any:
    """``convert(value)`` if that works and is ``ok`` (a bool is no number); else a ValueError naming ``name``."""
    try:
        result = convert(value)
        if isinstance(value, bool) or not ok(result):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        _fail(name, what, value)
    return result


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


#: Distinct unknown data sources warned about per process; past this many, one last warning says so.
_MAX_WARNED_SOURCES = 100
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
    """Score one response (verl's ``custom_reward_function``; ``options``: :class:`RewardOptions`). Never
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


#: Golds no response can match under lighteval's rules: OlympiadBench row 194's malformed "$221,$8$", from which
#: lighteval extracts only "221," (so 674/675 is the expected result there).
KNOWN_UNMATCHABLE = {("olympiadbench", "$221,$8$")}


def self_check(data_dir, timeout_s: float = 10.0, workers: int | None = None, every: int = 1) -> dict[str, dict]:
    """Every gold answer of the five evaluation sets, boxed in a model-like response, must score 1 (docs/reward.md,
    "Parity, measured"). Over every ``every``-th row of ``<data_dir>/<set>.parquet``, concurrently:
    ``{set: {"n", "passed", "failures": [(row, answer, reason, pred)], "known": [those forgiven]}}``."""
    import pandas as pd

    workers = workers or default_workers()

    def score(row: dict) -> dict:
        return compute_score(row["data_source"], model_like_response(row["extra_info"]["answer"]),
                             row["reward_model"]["ground_truth"], timeout_s=timeout_s, workers=workers)

    report: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for key in data_sets.evaluation_keys():
            rows = pd.read_parquet(Path(data_dir) / f"{key}.parquet").to_dict("records")
            picked = range(0, len(rows), every)
            failures = [(i, rows[i]["extra_info"]["answer"], r["reason"], r["pred"])
                        for i, r in zip(picked, ex.map(score, rows[::every])) if r["acc"] != 1.0]
            known = [f for f in failures if (key, rows[f[0]]["reward_model"]["ground_truth"]) in KNOWN_UNMATCHABLE]
            report[key] = {"n": len(picked), "passed": len(picked) - len(failures), "failures": failures,
                           "known": known}
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cwgrpo_verl.reward", description="Self-check: every gold answer of "
                                 "the five evaluation sets, boxed in a model-like response, must score 1.")
    ap.add_argument("--self-check", metavar="DATA_DIR",
                    help="the folder examples/prepare_data.sh wrote (aime24.parquet, math500.parquet, ...)")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: min(4, cores))")
    ap.add_argument("--timeout", type=float, default=10.0, help="limit per sample in seconds (default 10)")
    ap.add_argument("--every", type=argtypes.integer(), default=1, help="check every N-th row only (default 1: all)")
    args = ap.parse_args(argv)
    if not args.self_check:
        ap.print_help()
        return 0
    missing = [f"{k}.parquet" for k in data_sets.evaluation_keys()
               if not (Path(args.self_check) / f"{k}.parquet").is_file()]
    if missing:
        ap.error(f"--self-check {args.self_check}: no {', '.join(missing)} (write them with examples/prepare_data.sh)")
    bad = 0
    for key, r in self_check(args.self_check, timeout_s=args.timeout, workers=args.workers, every=args.every).items():
        print(f"{key:14s} {r['passed']:4d}/{r['n']:4d} = {100.0 * r['passed'] / max(r['n'], 1):6.2f}%")
        for i, ans, reason, pred in r["failures"]:
            note = " (a known data defect)" if (i, ans, reason, pred) in r["known"] else ""
            print(f"    row {i}: answer={ans!r} reason={reason} pred={pred!r}{note}")
        bad += len(r["failures"]) - len(r["known"])
    return 1 if bad else 0
