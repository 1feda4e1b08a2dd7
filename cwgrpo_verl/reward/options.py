"""The reward's options: what ``reward.custom_reward_function.reward_kwargs`` may hold, described and validated here
once, when a call builds them (so an environment variable is read when scoring, not at import)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from numbers import Real
from typing import Any, Callable

DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 86_400.0  # one day: far larger limits overflow the OS's poll()
#: Most workers a process starts by default (``min(this, usable cores)``); verl runs ``reward.num_workers``
#: (8) reward processes per job, each with its own pool.
DEFAULT_MAX_WORKERS = 4
#: Most workers a pool may have: 8 reward processes x 64 = 512 scoring processes (about 5 GB). More can only queue
#: stuck samples on the same cores, and a mistyped size (10**6) would fork until the machine runs out.
MAX_WORKERS = 64
#: What verl 0.9.1's reward-loop managers pass besides the row when a reward model router is configured: ignored.
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
        workers: this process's pool size, 1 to :data:`MAX_WORKERS` (default: :func:`default_workers`).
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
