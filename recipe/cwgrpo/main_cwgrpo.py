"""Entry point of the CW-GRPO recipe: ``python -m recipe.cwgrpo.main_cwgrpo [hydra overrides]``.

Does what ``verl.trainer.main_ppo`` does, after checks that must fail before any GPU work: the plugin is
registered, the loss and estimator names exist, the CW options and the trainer mode agree. It runs verl's
TaskRunner with the ``cwgrpo`` trainer, which computes group/batch-scope weights (``cw_scope``).
"""

from __future__ import annotations

import logging
import os

import hydra
import ray
from omegaconf import DictConfig
from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import omega_conf_to_dataclass, validate_config
from verl.utils.device import auto_set_device

import cwgrpo_verl
from cwgrpo_verl.config import RECIPE_ENV

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A recipe option that cannot work, found before any GPU work."""


def check_recipe_config(config: DictConfig) -> None:
    """Coherence checks verl itself does not make (it finds a bad loss name only at the first update)."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    actor = config.actor_rollout_ref.actor
    loss_mode = actor.policy_loss.get("loss_mode", "vanilla")
    if loss_mode not in POLICY_LOSS_REGISTRY:
        raise ConfigError(
            f"actor_rollout_ref.actor.policy_loss.loss_mode={loss_mode!r} is not a registered policy loss; "
            f"known: {sorted(POLICY_LOSS_REGISTRY)}"
        )
    estimator = config.algorithm.adv_estimator
    if estimator not in ADV_ESTIMATOR_REGISTRY and estimator not in ("gae", "grpo"):
        raise ConfigError(f"algorithm.adv_estimator={estimator!r} is not registered; known: {sorted(ADV_ESTIMATOR_REGISTRY)}")
    scope = actor.policy_loss.get("cw_scope", "micro_batch")
    mode = config.trainer.v1.trainer_mode
    if scope != "micro_batch" and not (config.trainer.use_v1 and mode == "cwgrpo"):
        raise ConfigError(
            f"actor_rollout_ref.actor.policy_loss.cw_scope={scope} needs trainer.use_v1=true and "
            f"trainer.v1.trainer_mode=cwgrpo (got use_v1={config.trainer.use_v1}, trainer_mode={mode})"
        )
    group = config.actor_rollout_ref.rollout.n
    micro = actor.get("ppo_micro_batch_size_per_gpu")
    if loss_mode == "cw_grpo" and scope == "micro_batch" and not actor.use_dynamic_bsz and micro and micro < group:
        logger.warning(
            "cw_scope=micro_batch with ppo_micro_batch_size_per_gpu=%s < rollout.n=%s: each statistic covers less "
            "than one group. Raise the micro-batch or use cw_scope=group.",
            micro,
            group,
        )


def prepare(config: DictConfig) -> DictConfig:
    """All driver-side work before Ray starts; raises on any problem. Returns the config to run."""
    os.environ[RECIPE_ENV] = "1"  # group/batch scopes are legal here: this trainer computes their weights
    cwgrpo_verl.check_registered()
    auto_set_device(config)
    check_recipe_config(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    omega_conf_to_dataclass(config.algorithm)  # CWAlgoConfig checks its keys (verl keeps algorithm a dict)
    return config


class _CWGRPOTaskRunner(TaskRunnerV1.__ray_actor_class__):
    """verl's TaskRunnerV1 that first proves, in its own process, that the plugin and trainer are there."""

    def run(self, config: DictConfig):
        from verl.trainer.ppo.v1 import get_trainer_cls

        from recipe.cwgrpo import trainer  # noqa: F401  (registers trainer_mode=cwgrpo here)

        cwgrpo_verl.check_registered()
        trainer_cls = get_trainer_cls(config.trainer.v1.trainer_mode)
        scope = config.actor_rollout_ref.actor.policy_loss.get("cw_scope", "micro_batch")
        print(
            f"[cwgrpo] task runner pid {os.getpid()}: cw_grpo registered, trainer {trainer_cls.__name__}, "
            f"loss_mode={config.actor_rollout_ref.actor.policy_loss.loss_mode}, cw_scope={scope}",
            flush=True,
        )
        return super().run(config)


CWGRPOTaskRunner = ray.remote(num_cpus=1)(_CWGRPOTaskRunner)


@hydra.main(config_path="config", config_name="cwgrpo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    run_ppo(prepare(config), task_runner_class=CWGRPOTaskRunner)


if __name__ == "__main__":
    main()
