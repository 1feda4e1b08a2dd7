"""The experiment: for each seed one warm-start checkpoint, then every method from that same checkpoint.

One RL step: advantages from verl's estimator registry (default our ``cw_grpo`` for every method, so only the loss
differs), then one on-policy update with verl's policy loss and the whole step as one micro-batch, so the covariance
statistics cover every group (old log-prob = detached log-prob: ratio 1, as the authors' update).

Jobs run in ``workers`` forked processes, one torch thread each: on a busy 2-core machine, OpenMP spinning made
steps up to 10x slower. A seed's RL jobs are queued as soon as its warm start is done.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import platform
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn
from verl.workers.config import ActorConfig, PolicyLossConfig

from cwgrpo_verl.config import CWAlgoConfig, CWGRPOPolicyLossConfig
from cwgrpo_verl.core import cw_weights
from cwgrpo_verl.metrics import to_host, weight_stats
from cwgrpo_verl.reward import compute_score
from cwgrpo_verl.tokens import due, extreme_positions, token_records
from tools.demo import task

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


@dataclass
class DemoConfig:
    seeds: list[int] = field(default_factory=lambda: list(range(10)))  # a paired comparison needs ~10
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    rl: RLSettings = field(default_factory=RLSettings)
    eval_size: int = 200  # fixed held-out problems (own seed), greedy + eval_samples samples each
    eval_samples: int = 2
    warm_target: float = 0.35  # stop the warm start at this sampled accuracy on a probe set...
    warm_max_steps: int = 1500  # ...or after this many steps
    warm_batch: int = 64
    warm_lr: float = 3e-3
    hidden: int = 64
    layers: int = 2
    threads: int = 1
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    quick: bool = False  # smoke-test sizes (--quick): the numbers mean nothing


def environment() -> dict:
    """What the numbers depend on besides code and config. Bitwise reproducible on one machine (1 or 2 processes or
    threads), but other CPU kernels round differently and the sampled trajectories part (``ATEN_CPU_CAPABILITY=default``
    instead of AVX2 changed seed 0 from its warm start)."""
    def ver(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        **{name: ver(name) for name in ("torch", "verl", "transformers", "math-verify", "numpy", "tokenizers")},
        "cpu": f"{platform.machine()}, {_cpu_model()}, torch kernels {torch.backends.cpu.get_cpu_capability()}",
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown model"


_QUEUE = None  # where a job reports finished steps: a multiprocessing queue, or the bar itself in-process


def _init_worker(threads: int, queue) -> None:
    global _QUEUE
    torch.set_num_threads(threads)
    _QUEUE = queue


def _tick(n: int = 1) -> None:
    if _QUEUE is not None:
        _QUEUE.put(n)


def _warm_units(cfg: DemoConfig) -> int:
    return max(cfg.rl.steps // 2, 1)  # a warm start counts as half an RL run on the progress bar (roughly its cost)


def run_experiment(cfg: DemoConfig, show_progress: bool = True) -> dict:
    """Run every (seed, method); returns ``{"config", "environment", "warm_start": {"seed": info}, "runs": [...]}``."""
    total = len(cfg.seeds) * (_warm_units(cfg) + len(cfg.methods) * cfg.rl.steps)
    bar = tqdm(total=total, desc="warm start + RL", unit="step", disable=not show_progress)
    warm, runs = {}, []
    if cfg.workers <= 1:
        _init_worker(cfg.threads, SimpleNamespace(put=bar.update))
        for seed in cfg.seeds:
            _, state, warm[seed] = warm_start_job(cfg, seed)
            runs += [rl_job(cfg, seed, method, state) for method in cfg.methods]
    else:
        ctx = mp.get_context("fork")  # children inherit the imported modules (verl's import alone takes seconds)
        queue = ctx.Queue()
        listener = threading.Thread(target=lambda: [bar.update(n) for n in iter(queue.get, None)], daemon=True)
        listener.start()
        with ProcessPoolExecutor(cfg.workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(cfg.threads, queue)) as pool:
            jobs = {pool.submit(warm_start_job, cfg, seed): "warm" for seed in cfg.seeds}
            while jobs:
                done, _ = wait(jobs, return_when=FIRST_COMPLETED)
                for fut in done:
                    if jobs.pop(fut) == "warm":
                        seed, state, warm[seed] = fut.result()
                        jobs.update({pool.submit(rl_job, cfg, seed, m, state): "rl" for m in cfg.methods})
                    else:
                        runs.append(fut.result())
        queue.put(None)
        listener.join()
    bar.close()
    runs.sort(key=lambda r: (cfg.seeds.index(r["seed"]), cfg.methods.index(r["method"])))
    warm = {str(seed): warm[seed] for seed in cfg.seeds}  # JSON object keys are strings
    return {"config": asdict(cfg), "environment": environment(), "warm_start": warm, "runs": runs}


def warm_start_job(cfg: DemoConfig, seed: int, check_every: int = 25, probe_size: int = 128) -> tuple[int, dict, dict]:
    """Build the seed's model and fine-tune it on reference responses until its sampled probe accuracy reaches
    ``warm_target`` (or ``warm_max_steps``): RL then starts from a partly right policy with entropy left to spend.
    Stopping on accuracy gives every seed a comparable start (accuracy rises steeply once the model finds the carry
    rule). Returns (seed, state_dict, info); the checkpoint's held-out accuracy is each RL run's step-0 evaluation.
    """
    tokenizer = task.build_tokenizer()
    model = task.build_model(tokenizer, seed, cfg.hidden, cfg.layers)
    gen = torch.Generator().manual_seed(seed)
    probe = task.sample_problems(probe_size, torch.Generator().manual_seed(50_000 + seed))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.warm_lr, weight_decay=0.0)
    acc, step = 0.0, 0
    while step < cfg.warm_max_steps:
        model.train()
        for _ in range(min(check_every, cfg.warm_max_steps - step)):
            ids, mask = task.encode_sft_batch(tokenizer, task.sample_problems(cfg.warm_batch, gen))
            logits = model(input_ids=ids).logits[:, :-1]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
            m = mask[:, 1:].reshape(-1).float()
            loss = (loss * m).sum() / m.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        *_, scores = rollout(model, tokenizer, probe, 1, torch.Generator().manual_seed(seed), 0.0)
        acc = _mean(scores, "acc")
        if acc >= cfg.warm_target:
            break
    _tick(_warm_units(cfg))
    return seed, model.state_dict(), {"warm_start_steps": step, "warm_start_probe_acc": acc}


def rollout(model, tokenizer, problems: list, n: int, generator: torch.Generator | None, format_weight: float,
            greedy: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[dict]]:
    """``n`` responses to each problem (prompts, responses, mask) and their rewards, scored on each response's text
    without eos/padding (what a verl rollout hands the reward function)."""
    prompts = task.encode_prompts(tokenizer, problems).repeat_interleave(n, 0)
    responses, mask = task.sample(model, tokenizer, prompts, generator, greedy)
    answers = [p.answer for p in problems for _ in range(n)]
    scores = [compute_score(task.DATA_SOURCE, tokenizer.decode(r[m].tolist(), skip_special_tokens=True), answer,
                            mode="train", format_weight=format_weight)
              for r, m, answer in zip(responses, mask, answers)]
    return prompts, responses, mask, scores


def _mean(scores: list[dict], key: str) -> float:
    return float(np.mean([s[key] for s in scores]))


def evaluate(model, tokenizer, problems: list, samples: int, seed: int) -> dict:
    """Greedy accuracy and temperature-1 accuracy (``samples`` per problem) on a fixed held-out set."""
    *_, greedy = rollout(model, tokenizer, problems, 1, None, 0.0, greedy=True)
    *_, sampled = rollout(model, tokenizer, problems, samples, torch.Generator().manual_seed(seed), 1.0)
    return {"greedy_acc": _mean(greedy, "acc"), "sample_acc": _mean(sampled, "acc"),
            "sample_format": _mean(sampled, "format")}


def rl_job(cfg: DemoConfig, seed: int, method: str, state: dict) -> dict:
    """RL by ``method`` from the seed's warm start ``state``; prompts and sampling seeds identical across methods.
    Per step: host floats (accuracy, entropy, loss metrics, covariance statistics) and, on the token log's steps,
    its records (with the weights' smallest for CW-GRPO)."""
    tokenizer, settings = task.build_tokenizer(), cfg.rl
    policy = task.build_model(tokenizer, seed, cfg.hidden, cfg.layers)
    policy.load_state_dict(state)
    eval_problems = task.sample_problems(cfg.eval_size, torch.Generator().manual_seed(999))  # fixed held-out set
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
    g = settings.group_size
    hist = {"seed": seed, "method": method, "steps": [], "evals": [], "tokens": []}  # tokens: cwgrpo_verl.tokens
    for step in range(settings.steps + 1):
        if step % settings.eval_every == 0 or step == settings.steps:
            hist["evals"].append({"step": step, **evaluate(policy, tokenizer, eval_problems, cfg.eval_samples, seed)})
        if step == settings.steps:
            break
        problems = task.sample_problems(settings.prompts_per_step, data_gen)
        prompts, responses, mask, scores = rollout(policy, tokenizer, problems, g, sample_gen, settings.format_weight)

        # verl's outcome reward layout: the score sits on the last valid token
        rewards = torch.zeros(mask.shape)
        last = mask.long().sum(1).clamp_min(1) - 1
        rewards[torch.arange(len(scores)), last] = torch.tensor([s["score"] for s in scores])
        index = np.repeat(np.arange(len(problems)), g)
        advantages, _ = adv_fn(token_level_rewards=rewards, response_mask=mask, index=index, config=algo_cfg)

        policy.train()
        log_prob, entropy = task.response_logprobs(policy, prompts, responses)
        loss, metrics = loss_fn(old_log_prob=log_prob.detach(), log_prob=log_prob, advantages=advantages,
                                response_mask=mask, loss_agg_mode=LOSS_AGG_MODE, config=actor_cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), settings.max_grad_norm)
        opt.step()

        # what CW-GRPO's weights are (or would be, for the other methods) on this very batch: the covariance tail
        cw = cw_weights(log_prob.detach(), advantages, mask)
        maskf = mask.float()
        hist["steps"].append({
            "step": step, "acc": _mean(scores, "acc"), "format": _mean(scores, "format"),
            "entropy": float((entropy.detach() * maskf).sum() / maskf.sum()),
            "response_len": float(maskf.sum(1).mean()), "loss": float(loss.detach()), "grad_norm": float(grad_norm),
            "groups_with_signal": float(np.mean([
                len({s["score"] for s in scores[i * g:(i + 1) * g]}) > 1 for i in range(len(problems))
            ])),
            **to_host(weight_stats(cw.weights, cw.cov, mask), prefix="cw/"),
            **{k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)},
        })
        if due(step + 1, settings.token_log_every, first=step == 0):
            picks = extreme_positions(cw.cov, mask, settings.token_log_top_k,
                                      cw.weights if method == "cw_grpo" else None)
            hist["tokens"] += token_records(
                step + 1, picks, responses=[r[m].tolist() for r, m in zip(responses, mask)], decode=tokenizer.decode,
                uids=[f"problem {i}" for i in index], advantages=advantages, log_prob=log_prob.detach(), cov=cw.cov,
                weights=cw.weights, rewards=[s["score"] for s in scores])
        _tick()
    return hist
