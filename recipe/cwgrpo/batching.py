"""How the recipe lays a step's prompt groups over the GPUs, read from verl's config: one place for the driver's
start-up checks and the trainer (``cwgrpo_verl.groups.plan_layout`` does the layout itself)."""

from __future__ import annotations

import math

from omegaconf import DictConfig

from cwgrpo_verl.groups import groups_per_rank


def sequence_parallel_size(config: DictConfig, role: str = "actor") -> int:
    """The Ulysses size of ``role`` (actor or ref): ``fsdp_config``'s, or the deprecated ``<role>.`` key's when > 1
    (as verl's ``FSDPActorConfig``)."""
    node = config.actor_rollout_ref[role]
    legacy = node.get("ulysses_sequence_parallel_size", 1) or 1
    if legacy > 1:
        return int(legacy)
    return int((node.get("fsdp_config") or {}).get("ulysses_sequence_parallel_size", 1) or 1)


def data_parallel_size(config: DictConfig) -> int:
    return config.trainer.nnodes * config.trainer.n_gpus_per_node // sequence_parallel_size(config)


def rank_rows_multiple(config: DictConfig, use_reference: bool = True) -> int:
    """What each rank's rows of a mini-batch must be a multiple of: the fixed micro-batch sizes (verl asserts that
    they divide it), and the sequence-parallel size (``validate_config``: the step's rows divide over every GPU)."""
    ref = config.actor_rollout_ref
    sizes = [sequence_parallel_size(config)]
    if not ref.actor.use_dynamic_bsz:
        sizes += [ref.actor.ppo_micro_batch_size_per_gpu, ref.rollout.log_prob_micro_batch_size_per_gpu]
        if use_reference:
            sizes.append(ref.ref.log_prob_micro_batch_size_per_gpu)
    return math.lcm(*(int(size) for size in sizes if size))


def dispatched_prompts(config: DictConfig, use_reference: bool = True) -> int:
    """Prompt groups per step as the workers receive them: real groups plus the padding groups that give every
    rank and mini-batch whole groups."""
    prompts, mini = config.data.train_batch_size, config.actor_rollout_ref.actor.ppo_mini_batch_size
    per_rank = groups_per_rank(mini, data_parallel_size(config), config.actor_rollout_ref.rollout.n,
                               rank_rows_multiple(config, use_reference))
    return -(-prompts // mini) * per_rank * data_parallel_size(config)
