"""The ``cw_grpo`` options as a verl ``PolicyLossConfig`` subclass, validated where verl builds the config.

verl instantiates ``actor_rollout_ref.actor.policy_loss`` through its ``_target_`` in the driver
(``validate_config``) and in every worker, so a bad value fails at start-up with a message naming the key. What a
config means depends on nothing but the config.
"""

from __future__ import annotations

from dataclasses import dataclass

from verl.trainer.config import AlgoConfig
from verl.workers.config import PolicyLossConfig

from cwgrpo_verl.core import LOGP_CENTERS, NORMALIZERS

KEY = "actor_rollout_ref.actor.policy_loss"


@dataclass
class CWGRPOPolicyLossConfig(PolicyLossConfig):
    """verl's policy-loss config plus the CW-GRPO options (defaults = the authors' released code).

    Args:
        cw_logp_center: "sequence" (per-response mean log-prob) or "batch" (mean over all valid tokens).
        cw_normalizer: "padded" (N = rows x longest response) or "valid_tokens" (mean weight 1 over tokens).
        cw_detach_weights: False lets the gradient flow through the weights (authors' code).
        cw_bandwidth_scale: Gaussian bandwidth = this x std of the covariances (1.0: hyperparameter-free).

    Which responses a statistic covers is not an option of the loss: each prompt group when the recipe's trainer
    hands the micro-batch's groups to it, the micro-batch otherwise (plain ``main_ppo``); see ``cwgrpo.scope``.
    """

    cw_logp_center: str = "sequence"
    cw_normalizer: str = "padded"
    cw_detach_weights: bool = False
    cw_bandwidth_scale: float = 1.0

    def __post_init__(self):
        for name, allowed in (("cw_logp_center", LOGP_CENTERS), ("cw_normalizer", NORMALIZERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{KEY}.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if not isinstance(self.cw_detach_weights, bool):
            raise ValueError(f"{KEY}.cw_detach_weights must be true or false, got {self.cw_detach_weights!r}")
        scale = self.cw_bandwidth_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0 or scale == float("inf"):
            raise ValueError(f"{KEY}.cw_bandwidth_scale must be a finite float > 0, got {scale!r}")


@dataclass
class CWAlgoConfig(AlgoConfig):
    """verl's ``algorithm`` config plus the ``cw_grpo`` estimator's epsilon (authors: 1e-4; verl's grpo: 1e-6)."""

    cw_adv_epsilon: float = 1e-4

    def __post_init__(self):
        check_adv_epsilon(self.cw_adv_epsilon, self.norm_adv_by_std_in_grpo)


def check_adv_epsilon(eps, norm_by_std: bool = True) -> None:
    """eps must be finite and >= 0, and > 0 when dividing by the std: a group of equal rewards has std 0."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < float("inf"):
        raise ValueError(f"algorithm.cw_adv_epsilon must be a finite float >= 0, got {eps!r}")
    if norm_by_std and eps == 0:
        raise ValueError("algorithm.cw_adv_epsilon=0 with algorithm.norm_adv_by_std_in_grpo=true divides 0 by 0 for "
                         "every group whose rewards are all equal (NaN advantages): use a positive epsilon (the "
                         "authors': 1e-4)")


def cw_options(policy_loss_config) -> CWGRPOPolicyLossConfig:
    """The CW options of an actor's ``policy_loss``; a plain ``PolicyLossConfig`` gets the defaults."""
    return policy_loss_config if isinstance(policy_loss_config, CWGRPOPolicyLossConfig) else _DEFAULTS


_DEFAULTS = CWGRPOPolicyLossConfig(loss_mode="cw_grpo")
