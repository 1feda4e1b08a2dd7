"""``cw_scope=group|batch``: weights computed once per training batch, before the update.

The recipe trainer calls :func:`weight_advantages` right after the advantages are computed, when the whole
batch, its prompt-group ``uid`` s and its old log-probs are at hand. The weights are multiplied into the
token-level advantages; the ``cw_grpo`` policy loss then does not weight again. Old log-probs equal the current
ones on the first on-policy update, so these weights are the detached weights of the authors' setting
(statistics over exactly one group of responses to one prompt) whatever verl's micro-batching does.
"""

from __future__ import annotations

from typing import Sequence

import torch

from cwgrpo_verl.core import cw_weights
from cwgrpo_verl.metrics import to_host, weight_stats

SCOPE_CODES = {"micro_batch": 0, "group": 1, "batch": 2}


def segment_ids_from_uids(uids: Sequence, device=None) -> tuple[torch.Tensor, int]:
    """Map each row's group id to 0..S-1 (first-appearance order); the weights do not depend on the order."""
    codes: dict = {}
    ids = [codes.setdefault(u, len(codes)) for u in uids]
    return torch.tensor(ids, dtype=torch.long, device=device), len(codes)


def scoped_weights(
    advantages: torch.Tensor,
    old_log_prob: torch.Tensor,
    response_mask: torch.Tensor,
    uids: Sequence,
    *,
    scope: str,
    logp_center: str = "sequence",
    normalizer: str = "padded",
    bandwidth_scale: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Return (weighted advantages, metrics) for ``scope`` in {"group", "batch"}."""
    if scope == "group":
        segment_ids, num_segments = segment_ids_from_uids(uids, device=advantages.device)
    elif scope == "batch":
        segment_ids, num_segments = None, 1
    else:
        raise ValueError(f"scoped_weights handles cw_scope 'group' or 'batch', got {scope!r}")
    with torch.no_grad():
        cw = cw_weights(
            old_log_prob,
            advantages,
            response_mask,
            logp_center=logp_center,
            normalizer=normalizer,
            bandwidth_scale=bandwidth_scale,
            detach=True,
            segment_ids=segment_ids,
            num_segments=num_segments,
        )
        weighted = (cw.weights * advantages).to(advantages.dtype)
        stats = weight_stats(cw.weights, cw.cov, response_mask)
    metrics = to_host(stats, prefix="cw/")
    groups = len(set(uids))
    metrics.update(
        {
            "cw/scope": float(SCOPE_CODES[scope]),
            "cw/num_statistics": float(num_segments),
            "cw/responses_per_statistic": metrics["cw/num_responses"] / num_segments,
            "cw/num_groups": float(groups),
        }
    )
    return weighted, metrics


def weight_advantages(data, opts) -> dict[str, float]:
    """Weight ``data.batch['advantages']`` of a verl ``DataProto`` in place; return the metrics.

    ``opts`` is the ``policy_loss`` config (a ``CWGRPOPolicyLossConfig`` or a DictConfig with its keys).
    """
    weighted, metrics = scoped_weights(
        data.batch["advantages"],
        data.batch["old_log_probs"],
        data.batch["response_mask"],
        list(data.non_tensor_batch["uid"]),
        scope=opts.get("cw_scope"),
        logp_center=opts.get("cw_logp_center", "sequence"),
        normalizer=opts.get("cw_normalizer", "padded"),
        bandwidth_scale=float(opts.get("cw_bandwidth_scale", 1.0)),
    )
    data.batch["advantages"] = weighted
    return metrics
