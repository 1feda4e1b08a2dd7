"""verl policy loss ``cw_grpo``: PPO clip with covariance-weighted advantages (thin adapter over ``core``),
and the actor loss function the recipe's trainer installs on its workers."""

from __future__ import annotations

import logging
from typing import Any, Optional

import torch
from verl.trainer.ppo.core_algos import agg_loss, register_policy_loss

from cwgrpo_verl import LOSS_NAME
from cwgrpo_verl.config import cw_options
from cwgrpo_verl.core import cw_weights, ppo_clip_token_losses
from cwgrpo_verl.groups import LossContext, check_whole_groups, current_context, group_ids, loss_context
from cwgrpo_verl.metrics import to_host, weight_stats

METRIC_PREFIX = "actor/cw/"
#: Non-tensor key the recipe trainer adds to each update: the real (not padding) rows of one mini-batch.
UPDATE_ROWS_KEY = "cwgrpo_update_rows"
logger = logging.getLogger(__name__)
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


@register_policy_loss(LOSS_NAME)
def compute_policy_loss_cw_grpo(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config: Optional[Any] = None,
    rollout_is_weights: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """verl's ``vanilla`` PPO objective with A replaced by w~ * A.

    The statistics cover each prompt group of the micro-batch when the recipe's trainer hands the groups over
    (:func:`recipe_ppo_loss`), the whole micro-batch otherwise (plain ``main_ppo``).
    """
    assert config is not None, "cw_grpo needs the actor config"
    opts = cw_options(config.policy_loss)
    context = current_context()
    groups = context.groups
    clip_low = config.clip_ratio_low if config.clip_ratio_low is not None else config.clip_ratio
    clip_high = config.clip_ratio_high if config.clip_ratio_high is not None else config.clip_ratio
    cw = cw_weights(
        log_prob, advantages, response_mask, logp_center=opts.cw_logp_center, normalizer=opts.cw_normalizer,
        bandwidth_scale=opts.cw_bandwidth_scale, detach=opts.cw_detach_weights,
        segment_ids=None if groups is None else groups.ids, num_segments=None if groups is None else groups.count,
    )
    stats = {f"cw/{k}": v for k, v in weight_stats(cw.weights, cw.cov, response_mask, context.cov_tails).items()}
    if groups is not None:  # groups with a valid token: padding groups do not count
        tokens = response_mask.sum(-1).float()
        stats["cw/groups_per_micro_batch"] = tokens.new_zeros(groups.count).index_add(0, groups.ids, tokens).gt(0).sum()
    loss_mat, pg_stats = ppo_clip_token_losses(old_log_prob, log_prob, cw.weights.to(advantages.dtype) * advantages,
                                               response_mask, clip_low, clip_high, config.get("clip_ratio_c", 3.0))
    if rollout_is_weights is not None:
        loss_mat = loss_mat * rollout_is_weights
    pg_loss = agg_loss(loss_mat=loss_mat, loss_mask=response_mask, loss_agg_mode=loss_agg_mode,
                       **config.global_batch_info)
    stats.update(pg_stats)
    metrics = to_host(stats, prefix="actor/")  # the one device-to-host transfer of this call
    if groups is None:
        _check_statistics_scope(metrics, config)
    return pg_loss, metrics


def recipe_ppo_loss(config, model_output, data, dp_group=None, *, group_scope: bool = False):
    """verl's actor loss (``ppo_loss``) as the recipe runs it, installed on the actor workers by its trainer.

    Normalises the sequence-mean modes by the real rows of the mini-batch (verl divides by its configured size,
    which here also counts the padding groups), and tells ``cw_grpo`` that the trainer logs the covariance tails.
    With ``group_scope`` it hands the micro-batch's prompt groups to ``cw_grpo``: it reads the ``uid`` column that
    verl carries with every sample, refuses a micro-batch that holds part of a group, and numbers the groups.
    """
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.losses import ppo_loss

    rows = tu.get(data, UPDATE_ROWS_KEY, default=None)
    if rows is not None:
        tu.assign_non_tensor(data, global_batch_size=rows)
    groups = uids = None
    if group_scope:
        uids = data["uid"]
        uids = tuple(uids.tolist() if hasattr(uids, "tolist") else uids)
        check_whole_groups(uids, config.rollout_n)
        groups = group_ids(uids, device=model_output["log_probs"].device)
    with loss_context(LossContext(groups=groups, cov_tails=False, uids=uids)):
        return ppo_loss(config, model_output, data, dp_group)


def _check_statistics_scope(metrics: dict[str, float], config) -> None:
    """Warn once when micro-batch statistics cannot mean what the paper means."""
    responses = metrics[f"{METRIC_PREFIX}num_responses"]
    group_size = config.get("rollout_n", None)
    if responses == 0:  # padding only
        return
    if responses < 2:
        _warn_once(
            "single",
            "cw_grpo: a micro-batch held a single response, so its centred advantage is 0 and every weight is 1 "
            "(CW-GRPO silently equals GRPO). Raise actor.ppo_micro_batch_size_per_gpu to at least rollout.n, "
            "or use the recipe with cwgrpo.scope=group.",
        )
    elif isinstance(group_size, int) and responses < group_size:
        _warn_once(
            "small",
            f"cw_grpo: a micro-batch held {int(responses)} responses, fewer than one group (rollout.n={group_size}); "
            "the covariance statistics cover less than a group. Use ppo_micro_batch_size_per_gpu >= rollout.n "
            "(ideally a multiple of it) or the recipe with cwgrpo.scope=group.",
        )
