"""Entry point of the CW-GRPO recipe: ``python -m recipe.cwgrpo.main_cwgrpo [hydra overrides]``.

Does what ``verl.trainer.main_ppo`` does, after checks that must fail before any GPU work: in the driver, the
plugin is registered, the loss and estimator names exist, and the CW options, batch sizes and trainer mode can
work together (a configuration that cannot keep prompt groups whole is refused, naming the key); in the task runner,
the plugin is registered there too and every node sees the run's paths. It then runs verl's TaskRunner with the
``cwgrpo`` trainer (recipe/cwgrpo/trainer.py).
"""

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
from recipe.cwgrpo.batching import dispatched_prompts, sequence_parallel_size
from recipe.cwgrpo.checks import check_recipe_config, dispatch_summary

logger = logging.getLogger(__name__)


def prepare(config: DictConfig) -> DictConfig:
    """All driver-side work before Ray starts; raises on any problem. Returns the config to run."""
    check_registered()
    auto_set_device(config)
    use_reference = need_reference_policy(config)
    check_recipe_config(config, use_reference)
    # verl's check that the step's rows divide over the GPUs, on the batch the trainer dispatches (padding included)
    dispatched = copy.deepcopy(config)
    dispatched.data.train_batch_size = dispatched_prompts(config, use_reference)
    logger.info("[cwgrpo] %s", dispatch_summary(config, use_reference))
    validate_config(config=dispatched, use_reference_policy=use_reference, use_critic=need_critic(config))
    omega_conf_to_dataclass(config.algorithm)  # CWAlgoConfig checks its keys (verl keeps algorithm a dict)
    log_memory_floor(config)
    return config


def log_memory_floor(config: DictConfig) -> None:
    """The estimated per-GPU memory of the actor update (recipe/cwgrpo/memory.py), where the model's config.json
    can be read; the levers below it are sequence parallelism, FSDP2's offload_policy and more GPUs."""
    from transformers import AutoConfig

    from recipe.cwgrpo.memory import PRESET_MODELS, ModelShape, describe, update_floor

    actor, data, path = config.actor_rollout_ref.actor, config.data, str(config.actor_rollout_ref.model.path)
    shape = PRESET_MODELS.get(os.path.basename(path.rstrip("/")))
    try:  # a local model, or one in the Hugging Face cache: never a download from the driver
        shape = shape or ModelShape.from_config(AutoConfig.from_pretrained(path, local_files_only=True))
    except Exception as error:  # noqa: BLE001 - an estimate for the log: never a reason to stop
        logger.info("[cwgrpo] no memory estimate (cannot read the model's config.json: %s)", error)
        return
    responses = (actor.ppo_max_token_len_per_gpu // (data.max_prompt_length + data.max_response_length)
                 if actor.use_dynamic_bsz else actor.ppo_micro_batch_size_per_gpu)
    terms = update_floor(shape, gpus=config.trainer.nnodes * config.trainer.n_gpus_per_node,
                         micro_batch_responses=max(1, responses),
                         sequence_length=data.max_prompt_length + data.max_response_length,
                         sequence_parallel=sequence_parallel_size(config),
                         offload_policy=bool((actor.get("fsdp_config") or {}).get("offload_policy", False)))
    logger.info("[cwgrpo] estimated actor-update memory per GPU: %s. Levers: "
                "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size (divides activations and logits), "
                "fsdp_config.offload_policy=true (model states on the CPU), more GPUs (shards the model states); "
                "docs/memory.md", describe(terms))


class _CWGRPOTaskRunner(TaskRunnerV1.__ray_actor_class__):
    """verl's TaskRunnerV1 that first proves, in its own process, that the plugin and trainer are there."""

    def run(self, config: DictConfig):
        from verl.plugin.platform import get_platform
        from verl.trainer.ppo.v1 import get_trainer_cls

        from recipe.cwgrpo import trainer  # noqa: F401  (registers trainer_mode=cwgrpo here)
        from recipe.cwgrpo.preflight import check_paths_on_every_node, keep_earlier_file_log

        check_registered()
        check_paths_on_every_node(config, accelerator=get_platform().ray_resource_name())
        if (log := keep_earlier_file_log(config)) is not None:
            print(f"[cwgrpo] {log.name.rsplit('.', 2)[0]}.jsonl holds an earlier attempt: this one logs to {log}", flush=True)
        trainer_cls = get_trainer_cls(config.trainer.v1.trainer_mode)
        print(
            f"[cwgrpo] task runner pid {os.getpid()}: cw_grpo registered, trainer {trainer_cls.__name__}, "
            f"loss_mode={config.actor_rollout_ref.actor.policy_loss.loss_mode}, cwgrpo.scope={config.cwgrpo.scope}",
            flush=True,
        )
        return super().run(config)


CWGRPOTaskRunner = ray.remote(num_cpus=1)(_CWGRPOTaskRunner)


@hydra.main(config_path="config", config_name="cwgrpo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    run_ppo(prepare(config), task_runner_class=CWGRPOTaskRunner)


if __name__ == "__main__":
    main()
