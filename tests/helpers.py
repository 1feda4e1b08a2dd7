"""Shared builders for the CPU tests: verl actor configs and random padded micro-batches."""

import itertools
import os
from pathlib import Path

import torch
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.workers.config import ActorConfig, PolicyLossConfig

from cwgrpo_verl.config import CWGRPOPolicyLossConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CWGRPO_SHARED_DATA", REPO.parent / "shared" / "data"))

OPTION_GRID = [
    dict(cw_logp_center=c, cw_normalizer=n, cw_detach_weights=d)
    for c, n, d in itertools.product(("sequence", "batch"), ("padded", "valid_tokens"), (False, True))
]
AGG_MODES = ["token-mean", "token-sum", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]


def actor_config(loss_mode="cw_grpo", loss_agg_mode="token-mean", rollout_n=4, **policy_loss):
    """An actor config as verl's own CPU loss tests build it."""
    cls = CWGRPOPolicyLossConfig if loss_mode == "cw_grpo" or policy_loss else PolicyLossConfig
    return ActorConfig(
        strategy="fsdp",
        rollout_n=rollout_n,
        ppo_micro_batch_size_per_gpu=1,
        loss_agg_mode=loss_agg_mode,
        policy_loss=cls(loss_mode=loss_mode, **policy_loss),
    )


def random_batch(seed, batch=6, length=9, dtype=torch.float64, group_size=None, off_policy=True):
    """Padded micro-batch with ragged responses, GRPO-like advantages and (optionally) a ratio away from 1."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    log_prob = -torch.rand(batch, length, generator=g, dtype=dtype) * 3.0
    old = log_prob + (torch.randn(batch, length, generator=g, dtype=dtype) * 0.3 if off_policy else 0.0)
    rewards = torch.randint(0, 2, (batch,), generator=g).to(dtype) + torch.rand(batch, generator=g, dtype=dtype) * 0.1
    group_size = group_size or batch
    adv_rows = torch.empty(batch, dtype=dtype)
    for start in range(0, batch, group_size):
        r = rewards[start : start + group_size]
        adv_rows[start : start + group_size] = (r - r.mean()) / (r.std() + 1e-4) if len(r) > 1 else 0.0
    advantages = adv_rows.unsqueeze(1) * mask
    return old, log_prob, advantages, mask


def engine_micro_batch(old, lp, adv, mask, prompt_len=3, dp_size=1, global_batch_size=None, batch_num_tokens=None,
                       uids=None, **non_tensor):
    """A micro-batch TensorDict shaped as verl's FSDP engine hands it to ppo_loss (no-padding, nested). A row whose
    mask is all False is a padding row as verl writes them: one response token, masked out."""
    valid = mask.sum(-1).tolist()
    lengths = [n or 1 for n in valid]
    prompts = [torch.arange(prompt_len) + 1 for _ in lengths]
    responses = [torch.arange(n) + 1 for n in lengths]
    nested = lambda rows: torch.nested.as_nested_tensor(rows, layout=torch.jagged)  # noqa: E731
    data = TensorDict(
        {
            "prompts": nested(prompts),
            "responses": nested(responses),
            "response_mask": nested([torch.full((n,), int(v > 0), dtype=torch.int64) for n, v in zip(lengths, valid)]),
            "old_log_probs": nested([old[i, :n] for i, n in enumerate(lengths)]),
            "advantages": nested([adv[i, :n] for i, n in enumerate(lengths)]),
        },
        batch_size=[len(lengths)],
    )
    tu.assign_non_tensor(
        data, dp_size=dp_size, batch_num_tokens=batch_num_tokens, global_batch_size=global_batch_size, **non_tensor
    )
    if uids is not None:  # verl carries every sample's prompt-group id to the loss as a non-tensor column
        tu.assign_non_tensor_stack(data, "uid", list(uids))
    # model output: one log-prob per position of prompt+response, shifted by one as the model predicts the next token
    flat = []
    for i, n in enumerate(lengths):
        seq = torch.zeros(prompt_len + n, dtype=lp.dtype)
        seq[prompt_len - 1 : prompt_len - 1 + n] = lp[i, :n]
        flat.append(seq)
    log_probs = torch.cat(flat).requires_grad_(True)
    return data, {"log_probs": log_probs}


def flat_grad_to_padded(grad, mask, prompt_len=3):
    """Undo engine_micro_batch's layout: the gradient of each response token, as a (B, T) tensor."""
    out = torch.zeros(mask.shape, dtype=grad.dtype)
    lengths = [n or 1 for n in mask.sum(-1).tolist()]
    for i, n in enumerate(lengths):
        start = sum(prompt_len + m for m in lengths[:i]) + prompt_len - 1
        out[i, :n] = grad[start : start + n]
    return out


BASE_OVERRIDES = [  # what every run sets anyway: a model path and batch sizes that divide
    "actor_rollout_ref.model.path=/models/any",
    "data.train_batch_size=12",
    "actor_rollout_ref.rollout.n=12",
    "actor_rollout_ref.actor.ppo_mini_batch_size=12",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=12",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=12",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=12",
    "trainer.n_gpus_per_node=1",
    "actor_rollout_ref.rollout.name=vllm",
    "algorithm.adv_estimator=grpo",
]


def compose(overrides, config_name="ppo_trainer", config_module="verl.trainer.config"):
    """Compose a verl config exactly as a `python -m ... key=value` command line would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module(config_module, version_base=None):
        return hydra_compose(config_name, overrides=list(overrides))


def validate(cfg):
    """What the driver does before any GPU work: verl's validate_config plus the dataclasses workers build."""
    from verl.trainer.config import AlgoConfig  # noqa: F401
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    return worker_configs(cfg)


def worker_configs(cfg):
    """The config dataclasses verl's workers build (each checks its own keys)."""
    from verl.utils.config import omega_conf_to_dataclass

    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    algorithm = omega_conf_to_dataclass(cfg.algorithm)
    return actor, rollout, algorithm
