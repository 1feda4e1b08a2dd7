"""The recipe's start-up checks, in the driver before Ray starts: what verl would find only at the first update, on
the cluster, or never (a silently ignored option). Each refusal names the key to change."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from omegaconf import DictConfig, open_dict

from recipe.cwgrpo.batching import dispatched_prompts, rank_rows_multiple, sequence_parallel_size
from recipe.cwgrpo.options import ConfigError, RecipeOptions

logger = logging.getLogger(__name__)

TRAINER_MODE = "cwgrpo"
STRATEGIES = ("fsdp", "fsdp2")
ROLLOUT = "actor_rollout_ref.rollout"


def check_recipe_config(config: DictConfig, use_reference: bool = True) -> None:
    """Coherence checks verl itself does not make (it finds a bad loss name only at the first update)."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    _check_engine(config)
    actor = config.actor_rollout_ref.actor
    loss_mode = actor.policy_loss.get("loss_mode", "vanilla")
    if loss_mode not in POLICY_LOSS_REGISTRY:
        raise ConfigError(f"actor_rollout_ref.actor.policy_loss.loss_mode={loss_mode!r} is not a registered policy "
                          f"loss; known: {sorted(POLICY_LOSS_REGISTRY)}")
    estimator = config.algorithm.adv_estimator
    if estimator not in ADV_ESTIMATOR_REGISTRY and estimator not in ("gae", "grpo"):
        raise ConfigError(f"algorithm.adv_estimator={estimator!r} is not registered; known: {sorted(ADV_ESTIMATOR_REGISTRY)}")
    mode = config.trainer.v1.trainer_mode
    if mode != TRAINER_MODE:
        raise ConfigError(f"trainer.v1.trainer_mode={mode}: the recipe's options (cwgrpo.*: the scope of the "
                          "statistics, the log-prob temperature, stop_at_step) and its whole-group batching need its "
                          f"trainer, trainer.v1.trainer_mode={TRAINER_MODE}; for verl's own trainer run "
                          "`python -m verl.trainer.main_ppo` with the README's flags")
    options = RecipeOptions.from_config(config)
    total = config.trainer.total_training_steps
    if options.stop_at_step is not None and total is not None and options.stop_at_step > total:
        raise ConfigError(f"cwgrpo.stop_at_step={options.stop_at_step} is after the end of the schedule "
                          f"(trainer.total_training_steps={total})")
    scope = options.scope if loss_mode == "cw_grpo" else "micro_batch"
    if scope == "batch" and not actor.policy_loss.get("cw_detach_weights", False):
        raise ConfigError("cwgrpo.scope=batch computes the weights once per step, before the update, from the old "
                          "log-probs: no gradient can flow through them. Set "
                          "actor_rollout_ref.actor.policy_loss.cw_detach_weights=true, or use cwgrpo.scope=group for "
                          "the gradient through the weights (the authors' code)")
    _check_whole_groups(config, scope, use_reference)
    if scope == "micro_batch" and loss_mode == "cw_grpo" and actor.use_dynamic_bsz:
        raise ConfigError(
            "actor_rollout_ref.actor.use_dynamic_bsz=true packs micro-batches by a token budget, so "
            "cwgrpo.scope=micro_batch would take its statistics over whatever responses fit together: use "
            "cwgrpo.scope=group (exact per prompt group) or batch"
        )
    group, micro = config.actor_rollout_ref.rollout.n, actor.get("ppo_micro_batch_size_per_gpu")
    if loss_mode == "cw_grpo" and scope == "micro_batch" and not actor.use_dynamic_bsz and micro and micro < group:
        logger.warning("cwgrpo.scope=micro_batch with ppo_micro_batch_size_per_gpu=%s < rollout.n=%s: each statistic "
                       "covers less than one group. Raise the micro-batch or use cwgrpo.scope=group.", micro, group)
    resolve_logprobs_mode(config)


def _check_engine(config: DictConfig) -> None:
    """The recipe is verl's v1 trainer on its FSDP engine: anything else would run without it, or fail later."""
    if not config.trainer.get("use_v1", True):
        raise ConfigError("trainer.use_v1=false runs verl's legacy trainer, which ignores trainer.v1.trainer_mode and "
                          "so the whole recipe (whole prompt groups, cwgrpo.* options): remove the override")
    engine = config.get("model_engine", "dp")
    if engine != "dp":
        raise ConfigError(f"model_engine={engine}: the recipe runs verl's FSDP engine (model_engine=dp, "
                          f"actor_rollout_ref.actor.strategy in {list(STRATEGIES)}); it is not tested with {engine}")
    strategy = config.actor_rollout_ref.actor.strategy
    if strategy not in STRATEGIES:
        raise ConfigError(f"actor_rollout_ref.actor.strategy={strategy}: the recipe runs verl's FSDP engine "
                          f"({' or '.join(STRATEGIES)}); Megatron would need model_engine=megatron and is not tested")


def _check_whole_groups(config: DictConfig, scope: str, use_reference: bool) -> None:
    """The recipe's trainer gives every rank whole prompt groups (any GPU count: padding groups fill up); with
    cwgrpo.scope=group every micro-batch must be whole groups too. Refuse what cannot keep them whole."""
    actor, n = config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout.n
    key = "actor_rollout_ref.actor"
    if actor.get("shuffle", False):
        raise ConfigError(f"{key}.shuffle=true mixes rows across prompt groups inside a rank: set {key}.shuffle=false")
    if scope != "group":
        return
    why = "cwgrpo.scope=group takes its statistics over whole prompt groups in every micro-batch"
    if (config.get("distillation") or {}).get("enabled", False):
        raise ConfigError(f"{why}; it does not support distillation (distillation.enabled=true)")
    if actor.use_dynamic_bsz:
        sp = sequence_parallel_size(config)
        need = n * (config.data.max_prompt_length + config.data.max_response_length)
        if actor.ppo_max_token_len_per_gpu * sp < need:
            raise ConfigError(
                f"{why}: with {key}.use_dynamic_bsz=true a micro-batch must fit one whole group, up to rollout.n x "
                f"(max_prompt_length + max_response_length) = {need} tokens; its budget is {key}.ppo_max_token_len_per_gpu"
                f" x the sequence-parallel size = {actor.ppo_max_token_len_per_gpu} x {sp}")
    elif actor.ppo_micro_batch_size_per_gpu % n:
        raise ConfigError(f"{why}: {key}.ppo_micro_batch_size_per_gpu={actor.ppo_micro_batch_size_per_gpu} must be "
                          f"a multiple of actor_rollout_ref.rollout.n={n}")


@dataclass(frozen=True)
class LogprobConvention:
    """At which temperature a log-probability is taken, and whether over the top-k/top-p truncated vocabulary."""

    temperature: float
    truncated: bool = False


def actor_convention(config: DictConfig) -> LogprobConvention:
    """The old, reference and update log-probs: logits / (cwgrpo.logprob_temperature, else rollout.temperature)."""
    chosen = (config.get("cwgrpo") or {}).get("logprob_temperature")
    return LogprobConvention(float(chosen if chosen is not None else config.actor_rollout_ref.rollout.temperature))


def rollout_convention(mode: str, rollout) -> LogprobConvention | None:
    """vLLM's ``logprobs_mode``: raw = before temperature and truncation, processed = after both; None for the
    ``*_logits`` modes, which return logits, not log-probabilities."""
    if mode == "raw_logprobs":
        return LogprobConvention(1.0)
    if mode == "processed_logprobs":
        top_k, top_p = rollout.get("top_k", -1), rollout.get("top_p", 1.0)
        return LogprobConvention(float(rollout.temperature), truncated=(top_k or -1) > 0 or (top_p or 1.0) < 1.0)
    return None


def resolve_logprobs_mode(config: DictConfig) -> None:
    """One log-prob convention per run. ``rollout.logprobs_mode=auto`` (the recipe's default) becomes the vLLM mode
    whose rollout log-probs are taken as the actor's are; a mode that differs is refused where verl's rollout
    correction would put the two into one ratio, and otherwise only skews the diagnostics (a warning)."""
    rollout = config.actor_rollout_ref.rollout
    if not rollout.get("calculate_log_probs", True):
        return
    actor = actor_convention(config)
    mode = rollout.get("logprobs_mode", "processed_logprobs")
    if mode == "auto":
        mode = next((m for m in ("raw_logprobs", "processed_logprobs") if rollout_convention(m, rollout) == actor), None)
        if mode is None:
            mode = "processed_logprobs"
            logger.warning("no vLLM logprobs_mode takes log-probs at temperature %s without top-k/top-p truncation: "
                           "%s.logprobs_mode=%s (training/rollout_probs_diff_* compares two conventions)",
                           actor.temperature, ROLLOUT, mode)
        with open_dict(rollout):
            rollout.logprobs_mode = mode
    vllm = rollout_convention(mode, rollout)
    if vllm == actor:
        return
    what = (f"{ROLLOUT}.logprobs_mode={mode} returns logits, not log-probs" if vllm is None else
            f"{ROLLOUT}.logprobs_mode={mode} gives rollout log-probs at temperature {vllm.temperature}"
            f"{' over the top-k/top-p truncated vocabulary' if vllm.truncated else ''}, the actor's are at temperature "
            f"{actor.temperature} (cwgrpo.logprob_temperature, else {ROLLOUT}.temperature) over the whole vocabulary")
    correction = config.algorithm.get("rollout_correction") or {}
    mixing = [f"algorithm.rollout_correction.{k}={correction.get(k)}"
              for k in ("bypass_mode", "rollout_is", "rollout_rs") if correction.get(k) not in (None, False)]
    if mixing:
        raise ConfigError(f"{what}; {', '.join(mixing)} would put both into one importance ratio. Use "
                          f"{ROLLOUT}.logprobs_mode=auto (the vLLM mode that matches), or turn the correction off")
    logger.warning("%s: training/rollout_probs_diff_* compares two conventions (%s.logprobs_mode=auto matches them)",
                   what, ROLLOUT)


def dispatch_summary(config: DictConfig, use_reference: bool = True) -> str:
    """What the recipe's trainer will do with each step's groups, for the start-up log."""
    prompts = config.data.train_batch_size
    dispatched = dispatched_prompts(config, use_reference)
    line = f"{prompts} prompt groups per step over {config.trainer.nnodes * config.trainer.n_gpus_per_node} GPU(s)"
    if dispatched > prompts:
        line += f": {dispatched - prompts} padding group(s) per step give every rank whole groups"
    return line + f" (rank rows a multiple of {rank_rows_multiple(config, use_reference)})"
