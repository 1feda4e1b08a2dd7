"""Warm start, evaluation and the RL loop, built from the product's real parts.

One RL step (per method, identical data and seeds):
1. sample ``prompts_per_step`` problems and ``group_size`` responses each from the current policy (temperature 1);
2. score every response with ``cwgrpo_verl.reward.compute_score`` (math-verify, training mode);
3. group-relative advantages from verl's registry (``get_adv_estimator_fn``; default our ``cw_grpo``
   estimator, i.e. the authors' (r - mean) / (std + 1e-4), for every method so only the loss differs);
4. one on-policy update: the policy loss from verl's registry (``vanilla``, ``clip_cov``, ``cw_grpo``) with a verl
   ``ActorConfig``, ``loss_agg_mode="seq-mean-token-mean"`` and the whole step as one micro-batch, so the
   covariance statistics cover every group of the step (old log-prob = detached log-prob: ratio 1, as the
   authors' single on-policy update).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn
from verl.workers.config import ActorConfig, PolicyLossConfig

from cwgrpo_verl.config import CWAlgoConfig, CWGRPOPolicyLossConfig
from cwgrpo_verl.core import cw_weights
from cwgrpo_verl.metrics import to_host, weight_stats
from cwgrpo_verl.reward import compute_score
from cwgrpo_verl.tokens import due, extreme_positions, token_records
from tools.demo import task
from tools.demo.model import response_logprobs, sample

METHODS = ("vanilla", "clip_cov", "cw_grpo")
LOSS_AGG_MODE = "seq-mean-token-mean"


@dataclass
class RLSettings:
    steps: int = 60
    group_size: int = 8
    prompts_per_step: int = 8
    lr: float = 3e-4  # 1e-3 made every method unstable from a warm start at this scale
    max_grad_norm: float = 1.0
    eval_every: int = 10
    format_weight: float = 0.0
    adv_estimator: str = "cw_grpo"
    token_log_every: int = 10  # the extreme-token log (cwgrpo_verl.tokens), as the recipe's cwgrpo.token_log_every
    token_log_top_k: int = 8


def warm_start(model, tokenizer, target_acc: float, max_steps: int, batch: int, lr: float, seed: int,
               check_every: int = 25, probe_size: int = 128) -> dict:
    """Supervised fine-tuning on reference responses until the sampled accuracy on a probe set reaches
    ``target_acc`` (or ``max_steps``): RL then starts from a partly right policy with entropy left to spend.

    Stopping on accuracy rather than a fixed step count gives every seed a comparable starting point (the
    accuracy of this task rises steeply once the model finds the carry rule). Returns the steps taken and
    the probe accuracy.
    """
    gen = torch.Generator().manual_seed(seed)
    probe = task.sample_problems(probe_size, torch.Generator().manual_seed(50_000 + seed))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    acc, step = 0.0, 0
    while step < max_steps:
        model.train()
        for _ in range(min(check_every, max_steps - step)):
            ids, mask = task.encode_sft_batch(tokenizer, task.sample_problems(batch, gen))
            logits = model(input_ids=ids).logits[:, :-1]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
            m = mask[:, 1:].reshape(-1).float()
            loss = (loss * m).sum() / m.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        resp, mask = sample(model, task.encode_prompts(tokenizer, probe), task.max_response_tokens(tokenizer),
                            tokenizer.eos_token_id, tokenizer.pad_token_id, torch.Generator().manual_seed(seed))
        acc = float(np.mean([s["acc"] for s in score(tokenizer, resp, mask, probe, 0.0)]))
        if acc >= target_acc:
            break
    return {"warm_start_steps": step, "warm_start_probe_acc": acc}


def score(tokenizer, responses: torch.Tensor, mask: torch.Tensor, problems: list, format_weight: float) -> list[dict]:
    """The reward of each response's text without eos/padding (what a verl rollout hands the reward function)."""
    return [compute_score(task.DATA_SOURCE, tokenizer.decode(r[m].tolist(), skip_special_tokens=True), p.answer,
                          mode="train", format_weight=format_weight) for r, m, p in zip(responses, mask, problems)]


@torch.no_grad()
def evaluate(model, tokenizer, problems: list, samples: int, seed: int) -> dict:
    """Greedy accuracy and temperature-1 accuracy (``samples`` per problem) on a fixed held-out set."""
    prompts = task.encode_prompts(tokenizer, problems)
    max_new = task.max_response_tokens(tokenizer)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    resp, mask = sample(model, prompts, max_new, eos, pad, None, greedy=True)
    greedy = score(tokenizer, resp, mask, problems, 0.0)
    gen = torch.Generator().manual_seed(seed)
    rep = prompts.repeat_interleave(samples, 0)
    reps = [p for p in problems for _ in range(samples)]
    resp, mask = sample(model, rep, max_new, eos, pad, gen)
    sampled = score(tokenizer, resp, mask, reps, 1.0)
    return {
        "greedy_acc": float(np.mean([s["acc"] for s in greedy])),
        "sample_acc": float(np.mean([s["acc"] for s in sampled])),
        "sample_format": float(np.mean([s["format"] for s in sampled])),
    }


def rl_step(model, opt, tokenizer, problems: list, settings: RLSettings, loss_fn, adv_fn, actor_cfg, algo_cfg,
            gen: torch.Generator, step: int = 1, weighted: bool = False) -> tuple[dict, list[dict]]:
    """One GRPO-style step (``step``: 1-based); returns host floats (accuracy, entropy, loss metrics, covariance
    statistics) and, on the token log's steps, its records (the weights' smallest too when ``weighted``)."""
    g = settings.group_size
    prompts = task.encode_prompts(tokenizer, problems).repeat_interleave(g, 0)
    reps = [p for p in problems for _ in range(g)]
    responses, mask = sample(model, prompts, task.max_response_tokens(tokenizer), tokenizer.eos_token_id,
                             tokenizer.pad_token_id, gen)
    scores = score(tokenizer, responses, mask, reps, settings.format_weight)

    # verl's outcome reward layout: the score sits on the last valid token
    rewards = torch.zeros(mask.shape)
    last = mask.long().sum(1).clamp_min(1) - 1
    rewards[torch.arange(len(scores)), last] = torch.tensor([s["score"] for s in scores])
    index = np.repeat(np.arange(len(problems)), g)
    advantages, _ = adv_fn(token_level_rewards=rewards, response_mask=mask, index=index, config=algo_cfg)

    model.train()
    log_prob, entropy = response_logprobs(model, prompts, responses)
    loss, metrics = loss_fn(
        old_log_prob=log_prob.detach(), log_prob=log_prob, advantages=advantages, response_mask=mask,
        loss_agg_mode=LOSS_AGG_MODE, config=actor_cfg,
    )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
    opt.step()

    # what CW-GRPO's weights are (or would be, for the other methods) on this very batch: the covariance tail
    cw = cw_weights(log_prob.detach(), advantages, mask)
    stats = to_host(weight_stats(cw.weights, cw.cov, mask), prefix="cw/")
    maskf = mask.float()
    out = {
        "acc": float(np.mean([s["acc"] for s in scores])),
        "format": float(np.mean([s["format"] for s in scores])),
        "entropy": float((entropy.detach() * maskf).sum() / maskf.sum()),
        "response_len": float(maskf.sum(1).mean()),
        "loss": float(loss.detach()),
        "grad_norm": float(grad_norm),
        "groups_with_signal": float(np.mean([
            len({s["score"] for s in scores[i * g:(i + 1) * g]}) > 1 for i in range(len(problems))
        ])),
    }
    out.update(stats)
    out.update({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)})
    records = []
    if due(step, settings.token_log_every, first=step == 1):
        picks = extreme_positions(cw.cov, mask, settings.token_log_top_k, cw.weights if weighted else None)
        records = token_records(step, picks, responses=[r[m].tolist() for r, m in zip(responses, mask)],
                                decode=tokenizer.decode, uids=[f"problem {i}" for i in index],
                                advantages=advantages, log_prob=log_prob.detach(), cov=cw.cov, weights=cw.weights,
                                rewards=[s["score"] for s in scores])
    return out, records


def run_rl(model, tokenizer, method: str, settings: RLSettings, seed: int, eval_problems: list,
           eval_samples: int, on_step) -> dict:
    """RL from a copy of ``model`` (the shared warm start); prompts and sampling seeds identical across methods."""
    policy = copy.deepcopy(model)
    opt = torch.optim.AdamW(policy.parameters(), lr=settings.lr, weight_decay=0.0)
    loss_fn = get_policy_loss_fn(method)
    adv_fn = get_adv_estimator_fn(settings.adv_estimator)
    policy_loss = (CWGRPOPolicyLossConfig if method == "cw_grpo" else PolicyLossConfig)(loss_mode=method)
    actor_cfg = ActorConfig(strategy="fsdp", rollout_n=settings.group_size, ppo_micro_batch_size_per_gpu=1,
                            loss_agg_mode=LOSS_AGG_MODE, policy_loss=policy_loss)  # one micro-batch: the whole step
    algo_cfg = CWAlgoConfig()  # an AlgoConfig plus cw_grpo's epsilon, which other estimators ignore
    data_gen = torch.Generator().manual_seed(10_000 + seed)
    sample_gen = torch.Generator().manual_seed(20_000 + seed)
    torch.manual_seed(30_000 + seed)  # clip_cov draws its random token choice from the global RNG
    hist = {"steps": [], "evals": [], "tokens": []}  # "tokens": the token log's records (cwgrpo_verl.tokens)
    for step in range(settings.steps + 1):
        if step % settings.eval_every == 0 or step == settings.steps:
            hist["evals"].append({"step": step, **evaluate(policy, tokenizer, eval_problems, eval_samples, seed)})
        if step == settings.steps:
            break
        problems = task.sample_problems(settings.prompts_per_step, data_gen)
        row, records = rl_step(policy, opt, tokenizer, problems, settings, loss_fn, adv_fn, actor_cfg, algo_cfg,
                               sample_gen, step=step + 1, weighted=method == "cw_grpo")
        hist["steps"].append({"step": step, **row})
        hist["tokens"] += records
        on_step()
    return hist
