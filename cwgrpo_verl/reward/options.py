"""The reward's options: what ``reward.custom_reward_function.reward_kwargs`` may hold, described and validated here
once, when a call builds them (so an environment variable is read when scoring, not at import)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from numbers import Real
from typing import Any

DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 86_400.0  # one day: far larger limits overflow the OS's poll()
#: Most workers a process starts by default (``min(this, usable cores)``); verl runs ``reward.num_workers``
#: (8) reward processes per job, each with its own pool.
DEFAULT_MAX_WORKERS = 4
#: Most workers a pool may have: 8 reward processes x 64 = 512 scoring processes (about 5 GB). More can only queue
#: stuck samples on the same cores, and a mistyped size (10**6) would fork until the machine runs out.
MAX_WORKERS = 64
#: What verl 0.9.1's reward managers pass besides the four row arguments: the reward-loop managers (naive, dapo,
#: limited, gdpo, remote) add these two when a reward model router is configured. Accepted and unused.
VERL_EXTRA_KWARGS = ("reward_router_address", "reward_model_tokenizer")
MODES = ("auto", "train", "eval")
GOLD_KINDS = (None, "expr", "latex")


def _fail(name: str, what: str, value: Any):
    raise ValueError(f"cwgrpo reward: {name} must be {what}, got {value!r}")


@dataclass(frozen=True)
class RewardOptions:
    """How :func:`cwgrpo_verl.reward.compute_score` scores.

    Args:
        mode: ``"auto"`` (training or evaluation, by the row's ``data_source``), ``"train"`` or ``"eval"``.
        acc_weight, format_weight: the training score is ``acc_weight * acc + format_weight * format`` (the
            authors: 1 and 1; their 7B run: format 0). Evaluation scores ``acc``.
        timeout_s: hard limit per sample in seconds (> 0, at most a day); past it the sample scores 0, ``timeout``.
        max_chars: score only the last ``max_chars`` characters (0: the whole response, as lighteval).
        gold_kind: ``"expr"`` or ``"latex"`` gold extraction in evaluation mode (default: the data set's).
        workers: this process's pool size, 1 to :data:`MAX_WORKERS` (default: ``$CWGRPO_REWARD_WORKERS``, else
            ``min(4, usable cores)``).
    """

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
        if self.gold_kind not in GOLD_KINDS:
            _fail("gold_kind", "'expr', 'latex' or None", self.gold_kind)
        for name in ("acc_weight", "format_weight"):
            object.__setattr__(self, name, _finite(getattr(self, name), name))
        object.__setattr__(self, "timeout_s", _seconds(self.timeout_s))
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
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(DEFAULT_MAX_WORKERS, cores))


def pool_size(value: Any, name: str) -> int:
    try:
        n = int(value)
        if isinstance(value, bool) or n != float(value) or not 1 <= n <= MAX_WORKERS:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        _fail(name, f"an integer from 1 to {MAX_WORKERS}", value)
    return n


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (Real, str)):
        _fail("timeout_s", "a number of seconds", value)
    try:
        seconds = float(value)
    except ValueError:
        _fail("timeout_s", "a number of seconds", value)
    if not 0 < seconds <= MAX_TIMEOUT_S:  # also refuses nan
        _fail("timeout_s", f"> 0 and at most {MAX_TIMEOUT_S:.0f} seconds", value)
    return seconds


def _finite(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        _fail(name, "a finite number", value)
    return number
