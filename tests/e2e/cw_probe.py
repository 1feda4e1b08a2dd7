"""Test-only verl plugin: records what the cw_grpo loss computes on real micro-batches inside verl's trainer.

Loaded in every Ray process through VERL_USE_EXTERNAL_MODULES (after tools.cpu.backend). It wraps the
registered ``cw_grpo`` policy loss and saves, for the first micro-batches of each worker, the loss's inputs, its
options, the prompt groups it was handed (and the uids they were numbered from), its value and its gradient with respect to the log-probs, to
``$CWGRPO_PROBE_DIR``. tests/test_trainer_e2e.py recomputes them with the float64 loop reference.
"""

import os

import torch
from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, register_policy_loss

import cwgrpo_verl.loss  # noqa: F401  (registers cw_grpo first, so the wrapper below replaces it)
from cwgrpo_verl.config import cw_options
from cwgrpo_verl.groups import current_context

_original = POLICY_LOSS_REGISTRY["cw_grpo"]
_saved = 0
KEEP = 4


@register_policy_loss("cw_grpo")
def cw_grpo_probe(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean", config=None,
                  rollout_is_weights=None):
    global _saved
    loss, metrics = _original(old_log_prob=old_log_prob, log_prob=log_prob, advantages=advantages,
                              response_mask=response_mask, loss_agg_mode=loss_agg_mode, config=config,
                              rollout_is_weights=rollout_is_weights)
    directory = os.environ.get("CWGRPO_PROBE_DIR")
    if directory and _saved < KEEP and log_prob.requires_grad:
        (grad,) = torch.autograd.grad(loss, log_prob, retain_graph=True)
        context = current_context()
        groups = context.groups
        options = cw_options(config.policy_loss)
        torch.save(
            {
                "old_log_prob": old_log_prob.detach().cpu(), "log_prob": log_prob.detach().cpu(),
                "advantages": advantages.detach().cpu(), "response_mask": response_mask.cpu(),
                "groups": None if groups is None else groups.ids.cpu().tolist(),
                "uids": None if context.uids is None else list(context.uids),
                "loss": loss.detach().cpu(), "grad": grad.cpu(), "loss_agg_mode": loss_agg_mode,
                "global_batch_info": dict(config.global_batch_info),
                "clip": (_or(config.clip_ratio_low, config.clip_ratio), _or(config.clip_ratio_high, config.clip_ratio),
                         config.get("clip_ratio_c", 3.0)),
                "options": {k: getattr(options, k) for k in ("cw_logp_center", "cw_normalizer",
                                                              "cw_detach_weights", "cw_bandwidth_scale")},
            },
            os.path.join(directory, f"micro_batch_{os.getpid()}_{_saved}.pt"),
        )
        _saved += 1
    return loss, metrics


def _or(value, default):
    return default if value is None else value
