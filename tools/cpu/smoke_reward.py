"""The smoke run's reward: the project's, plus the fraction of digits in the response on training rows
(``cwgrpo/smoke``). An untrained tiny model never answers right, so the project's reward alone would give every
response the same score, every advantage 0, and a smoke run that tests nothing; evaluation rows score unchanged."""

from __future__ import annotations

from typing import Any

from tools.cpu.tiny import SMOKE_SOURCE


def compute_score(data_source: Any = None, solution_str: Any = "", ground_truth: Any = None,
                  extra_info: Any = None, **kwargs: Any) -> dict:
    from cwgrpo_verl.reward import compute_score as project_score

    result = dict(project_score(data_source, solution_str, ground_truth, extra_info, **kwargs))
    if data_source == SMOKE_SOURCE:
        text = solution_str or ""
        spread = sum(ch.isdigit() for ch in text) / max(len(text), 1)
        result["score"] = float(result["score"]) + spread
        result["digit_fraction"] = spread
    return result
