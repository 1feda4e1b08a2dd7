"""``cwgrpo.*``: the options of the recipe's trainer, as one typed dataclass; their values and descriptions are in
``config/cwgrpo_trainer.yaml``. Built and checked in the driver before Ray starts (``recipe/cwgrpo/checks.py``),
and read again by the trainer."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from omegaconf import DictConfig

from cwgrpo_verl.tokens import MAX_TOP_K

SCOPES = ("group", "micro_batch", "batch")


class ConfigError(ValueError):
    """A recipe option that cannot work, found before any GPU work."""


@dataclass(frozen=True)
class RecipeOptions:
    scope: str
    logprob_temperature: float | None
    stop_at_step: int | None
    token_log_every: int
    token_log_top_k: int

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ConfigError(f"cwgrpo.scope must be one of {list(SCOPES)}, got {self.scope!r}")
        t = self.logprob_temperature
        if t is not None and not (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t < math.inf):
            raise ConfigError(f"cwgrpo.logprob_temperature must be null or a finite number > 0, got {t!r}")
        stop = self.stop_at_step
        if stop is not None and not (_whole(stop) and stop >= 1):
            raise ConfigError(f"cwgrpo.stop_at_step must be null or a whole number >= 1, got {stop!r}")
        if not _whole(self.token_log_every) or self.token_log_every < 0:
            raise ConfigError(f"cwgrpo.token_log_every must be a whole number >= 0 (0: off), got {self.token_log_every!r}")
        if not _whole(self.token_log_top_k) or not 1 <= self.token_log_top_k <= MAX_TOP_K:
            raise ConfigError(f"cwgrpo.token_log_top_k must be a whole number in [1, {MAX_TOP_K}], "
                              f"got {self.token_log_top_k!r}")

    @classmethod
    def from_config(cls, config: DictConfig) -> "RecipeOptions":
        options = dict(config.get("cwgrpo") or {})
        known = [f.name for f in fields(cls)]
        unknown, missing = sorted(set(options) - set(known)), [k for k in known if k not in options]
        if unknown:
            raise ConfigError(f"unknown key(s) cwgrpo.{', cwgrpo.'.join(unknown)}; known: {', '.join(known)}")
        if missing:
            raise ConfigError(f"cwgrpo.{missing[0]} is missing: run the recipe's config (config/cwgrpo_trainer.yaml)")
        return cls(**options)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
