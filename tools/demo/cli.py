"""Command line of the demo; ``main(argv)`` is also what the tests call. Every argument is checked before any work
starts: a bad value is a usage error (exit 2) naming the flag, not a failure after minutes of training.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from cwgrpo_verl import argtypes
from cwgrpo_verl.plugin import check_registered
from tools.demo.report import BLOCK_END, BLOCK_START, SMOKE, readme_block, update_readme, write_docs, write_report
from tools.demo.run import METHODS, DemoConfig, RLSettings, run_experiment

RL_FLAGS = ("steps", "group_size", "prompts_per_step", "lr", "format_weight")
EXPERIMENT_FLAGS = ("quick", "methods", "seed", "seeds", *RL_FLAGS)  # --docs publishes the default experiment only


def _folder(text: str) -> Path:
    """A folder that exists or can be created: no file in the way, the nearest existing parent writable."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    parent = next(p for p in (path, *path.parents) if p.exists())
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create {text}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write to {parent}")
    return path


def _readme(text: str) -> Path:
    """A markdown file holding the demo block's markers (the block between them is replaced)."""
    path = Path(text)
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {e}") from None
    if readme_block(content) is None:
        raise argparse.ArgumentTypeError(f"{text} has no {BLOCK_START} ... {BLOCK_END} block to replace")
    if not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write to {text}")
    return path


def parse_args(argv: list[str] | None) -> tuple[DemoConfig, argparse.Namespace]:
    d, r = DemoConfig(), RLSettings()
    ap = argparse.ArgumentParser(
        prog="python -m tools.demo",
        description="A miniature GRPO vs Clip-Cov vs CW-GRPO experiment on CPU: a tiny Qwen2 learns two-digit "
        "addition with the product's reward, advantage estimator and verl policy losses (about 2 minutes).",
        epilog="Publish the default run: python -m tools.demo --docs docs --readme docs/results.md",
    )
    ap.add_argument("--steps", type=argtypes.integer(1), help=f"RL steps per run (default {r.steps}; --quick: 4)")
    ap.add_argument("--group-size", type=argtypes.integer(2), help=f"responses per prompt, G (default {r.group_size})")
    ap.add_argument("--prompts-per-step", type=argtypes.integer(1),
                    help=f"prompts per RL step (default {r.prompts_per_step})")
    ap.add_argument("--methods", type=argtypes.names(METHODS), help=f"comma list of {','.join(METHODS)} (default: all)")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--seed", type=argtypes.integer(0), help="run this one seed")
    which.add_argument("--seeds", type=argtypes.integers(), help="comma list of seeds (default %s); median and "
                       "[min, max] over them are reported" % ",".join(map(str, d.seeds)))
    ap.add_argument("--lr", type=argtypes.real(), help=f"RL learning rate (default {r.lr:g})")
    ap.add_argument("--format-weight", type=argtypes.real(low_open=False),
                    help="weight of the format reward (default 0: accuracy only)")
    ap.add_argument("--out", type=_folder, default=Path("reports/demo"), help="report folder (default reports/demo)")
    ap.add_argument("--docs", type=_folder, metavar="DIR", help="also write the published results (DIR/demo.md, "
                    "DIR/demo_curves.png, DIR/demo.json); default settings only, e.g. --docs docs")
    ap.add_argument("--readme", type=_readme, metavar="FILE", help="with --docs: also replace the results block "
                    "between the demo markers in FILE, e.g. --readme docs/results.md")
    ap.add_argument("--workers", type=argtypes.integer(1), default=d.workers,
                    help=f"processes (default {d.workers}: one per core, up to 2)")
    ap.add_argument("--threads", type=argtypes.integer(1), default=d.threads,
                    help="torch threads per process (default 1; 1 and 2 gave identical results)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: one seed, 4 steps, < 1 minute; its numbers mean nothing")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    if a.readme is not None and a.docs is None:
        ap.error("--readme needs --docs (the page quotes the published run)")
    if a.docs is not None:
        changed = [f"--{n.replace('_', '-')}" for n in EXPERIMENT_FLAGS if getattr(a, n) not in (None, False)]
        if changed:
            ap.error(f"--docs publishes the default run only; drop {' '.join(changed)}")
    cfg = DemoConfig(threads=a.threads, workers=a.workers)
    if a.quick:  # everything small; the warm start stops early, so accuracy stays near 0 (a smoke test)
        cfg.quick, cfg.seeds, cfg.eval_size, cfg.eval_samples = True, [0], 32, 1
        cfg.warm_max_steps, cfg.hidden = 50, 32
        cfg.rl = RLSettings(steps=4, group_size=4, prompts_per_step=4, eval_every=2)
    cfg.seeds = [a.seed] if a.seed is not None else a.seeds or cfg.seeds
    cfg.methods = a.methods or cfg.methods
    for name in RL_FLAGS:
        if getattr(a, name) is not None:
            setattr(cfg.rl, name, getattr(a, name))
    cfg.rl.eval_every = min(cfg.rl.eval_every, cfg.rl.steps)
    return cfg, a


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    torch.set_num_threads(cfg.threads)
    check_registered()
    if cfg.quick:
        print(SMOKE, flush=True)
    command = shlex.join(["python", "-m", "tools.demo", *(sys.argv[1:] if argv is None else argv)])
    start = time.monotonic()
    result = run_experiment(cfg, show_progress=not args.no_progress)
    elapsed = time.monotonic() - start
    metrics = {"command": command, **result, "elapsed_s": elapsed}
    write_report(metrics, args.out)
    print((args.out / "summary.md").read_text())
    print(f"report: {args.out}/ (summary.md, curves.png, metrics.json, steps.csv, evals.csv, tokens.html, tokens/); "
          f"{elapsed:.0f} s")
    if args.docs is not None:
        view = write_docs(metrics, args.docs)
        print(f"docs: {args.docs}/ (demo.md, demo_curves.png, demo.json, demo_tokens.html)")
    if args.readme is not None:
        update_readme(args.readme, view)
        print(f"updated the demo block of {args.readme}")
    if cfg.quick:
        print(SMOKE)
    return 0
