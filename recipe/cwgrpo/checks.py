"""The recipe's options (``cwgrpo.*``, described in docs/method.md) and its start-up checks, in the driver before Ray
starts: what verl would find only at the first update, on the cluster, or never (a silently ignored option). Each
refusal names the key to change."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields

from omegaconf import DictConfig, open_dict

from cwgrpo_verl.tokens import MAX_TOP_K
from recipe.cwgrpo.batching import sequence_parallel_size

logger = logging.getLogger(__name__)

SCOPES = ("group", "micro_batch", "batch")
TRAINER_MODE = "cwgrpo"
STRATEGIES = ("fsdp", "fsdp2")
ROLLOUT = "actor_rollout_ref.rollout"


class ConfigError(ValueError):
    """A recipe option that cannot work, found before any GPU work."""


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class RecipeOptions:
    """``cwgrpo.*`` as one typed value, checked when built (in the driver, and again by the trainer)."""

    scope: str
    logprob_temperature: float | None
    stop_at_step: int | None
    token_log_every: int
    token_log_top_k: int

    def __post_init__(self):
        rules = {  # key: (what it must be, test)
            "scope": (f"one of {list(SCOPES)}", lambda v: v in SCOPES),
            "logprob_temperature": ("null or a finite number > 0", lambda v: v is None or (
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf)),
            "stop_at_step": ("null or a whole number >= 1", lambda v: v is None or (_whole(v) and v >= 1)),
            "token_log_every": ("a whole number >= 0 (0: off)", lambda v: _whole(v) and v >= 0),
            "token_log_top_k": (f"a whole number in [1, {MAX_TOP_K}]", lambda v: _whole(v) and 1 <= v <= MAX_TOP_K),
        }
        for key, (rule, valid) in rules.items():
            if not valid(getattr(self, key)):
                raise ConfigError(f"cwgrpo.{key} must be {rule}, got {getattr(self, key)!r}")

    @classmethod
    def from_config(cls, config: DictConfig) -> RecipeOptions:
        options, known = dict(config.get("cwgrpo") or {}), [f.name for f in fields(cls)]
        if unknown := sorted(set(options) - set(known)):
            raise ConfigError(f"unknown key(s) cwgrpo.{', cwgrpo.'.join(unknown)}; known: {', '.join(known)}")
        if missing := [k for k in known if k not in options]:
            raise ConfigError(f"cwgrpo.{missing[0]} is missing: run the recipe's config (config/cwgrpo_trainer.yaml)")
        return cls(**options)


def check_recipe_config(config: DictConfig) -> None:
    """Coherence checks verl itself does not make (it finds a bad loss name only at the first update)."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    # the recipe is verl's v1 trainer on its FSDP engine: anything else would run without it, or fail later
    if not config.trainer.get("use_v1", True):
        raise ConfigError("trainer.use_v1=false runs verl's legacy trainer, which ignores trainer.v1.trainer_mode and "
                          "so the whole recipe (whole prompt groups, cwgrpo.* options): remove the override")
    engine, actor = config.get("model_engine", "dp"), config.actor_rollout_ref.actor
    if engine != "dp":
        raise ConfigError(f"model_engine={engine}: the recipe runs verl's FSDP engine (model_engine=dp, "
                          f"actor_rollout_ref.actor.strategy in {list(STRATEGIES)}); it is not tested with {engine}")
    if actor.strategy not in STRATEGIES:
        raise ConfigError(f"actor_rollout_ref.actor.strategy={actor.strategy}: the recipe runs verl's FSDP engine "
                          f"({' or '.join(STRATEGIES)}); Megatron would need model_engine=megatron and is not tested")
    loss_mode = actor.policy_loss.get("loss_mode", "vanilla")
    if loss_mode not in POLICY_LOSS_REGISTRY:
        raise ConfigError(f"actor_rollout_ref.actor.policy_loss.loss_mode={loss_mode!r} is not a registered policy "
                          f"loss; known: {sorted(POLICY_LOSS_REGISTRY)}")
    estimator = config.algorithm.adv_estimator
    if estimator not in ADV_ESTIMATOR_REGISTRY:
        raise ConfigError(f"algorithm.adv_estimator={estimator!r} is not registered; "
                          f"known: {sorted(ADV_ESTIMATOR_REGISTRY)}")
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
    _check_whole_groups(config, scope)
    if scope == "micro_batch" and loss_mode == "cw_grpo":
        if actor.use_dynamic_bsz:
            raise ConfigError("actor_rollout_ref.actor.use_dynamic_bsz=true packs micro-batches by a token budget, so "
                              "cwgrpo.scope=micro_batch would take its statistics over whatever responses fit "
                              "together: use cwgrpo.scope=group (exact per prompt group) or batch")
        micro, group = actor.get("ppo_micro_batch_size_per_gpu"), config.actor_rollout_ref.rollout.n
        if micro and micro < group:
            logger.warning("cwgrpo.scope=micro_batch with ppo_micro_batch_size_per_gpu=%s < rollout.n=%s: each "
                           "statistic covers less than one group. Raise the micro-batch or use cwgrpo.scope=group.",
                           micro, group)
    resolve_logprobs_mode(config)


def _check_whole_groups(config: DictConfig, scope: str) -> None:
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
        sp, budget = sequence_parallel_size(config), actor.ppo_max_token_len_per_gpu
        need = n * (config.data.max_prompt_length + config.data.max_response_length)
        if budget * sp < need:
            raise ConfigError(
                f"{why}: with {key}.use_dynamic_bsz=true a micro-batch must fit one whole group, up to rollout.n x "
                f"(max_prompt_length + max_response_length) = {need} tokens; its budget is "
                f"{key}.ppo_max_token_len_per_gpu x the sequence-parallel size = {budget} x {sp}")
    elif actor.ppo_micro_batch_size_per_gpu % n:
        raise ConfigError(f"{why}: {key}.ppo_micro_batch_size_per_gpu={actor.ppo_micro_batch_size_per_gpu} must be "
                          f"a multiple of actor_rollout_ref.rollout.n={n}")


def resolve_logprobs_mode(config: DictConfig) -> None:
    """One log-prob convention (temperature, top-k/top-p truncated) per run: the actor's is (cwgrpo.logprob_temperature
    else rollout.temperature, untruncated); vLLM's raw_logprobs are before temperature and truncation, processed_*
    after both. ``logprobs_mode=auto`` becomes the mode that matches the actor's; a mode that differs is refused where
    verl's rollout correction would put both into one ratio, else it only skews the diagnostics (a warning)."""
    rollout = config.actor_rollout_ref.rollout
    if not rollout.get("calculate_log_probs", True):
        return
    chosen = (config.get("cwgrpo") or {}).get("logprob_temperature")
    actor = (float(chosen if chosen is not None else rollout.temperature), False)
    truncated = (rollout.get("top_k", -1) or -1) > 0 or (rollout.get("top_p", 1.0) or 1.0) < 1.0
    vllm = {"raw_logprobs": (1.0, False), "processed_logprobs": (float(rollout.temperature), truncated)}
    mode = rollout.get("logprobs_mode", "processed_logprobs")
    if mode == "auto":
        mode = next((m for m, convention in vllm.items() if convention == actor), None)
        if mode is None:
            mode = "processed_logprobs"
            logger.warning("no vLLM logprobs_mode takes log-probs at temperature %s without top-k/top-p truncation: "
                           "%s.logprobs_mode=%s (training/rollout_probs_diff_* compares two conventions)",
                           actor[0], ROLLOUT, mode)
        with open_dict(rollout):
            rollout.logprobs_mode = mode
    if vllm.get(mode) == actor:
        return
    what = (f"{ROLLOUT}.logprobs_mode={mode} returns logits, not log-probs" if mode not in vllm else
            f"{ROLLOUT}.logprobs_mode={mode} gives rollout log-probs at temperature {vllm[mode][0]}"
            f"{' over the top-k/top-p truncated vocabulary' if vllm[mode][1] else ''}, the actor's are at temperature "
            f"{actor[0]} (cwgrpo.logprob_temperature, else {ROLLOUT}.temperature) over the whole vocabulary")
    correction = config.algorithm.get("rollout_correction") or {}
    mixing = [f"algorithm.rollout_correction.{k}={correction.get(k)}"
              for k in ("bypass_mode", "rollout_is", "rollout_rs") if correction.get(k) not in (None, False)]
    if mixing:
        raise ConfigError(f"{what}; {', '.join(mixing)} would put both into one importance ratio. Use "
                          f"{ROLLOUT}.logprobs_mode=auto (the vLLM mode that matches), or turn the correction off")
    logger.warning("%s: training/rollout_probs_diff_* compares two conventions (%s.logprobs_mode=auto matches them)",
                   what, ROLLOUT)
