"""Forward+backward time and peak memory of the cw_grpo loss vs the vanilla PPO loss, measured in the same run.

    python benchmarks/bench_loss.py [--batch 48 --length 4096 --iters 50 --device cuda]

Needs only torch; where verl is installed, verl's own ``vanilla`` loss is timed too. On CUDA the CW path runs
under ``torch.cuda.set_sync_debug_mode("error")`` up to its one metrics transfer: no other host-device sync.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cwgrpo_verl import argtypes  # noqa: E402
from cwgrpo_verl.core import cw_weights, ppo_clip_token_losses  # noqa: E402
from cwgrpo_verl.metrics import to_host, weight_stats  # noqa: E402

GROUP_SIZE = 12  # responses per prompt, as the paper's runs


def make_batch(batch, length, device, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    lengths = torch.randint(length // 4, length + 1, (batch,), generator=g)
    mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).to(device)
    log_prob = (-torch.rand(batch, length, generator=g) * 4).to(device)
    old = log_prob + 0.05 * torch.randn(batch, length, generator=g).to(device)
    rewards = torch.randint(0, 2, (batch,), generator=g).float()
    adv = ((rewards - rewards.mean()) / (rewards.std() + 1e-4)).to(device).unsqueeze(1) * mask
    return old, log_prob, adv, mask


def step(old, lp, adv, mask, cw=True, detach=False, metrics=True, group_size=None, cov_tails=True, sync_check=False):
    """One forward+backward; ``cw=False``: the same PPO-clip code without weights. ``group_size``: statistics per
    prompt group of that many consecutive rows (``cwgrpo.scope=group``), with the group count passed as a host int,
    as the recipe's loss does. ``cov_tails=False``: the weight metrics without Table 1's covariance tails, as in the
    recipe, whose trainer logs them once per step."""
    segments = {}
    if group_size:
        segments = dict(segment_ids=torch.arange(lp.shape[0], device=lp.device) // group_size,
                        num_segments=lp.shape[0] // group_size)
    if sync_check:
        torch.cuda.set_sync_debug_mode("error")
    try:
        weights = cw_weights(lp, adv, mask, detach=detach, **segments) if cw else None
        loss_mat, stats = ppo_clip_token_losses(old, lp, weights.weights * adv if cw else adv, mask, 0.2, 0.28, 3.0)
        if cw and metrics:
            stats.update(weight_stats(weights.weights, weights.cov, mask, cov_tails=cov_tails))
        ((loss_mat * mask).sum() / mask.sum()).backward()  # token-mean
    finally:
        if sync_check:
            torch.cuda.set_sync_debug_mode("default")
    return to_host(stats)  # the single transfer


def verl_vanilla_step():
    try:
        from verl.trainer.ppo.core_algos import get_policy_loss_fn
        from verl.workers.config import ActorConfig, PolicyLossConfig
    except ImportError:
        return None
    cfg = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, clip_ratio_high=0.28,
                      policy_loss=PolicyLossConfig(loss_mode="vanilla"))
    fn = get_policy_loss_fn("vanilla")

    def verl_step(old, lp, adv, mask):
        loss, metrics = fn(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask,
                           loss_agg_mode="token-mean", config=cfg)
        loss.backward()
        return metrics

    return verl_step


def measure(steps, inputs, iters, device):
    """Median time (ms) and peak memory (MiB) of each step, run round-robin so drift hits all alike."""
    old, lp0, adv, mask = inputs
    times = {label: [] for label in steps}
    peaks = {}
    for i in range(iters + 3):
        for label, step in steps.items():
            lp = lp0.clone().requires_grad_(True)
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            start = time.perf_counter()
            step(old, lp, adv, mask)
            if device.type == "cuda":
                torch.cuda.synchronize()
                peaks[label] = (torch.cuda.max_memory_allocated() - base) / 2**20
            if i >= 3:  # warm-up excluded
                times[label].append(time.perf_counter() - start)
            del lp
    return {label: (statistics.median(t) * 1e3, peaks.get(label, float("nan"))) for label, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=argtypes.integer(), default=48)
    parser.add_argument("--length", type=argtypes.integer(), default=4096)
    parser.add_argument("--iters", type=argtypes.integer(), default=50)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.batch % GROUP_SIZE:
        parser.error(f"--batch must be a multiple of {GROUP_SIZE} (the group rows time prompt groups of {GROUP_SIZE})")
    device = torch.device(args.device)
    inputs = make_batch(args.batch, args.length, device)

    if device.type == "cuda":  # raises if anything inside the loss synchronises with the host
        old, lp, adv, mask = inputs
        for group_size in (None, GROUP_SIZE):
            step(old, lp.clone().requires_grad_(True), adv, mask, sync_check=True, group_size=group_size)
        print("sync check: cw_grpo loss (micro-batch and group statistics) ran under set_sync_debug_mode('error') "
              "with no synchronisation")

    rows = [("vanilla (same PPO code, no weights)", partial(step, cw=False))]
    if (verl_step := verl_vanilla_step()) is not None:
        rows.append(("verl vanilla (registry)", verl_step))
    rows += [
        ("main_ppo: cw_grpo, micro-batch, detached", partial(step, detach=True)),
        ("main_ppo: cw_grpo, micro-batch", step),
        ("  same, without any metrics", partial(step, metrics=False)),
        (f"recipe: per group of {GROUP_SIZE}, no tails", partial(step, group_size=GROUP_SIZE, cov_tails=False)),
    ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; {args.batch} x {args.length} tokens; median of {args.iters}")
    results = measure(dict(rows), inputs, args.iters, device)
    base_ms, base_mem = results[rows[0][0]]
    for label, (ms, mem) in results.items():
        mem_txt = "n/a" if mem != mem else f"{mem:8.1f} MiB ({mem / base_mem:.2f}x)"
        print(f"{label:40s} {ms:9.3f} ms  ratio {ms / base_ms:5.2f}x   peak above inputs {mem_txt}")


if __name__ == "__main__":
    main()
