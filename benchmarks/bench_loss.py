"""Forward+backward time and peak memory of the cw_grpo loss vs the vanilla PPO loss, measured in the same run.

    python benchmarks/bench_loss.py [--batch 48 --length 4096 --iters 50 --device cuda]

Needs only torch (the math lives in ``cwgrpo_verl.core``), so it also runs on a GPU machine without verl.
"vanilla" is the same PPO-clip code with the weighting off; where verl is installed, verl's own ``vanilla``
loss is timed too. On CUDA the CW path runs under ``torch.cuda.set_sync_debug_mode("error")`` up to the one
metrics transfer, which proves it has no other host-device synchronisation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
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


def token_mean(loss_mat, mask):
    return (loss_mat * mask).sum() / mask.sum()


def vanilla_step(old, lp, adv, mask):
    loss_mat, stats = ppo_clip_token_losses(old, lp, adv, mask, 0.2, 0.28, 3.0)
    loss = token_mean(loss_mat, mask)
    loss.backward()
    return to_host(stats)


def cw_step(old, lp, adv, mask, detach, sync_check=False, metrics=True, group_size=None, cov_tails=True):
    """``group_size``: statistics per prompt group of that many consecutive rows (``cwgrpo.scope=group``), with the
    group count passed as a host int, as the recipe's loss does. ``cov_tails=False``: the weight metrics without
    Table 1's covariance tails, as in the recipe, whose trainer logs them once per step."""
    segments = {}
    if group_size:
        segments = dict(segment_ids=torch.arange(lp.shape[0], device=lp.device) // group_size,
                        num_segments=lp.shape[0] // group_size)
    if sync_check:
        torch.cuda.set_sync_debug_mode("error")
    try:
        cw = cw_weights(lp, adv, mask, detach=detach, **segments)
        loss_mat, stats = ppo_clip_token_losses(old, lp, cw.weights * adv, mask, 0.2, 0.28, 3.0)
        if metrics:
            stats.update(weight_stats(cw.weights, cw.cov, mask, cov_tails=cov_tails))
        loss = token_mean(loss_mat, mask)
        loss.backward()
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

    def step(old, lp, adv, mask):
        loss, metrics = fn(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask,
                           loss_agg_mode="token-mean", config=cfg)
        loss.backward()
        return metrics

    return step


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
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.batch % GROUP_SIZE:
        parser.error(f"--batch must be a multiple of {GROUP_SIZE} (the group rows time prompt groups of {GROUP_SIZE})")
    device = torch.device(args.device)
    inputs = make_batch(args.batch, args.length, device)

    if device.type == "cuda":  # raises if anything inside the loss synchronises with the host
        for group_size in (None, GROUP_SIZE):
            cw_step(*[t.clone().requires_grad_(i == 1) if i == 1 else t for i, t in enumerate(inputs)], detach=False,
                    sync_check=True, group_size=group_size)
        print("sync check: cw_grpo loss (micro-batch and group statistics) ran under set_sync_debug_mode('error') "
              "with no synchronisation")

    rows = [("vanilla (same PPO code, no weights)", lambda *x: vanilla_step(*x))]
    verl_step = verl_vanilla_step()
    if verl_step is not None:
        rows.append(("verl vanilla (registry)", verl_step))
    rows += [
        ("main_ppo: cw_grpo, micro-batch, detached", lambda *x: cw_step(*x, detach=True)),
        ("main_ppo: cw_grpo, micro-batch", lambda *x: cw_step(*x, detach=False)),
        ("  same, without any metrics", lambda *x: cw_step(*x, detach=False, metrics=False)),
        (f"recipe: per group of {GROUP_SIZE}, no tails", lambda *x: cw_step(*x, detach=False, group_size=GROUP_SIZE,
                                                                      cov_tails=False)),
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
