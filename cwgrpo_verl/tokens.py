"""The extreme tokens of a step, as JSON-ready records: the tokens with the largest |covariance| (and, where weights
are given, the most down-weighted ones), each with its text in context. Torch only: the recipe's trainer and the
demo hand it tensors they already hold and a ``decode`` function for token ids.

A step's log is bounded: at most ``MAX_TOP_K`` tokens per selection, ``WINDOW`` tokens of context on each side and
``MAX_TEXT`` characters per text field, so one step writes well under 1 MB whatever the model generates.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

MAX_TOP_K = 256
WINDOW = 16  # tokens of context on each side
MAX_TEXT = 160  # characters per text field (a token, its context, the prompt's end)
SELECTIONS = ("abs_cov", "low_weight")


def extreme_positions(cov: torch.Tensor, response_mask: torch.Tensor, k: int,
                      weights: Optional[torch.Tensor] = None) -> dict[str, list[tuple[int, int]]]:
    """``{selection: [(row, position), ...]}``, most extreme first: ``abs_cov``, the ``k`` valid tokens with the
    largest |cov|; with ``weights`` also ``low_weight``, the ``k`` with the smallest weight."""
    mask = response_mask.bool()
    k = min(int(k), int(mask.sum()))
    columns = cov.shape[-1]
    scores = {"abs_cov": torch.where(mask, cov.abs().double(), -torch.inf)}
    if weights is not None:
        scores["low_weight"] = torch.where(mask, -weights.detach().double(), -torch.inf)
    out = {}
    for name, score in scores.items():
        flat = torch.topk(score.flatten(), k).indices.tolist() if k else []
        out[name] = [(i // columns, i % columns) for i in flat]
    return out


def _clip(text: str, keep_end: bool = False) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return "…" + text[-MAX_TEXT + 1:] if keep_end else text[: MAX_TEXT - 1] + "…"


def token_records(
    step: int,
    positions: dict[str, list[tuple[int, int]]],
    *,
    responses: Sequence[Sequence[int]],
    decode: Callable[[Sequence[int]], str],
    uids: Sequence[str],
    advantages: torch.Tensor,
    log_prob: torch.Tensor,
    cov: torch.Tensor,
    weights: Optional[torch.Tensor] = None,
    rewards: Optional[Sequence[float]] = None,
    prompts: Optional[Sequence[Sequence[int]]] = None,
) -> list[dict]:
    """One record per selected token: where it is (prompt id, row, position), what it says (the token, the text
    before and after it, the prompt's end) and its numbers (advantage, log-prob, covariance, weight, reward)."""
    records = []
    for selection, places in positions.items():
        for rank, (row, pos) in enumerate(places):
            ids = list(responses[row])
            records.append({
                "step": int(step), "selection": selection, "rank": rank,
                "uid": str(uids[row]), "row": int(row), "position": int(pos), "response_tokens": len(ids),
                "token_id": int(ids[pos]),
                "token": _clip(decode(ids[pos:pos + 1])),
                "before": _clip(decode(ids[max(0, pos - WINDOW):pos]), keep_end=True),
                "after": _clip(decode(ids[pos + 1:pos + 1 + WINDOW])),
                "prompt_end": None if prompts is None else _clip(decode(list(prompts[row])), keep_end=True),
                "advantage": float(advantages[row, pos]), "log_prob": float(log_prob[row, pos]),
                "cov": float(cov[row, pos]),
                "weight": None if weights is None else float(weights[row, pos]),
                "reward": None if rewards is None else float(rewards[row]),
            })
    return records


def append(path: Path, records: list[dict]) -> None:
    """Append the records as JSON lines (a resumed run adds to the same file; nothing is overwritten)."""
    if not records:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        out.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        out.flush()
        os.fsync(out.fileno())


def log_path(metrics_log: Path) -> Path:
    """The token log beside a metrics log: ``<experiment>.jsonl`` -> ``<experiment>.tokens.jsonl``."""
    metrics_log = Path(metrics_log)
    stem = metrics_log.name[: -len(".jsonl")] if metrics_log.name.endswith(".jsonl") else metrics_log.name
    return metrics_log.with_name(f"{stem}.tokens.jsonl")


def due(step: int, every: int, first: bool) -> bool:
    """Log at the first step a run (or a resumed run) trains and every ``every``-th step; ``every=0``: off."""
    return every > 0 and (first or step % every == 0)
