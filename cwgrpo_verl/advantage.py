"""``algorithm.adv_estimator=cw_grpo``: group-relative advantages with the authors' normalisation.

Options, read from the ``algorithm`` config (add with ``+algorithm.<key>=...`` on a plain ``main_ppo``):
- ``norm_adv_by_std_in_grpo`` (verl's own key, default true): divide by the group std; false = Dr. GRPO.
- ``cw_adv_epsilon`` (default 1e-4, the authors' value; verl's ``grpo`` uses 1e-6): (r - mean) / (std + eps).
The std is the unbiased one, as in the authors' code and verl's ``grpo``. Computed by verl's vectorised GRPO.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from verl.trainer.ppo.core_algos import (
    ADV_ESTIMATOR_REGISTRY,
    compute_grpo_vectorized_outcome_advantage,
    register_adv_est,
)

from cwgrpo_verl import ESTIMATOR_NAME
from cwgrpo_verl.config import check_adv_epsilon

DEFAULT_EPSILON = 1e-4


def compute_cw_grpo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    config: Optional[Any] = None,
    **_: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_i - mean_g) / (std_g + eps) per prompt group ``index``, broadcast over the response's tokens."""
    config = config if config is not None else {}
    epsilon = config.get("cw_adv_epsilon", DEFAULT_EPSILON)
    norm_by_std = bool(config.get("norm_adv_by_std_in_grpo", True))
    check_adv_epsilon(epsilon, norm_by_std)
    return compute_grpo_vectorized_outcome_advantage(
        token_level_rewards=token_level_rewards,
        response_mask=response_mask,
        index=index,
        epsilon=float(epsilon),
        norm_adv_by_std_in_grpo=norm_by_std,
    )


# register once: verl raises if a name is re-registered to a different function (e.g. a module reload)
if ADV_ESTIMATOR_REGISTRY.get(ESTIMATOR_NAME) is None:
    register_adv_est(ESTIMATOR_NAME)(compute_cw_grpo_advantage)
