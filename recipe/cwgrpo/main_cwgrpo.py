"""Entry point of the CW-GRPO recipe: ``python -m recipe.cwgrpo.main_cwgrpo [hydra overrides]``. Does what
``verl.trainer.main_ppo`` does, after checks that must fail before any GPU work (in the driver: checks.py, then
verl's own checks; in the task runner: preflight.py), with the ``cwgrpo`` trainer (trainer.py)."""

from __future__ import annotations

import copy
import logging
import os

import hydra
import ray
from omegaconf import DictConfig
from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import omega_conf_to_dataclass, validate_config
from verl.utils.device import auto_set_device

from cwgrpo_verl.plugin import check_registered
from recipe.cwgrpo.batching import dispatched_prompts, rank_rows_multiple
from recipe.cwgrpo.checks import check_recipe_config
from recipe.cwgrpo.memory import log_update_floor

logger = logging.getLogger(__name__)


def prepare(config: DictConfig) -> DictConfig:
    """All driver-side work before Ray starts; raises on any problem. Returns the config to run."""
    check_registered()
    auto_set_device(config)
    use_reference = need_reference_policy(config)
    check_recipe_config(config)
    prompts, dispatched = config.data.train_batch_size, dispatched_prompts(config, use_reference)
    logger.info("[cwgrpo] %s prompt groups per step over %s GPU(s)%s (rank rows a multiple of %s)", prompts,
                config.trainer.nnodes * config.trainer.n_gpus_per_node,
                f": {dispatched - prompts} padding group(s) per step give every rank whole groups"
                if dispatched > prompts else "", rank_rows_multiple(config, use_reference))
    # verl's checks (the step's rows divide over the GPUs, ...) on the batch the trainer dispatches, padding included
    checked = copy.deepcopy(config)
    checked.data.train_batch_size = dispatched
    validate_config(config=checked, use_reference_policy=use_reference, use_critic=need_critic(config))
    omega_conf_to_dataclass(config.algorithm)  # CWAlgoConfig checks its keys (verl keeps algorithm a dict)
    log_update_floor(config)
    return config


class _CWGRPOTaskRunner(TaskRunnerV1.__ray_actor_class__):
    """verl's TaskRunnerV1 that first proves, in its own process, that the plugin and trainer are there."""

    def run(self, config: DictConfig):
        from verl.plugin.platform import get_platform
        from verl.trainer.ppo.v1 import get_trainer_cls

        from recipe.cwgrpo import preflight, trainer  # noqa: F401  (trainer: registers trainer_mode=cwgrpo here)

        check_registered()
        preflight.check_paths_on_every_node(config, accelerator=get_platform().ray_resource_name())
        if (log := preflight.keep_earlier_file_log(config)) is not None:
            print(f"[cwgrpo] {log.name.rsplit('.', 2)[0]}.jsonl holds an earlier attempt: this one logs to {log}",
                  flush=True)
        print(f"[cwgrpo] task runner pid {os.getpid()}: cw_grpo registered, trainer "
              f"{get_trainer_cls(config.trainer.v1.trainer_mode).__name__}, "
              f"loss_mode={config.actor_rollout_ref.actor.policy_loss.loss_mode}, cwgrpo.scope={config.cwgrpo.scope}",
              flush=True)
        return super().run(config)


CWGRPOTaskRunner = ray.remote(num_cpus=1)(_CWGRPOTaskRunner)


@hydra.main(config_path="config", config_name="cwgrpo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    run_ppo(prepare(config), task_runner_class=CWGRPOTaskRunner)


if __name__ == "__main__":
    main()
