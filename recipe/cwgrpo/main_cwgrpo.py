"""Entry point of the CW-GRPO recipe: ``python -m recipe.cwgrpo.main_cwgrpo [hydra overrides]``.

Does what ``verl.trainer.main_ppo`` does, after checks that must fail before any GPU work: in the driver, the
plugin is registered, the loss and estimator names exist, and the CW options, batch sizes and trainer mode can
work together (a configuration that cannot keep prompt groups whole is refused, naming the key); in the task runner,
the plugin is registered there too and every node sees the run's paths. It then runs verl's TaskRunner with the
``cwgrpo`` trainer (recipe/cwgrpo/trainer.py).
"""

from __future__ import annotations

import logging
import math
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
    _check_recipe_options(config)
    scope = actor.policy_loss.get("cw_scope", "micro_batch") if loss_mode == "cw_grpo" else "micro_batch"
    mode = config.trainer.v1.trainer_mode
    if scope != "micro_batch" and not (config.trainer.use_v1 and mode == "cwgrpo"):
        raise ConfigError(
            f"actor_rollout_ref.actor.policy_loss.cw_scope={scope} needs trainer.use_v1=true and "
            f"trainer.v1.trainer_mode=cwgrpo (got use_v1={config.trainer.use_v1}, trainer_mode={mode})"
        )
    if scope == "group":
        _check_whole_groups_possible(config)
    if scope == "micro_batch" and loss_mode == "cw_grpo" and actor.use_dynamic_bsz:
        raise ConfigError(
            "actor_rollout_ref.actor.use_dynamic_bsz=true packs micro-batches by a token budget, so "
            "cw_scope=micro_batch would take its statistics over whatever responses fit together: use "
            "actor_rollout_ref.actor.policy_loss.cw_scope=group (exact per prompt group) or batch"
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


def _check_recipe_options(config: DictConfig) -> None:
    options = config.get("cwgrpo") or {}
    unknown = set(options) - {"logprob_temperature", "stop_at_step"}
    if unknown:
        raise ConfigError(f"unknown key(s) cwgrpo.{', cwgrpo.'.join(sorted(unknown))}; known: logprob_temperature, stop_at_step")
    temperature = options.get("logprob_temperature")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 < temperature < math.inf):
        raise ConfigError(f"cwgrpo.logprob_temperature must be null or a finite number > 0, got {temperature!r}")
    stop, total = options.get("stop_at_step"), config.trainer.total_training_steps
    if stop is not None and not (isinstance(stop, int) and not isinstance(stop, bool) and stop >= 1):
        raise ConfigError(f"cwgrpo.stop_at_step must be null or a whole number >= 1, got {stop!r}")
    if stop is not None and total is not None and stop > total:
        raise ConfigError(
            f"cwgrpo.stop_at_step={stop} is after the end of the schedule (trainer.total_training_steps={total})"
        )


def _check_whole_groups_possible(config: DictConfig) -> None:
    """cw_scope=group needs every micro-batch to be whole prompt groups; refuse what cannot keep them whole."""
    actor, n = config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout.n
    key = "actor_rollout_ref.actor"
    why = "cw_scope=group takes its statistics over whole prompt groups in every micro-batch"
    if actor.get("shuffle", False):
        raise ConfigError(f"{why}, and {key}.shuffle=true mixes rows across groups: set {key}.shuffle=false")
    if (config.get("distillation") or {}).get("enabled", False):
        raise ConfigError(f"{why}; it does not support distillation (distillation.enabled=true)")
    if actor.use_dynamic_bsz:
        need = n * (config.data.max_prompt_length + config.data.max_response_length)
        if actor.ppo_max_token_len_per_gpu < need:
            raise ConfigError(
                f"{why}: with {key}.use_dynamic_bsz=true a micro-batch must fit one whole group, up to rollout.n x "
                f"(max_prompt_length + max_response_length) = {need} tokens; {key}.ppo_max_token_len_per_gpu is "
                f"{actor.ppo_max_token_len_per_gpu}"
            )
    elif actor.ppo_micro_batch_size_per_gpu % n:
        raise ConfigError(
            f"{why}: {key}.ppo_micro_batch_size_per_gpu={actor.ppo_micro_batch_size_per_gpu} must be a multiple of "
            f"actor_rollout_ref.rollout.n={n}"
        )
    sequence_parallel = (actor.get("fsdp_config") or {}).get("ulysses_sequence_parallel_size", 1) or 1
    dp = config.trainer.nnodes * config.trainer.n_gpus_per_node // sequence_parallel
    if actor.ppo_mini_batch_size % dp:
        raise ConfigError(
            f"{why}: {key}.ppo_mini_batch_size={actor.ppo_mini_batch_size} prompts must split evenly over the "
            f"{dp} data-parallel ranks (trainer.nnodes x trainer.n_gpus_per_node / ulysses_sequence_parallel_size)"
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
        from verl.plugin.platform import get_platform
        from verl.trainer.ppo.v1 import get_trainer_cls

        from recipe.cwgrpo import trainer  # noqa: F401  (registers trainer_mode=cwgrpo here)
        from recipe.cwgrpo.preflight import check_paths_on_every_node, keep_earlier_file_log

        cwgrpo_verl.check_registered()
        check_paths_on_every_node(config, accelerator=get_platform().ray_resource_name())
        if (log := keep_earlier_file_log(config)) is not None:
            print(f"[cwgrpo] {log.name.rsplit('.', 2)[0]}.jsonl holds an earlier attempt: this one logs to {log}", flush=True)
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
