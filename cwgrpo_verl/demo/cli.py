"""Command line of the demo; ``main(argv)`` is also what the tests call (``__main__`` just runs it)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from cwgrpo_verl.demo.run import DemoConfig
from cwgrpo_verl.demo.train import METHODS, RLSettings


def parse_args(argv: list[str] | None) -> tuple[DemoConfig, Path, bool]:
    d, r = DemoConfig(), RLSettings()
    ap = argparse.ArgumentParser(prog="python -m cwgrpo_verl.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, help=f"RL steps per run (default {r.steps}; --quick: 4)")
    ap.add_argument("--group-size", type=int, help=f"responses per prompt, G (default {r.group_size})")
    ap.add_argument("--prompts-per-step", type=int, help=f"prompts per RL step (default {r.prompts_per_step})")
    ap.add_argument("--methods", default=",".join(d.methods), help="comma list of " + ",".join(METHODS))
    ap.add_argument("--seed", type=int, help="run this one seed")
    ap.add_argument("--seeds", help="comma list of seeds (default %s); median and spread are reported"
                    % ",".join(map(str, d.seeds)))
    ap.add_argument("--lr", type=float, help=f"RL learning rate (default {r.lr:g})")
    ap.add_argument("--format-weight", type=float, help="weight of the format reward (default 0: accuracy only)")
    ap.add_argument("--out", type=Path, default=Path("reports/demo"), help="report folder (default reports/demo)")
    ap.add_argument("--workers", type=int, help=f"processes (default {d.workers}: one per core, up to 2)")
    ap.add_argument("--threads", type=int, default=d.threads, help="torch threads per process (default 1)")
    ap.add_argument("--quick", action="store_true", help="smoke test: one seed, a few steps, < 1 minute")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)

    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        ap.error(f"--methods: unknown {unknown}; choose from {','.join(METHODS)}")
    cfg = DemoConfig(methods=methods, threads=a.threads)
    if a.quick:  # everything small; the warm start stops early, so accuracy stays near 0 (a smoke test)
        cfg.seeds, cfg.eval_size, cfg.eval_samples = [0], 32, 1
        cfg.warm_max_steps, cfg.hidden = 50, 32
        cfg.rl = RLSettings(steps=4, group_size=4, prompts_per_step=4, eval_every=2)
    if a.seeds:
        cfg.seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    if a.seed is not None:
        cfg.seeds = [a.seed]
    for name in ("steps", "group_size", "prompts_per_step", "lr", "format_weight"):
        if getattr(a, name) is not None:
            setattr(cfg.rl, name, getattr(a, name))
    if a.workers is not None:
        cfg.workers = a.workers
    if cfg.rl.steps < 1 or cfg.rl.group_size < 2 or cfg.rl.prompts_per_step < 1:
        ap.error("need --steps >= 1, --group-size >= 2 and --prompts-per-step >= 1")
    cfg.rl.eval_every = min(cfg.rl.eval_every, cfg.rl.steps)
    return cfg, a.out, not a.no_progress


def main(argv: list[str] | None = None) -> int:
    cfg, out, progress = parse_args(argv)
    torch.set_num_threads(cfg.threads)
    import cwgrpo_verl

    cwgrpo_verl.check_registered()
    from cwgrpo_verl.demo.report import write_report
    from cwgrpo_verl.demo.run import run_experiment

    start = time.monotonic()
    result = run_experiment(cfg, show_progress=progress)
    elapsed = time.monotonic() - start
    write_report(result, out, elapsed)
    print((out / "summary.md").read_text())
    print(f"report: {out}/ (summary.md, curves.png, metrics.json, steps.csv, evals.csv); {elapsed:.0f} s")
    return 0

