"""Statistics over a whole training batch before the update, computed by the recipe trainer once per step.

- :func:`group_covariance`, :func:`covariance_metrics`: the token covariances of every method (GRPO, Clip-Cov,
  KL-Cov, CW-GRPO), per prompt group, from the old log-probs and the advantages: observe-only, logged as ``cov/*``
  (the paper's Table 1) and read by the token log.
- :func:`batch_scope_weights`: ``cwgrpo.scope=batch``, the paper text's "all N tokens" reading: one set of
  statistics over the whole batch, detached by construction, multiplied into the advantages the actor trains on
  (the actor then runs verl's ``vanilla`` PPO clip on them, not ``cw_grpo``, which would weight again).
"""

from __future__ import annotations

from typing import Sequence

import torch

from cwgrpo_verl.core import cw_weights, token_covariance
from cwgrpo_verl.groups import group_ids
from cwgrpo_verl.metrics import covariance_stats, to_host, weight_stats


@torch.no_grad()
def group_covariance(
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    uids: Sequence,
    *,
    logp_center: str = "sequence",
) -> torch.Tensor:
    """cov_it = (logp_it - mu_logp) (A_i - mu_A), mu_A per prompt group: what ``cov/*`` and the token log read."""
    groups = group_ids(uids, device=advantages.device)
    return token_covariance(old_log_prob, advantages, response_mask, logp_center=logp_center,
                            segment_ids=groups.ids, num_segments=groups.count)


def covariance_metrics(cov: torch.Tensor, response_mask: torch.Tensor) -> dict[str, float]:
    """``cov/*``: moments and Table 1's tails of the token covariances."""
    return to_host(covariance_stats(cov, response_mask), prefix="cov/")


@torch.no_grad()
def batch_scope_weights(
    advantages: torch.Tensor,
    old_log_prob: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    logp_center: str = "sequence",
    normalizer: str = "padded",
    bandwidth_scale: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """(weighted advantages, ``cw/*`` metrics) with one statistic over the whole batch."""
    cw = cw_weights(old_log_prob, advantages, response_mask, logp_center=logp_center, normalizer=normalizer,
                    bandwidth_scale=bandwidth_scale, detach=True)
    metrics = to_host(weight_stats(cw.weights, cw.cov, response_mask, cov_tails=False), prefix="cw/")
    return (cw.weights * advantages).to(advantages.dtype), metrics
