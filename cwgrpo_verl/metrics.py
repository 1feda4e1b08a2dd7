"""Weight and covariance statistics for logging, computed on device and moved to the host in one transfer.

The covariance tail follows Table 1 of the paper: ``pos_top_{q}`` is the mean of the largest q-fraction
of the token covariances, ``neg_top_{q}`` the mean of the smallest (most negative) q-fraction, for
q in 0.01%, 1%, 20%, 40%, 100% (at 100% both are the plain mean). The recipe's trainer logs them for every
method, once per step before the update, as ``cov/*``; on plain ``main_ppo`` the loss logs them per micro-batch
(with the weights) as ``actor/cw/cov_*``.
"""

from __future__ import annotations

import math

import torch

TAIL_FRACTIONS = {"0.01pct": 1e-4, "1pct": 1e-2, "20pct": 0.2, "40pct": 0.4, "100pct": 1.0}

COV_KEYS = (
    "mean",
    "std",
    *(f"pos_top_{k}" for k in TAIL_FRACTIONS),
    *(f"neg_top_{k}" for k in TAIL_FRACTIONS),
    "num_tokens",
)

WEIGHT_KEYS = (
    "weight_mean",
    "weight_std",
    "weight_min",
    "weight_max",
    "weight_frac_lt_0.5",
    "weight_frac_gt_2",
    "weight_ess_frac",
    *(f"cov_{k}" for k in COV_KEYS if k != "num_tokens"),
    "num_tokens",
    "num_responses",
    "has_tokens",
)



@torch.no_grad()
def weight_stats(weights: torch.Tensor, cov: torch.Tensor, response_mask: torch.Tensor,
                 cov_tails: bool = True) -> dict[str, torch.Tensor]:
    """0-d device tensors for every key of ``WEIGHT_KEYS`` (no host sync); without ``cov_tails`` the covariance's
    Table 1 tails (one sort) are left out, for the recipe, whose trainer logs them once per step (``cov/*``)."""
    keys = WEIGHT_KEYS if cov_tails else tuple(k for k in WEIGHT_KEYS if "_top_" not in k)
    if response_mask.numel() == 0:
        zero = weights.new_zeros((), dtype=torch.float32)
        return {k: zero for k in keys}
    mask = response_mask.bool()
    maskf = mask.float()
    w = weights.detach().float()
    n = maskf.sum()
    n_safe = n.clamp_min(1.0)
    w_sum = (w * maskf).sum()
    w_sq = (w.square() * maskf).sum()
    w_mean = w_sum / n_safe
    stats = {
        "weight_mean": w_mean,
        "weight_std": (((w - w_mean).square() * maskf).sum() / n_safe).sqrt(),
        "weight_min": torch.where(mask, w, math.inf).amin(),
        "weight_max": torch.where(mask, w, -math.inf).amax(),
        "weight_frac_lt_0.5": ((w < 0.5).float() * maskf).sum() / n_safe,
        "weight_frac_gt_2": ((w > 2.0).float() * maskf).sum() / n_safe,
        "weight_ess_frac": w_sum.square() / w_sq.clamp_min(1e-30) / n_safe,
    }
    empty = n == 0  # no valid token (padding only): every statistic 0 and has_tokens 0, never inf/NaN
    stats = {k: torch.where(empty, 0.0, v.float()) for k, v in stats.items()}
    stats.update({f"cov_{k}": v for k, v in covariance_stats(cov, response_mask, cov_tails).items()
                  if k != "num_tokens"})
    stats["num_tokens"] = n
    stats["num_responses"] = (maskf.sum(-1) > 0).float().sum()
    stats["has_tokens"] = (~empty).float()
    return stats


@torch.no_grad()
def covariance_stats(cov: torch.Tensor, response_mask: torch.Tensor, tails: bool = True) -> dict[str, torch.Tensor]:
    """0-d device tensors for every key of ``COV_KEYS``: moments and (with ``tails``) Table 1's tails of the token
    covariances."""
    if response_mask.numel() == 0:
        zero = cov.new_zeros((), dtype=torch.float32)
        return {k: zero for k in COV_KEYS if tails or "_top_" not in k}
    mask = response_mask.bool()
    maskf = mask.float()
    c = cov.detach().float()
    n = maskf.sum()
    n_safe = n.clamp_min(1.0)
    mean = (c * maskf).sum() / n_safe
    stats = {"mean": mean, "std": (((c - mean).square() * maskf).sum() / n_safe).sqrt()}
    if tails:
        stats.update(_cov_tail(c, mask, n))
    stats = {k: torch.where(n == 0, 0.0, v.float()) for k, v in stats.items()}
    stats["num_tokens"] = n
    return stats


def _cov_tail(cov: torch.Tensor, mask: torch.Tensor, n: torch.Tensor) -> dict[str, torch.Tensor]:
    """Top/bottom q-fraction means from one sort and a prefix sum, indexed on device (no nonzero/boolean index)."""
    flat = torch.where(mask, cov, math.inf).flatten()
    ascending = flat.sort().values.double()  # valid values first, +inf padding last
    prefix = torch.cat([ascending.new_zeros(1), ascending.cumsum(0)])  # prefix[k] = sum of the k smallest
    n_long = n.long()
    total = prefix.gather(0, n_long.reshape(1)).squeeze(0)
    out = {}
    for name, q in TAIL_FRACTIONS.items():
        k = torch.ceil(n * q).long().clamp(min=1)
        k = torch.minimum(k, n_long.clamp(min=1))
        lower = prefix.gather(0, k.reshape(1)).squeeze(0)
        rest = prefix.gather(0, (n_long - k).clamp(min=0).reshape(1)).squeeze(0)
        kf = k.double()
        empty = n_long == 0
        out[f"pos_top_{name}"] = torch.where(empty, 0.0, (total - rest) / kf)
        out[f"neg_top_{name}"] = torch.where(empty, 0.0, lower / kf)
    return out


def mean_over_micro_batches_with_tokens(metrics: dict[str, float], prefix: str) -> None:
    """Turn verl's mean over every micro-batch of the ``prefix`` statistics into the mean over those with a valid
    token, in place. A micro-batch of padding groups only reports 0 for every statistic and ``has_tokens`` 0, so
    dividing by the mean of ``has_tokens`` removes it exactly (verl averages each key over the same micro-batches)."""
    share = metrics.pop(f"{prefix}has_tokens", None)
    if not share or share == 1.0:
        return
    for key in [k for k in metrics if k.startswith(prefix)]:
        metrics[key] /= share


def to_host(stats: dict[str, torch.Tensor], prefix: str = "") -> dict[str, float]:
    """Move all statistics to Python floats with a single device-to-host copy."""
    if not stats:
        return {}
    keys = list(stats)
    values = torch.stack([stats[k].detach().float().reshape(()) for k in keys]).cpu().tolist()
    return {f"{prefix}{k}": v for k, v in zip(keys, values)}
