"""Turn the experiment's records into the report folder: metrics.json, CSVs, curves.png and summary.md.

Per run, a statistic is reduced over steps (covariance tail, weights: mean over steps; entropy: mean over the
first / last steps); across seeds it is the median with the [min, max] spread.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from cwgrpo_verl.metrics import TAIL_FRACTIONS

LABELS = {"vanilla": "GRPO (vanilla)", "clip_cov": "Clip-Cov", "cw_grpo": "CW-GRPO"}
COLORS = {"vanilla": "tab:blue", "clip_cov": "tab:orange", "cw_grpo": "tab:green"}
TAIL = list(TAIL_FRACTIONS)
SMOOTH = 5  # entropy is plotted as a trailing 5-step average (raw per-step values are in steps.csv)
WEIGHT_COLS = ["weight_min", "weight_frac_lt_0.5", "weight_max", "weight_ess_frac"]


def run_summary(run: dict, last: int = 10) -> dict:
    """One run reduced to numbers: held-out accuracy at start/end, entropy early/late, covariance and weights."""
    steps, evals = run["steps"], run["evals"]
    tail = steps[-last:]
    out = {
        "sample_acc_start": evals[0]["sample_acc"],
        "sample_acc_end": evals[-1]["sample_acc"],
        "greedy_acc_start": evals[0]["greedy_acc"],
        "greedy_acc_end": evals[-1]["greedy_acc"],
        "entropy_first": float(np.mean([s["entropy"] for s in steps[:5]])),
        "entropy_last": float(np.mean([s["entropy"] for s in tail])),
        "train_acc_last": float(np.mean([s["acc"] for s in tail])),
    }
    for key in [f"cov_{side}_top_{q}" for side in ("pos", "neg") for q in TAIL] + WEIGHT_COLS:
        out[key] = float(np.mean([s[f"cw/{key}"] for s in steps]))
    return out


def aggregate(result: dict) -> dict:
    """``{method: {stat: {"median", "min", "max", "per_seed"}}}`` over seeds."""
    methods = result["config"]["methods"]
    per = {m: [run_summary(r) for r in result["runs"] if r["method"] == m] for m in methods}
    agg = {}
    for m, rows in per.items():
        agg[m] = {
            k: {"median": float(np.median(v)), "min": float(np.min(v)), "max": float(np.max(v)), "per_seed": v}
            for k in rows[0]
            for v in [[r[k] for r in rows]]
        }
    return agg


def write_report(result: dict, out: Path, elapsed_s: float | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    agg = aggregate(result)
    (out / "metrics.json").write_text(json.dumps({**result, "summary": agg, "elapsed_s": elapsed_s}, indent=1))
    _write_csv(out / "steps.csv", [{"seed": r["seed"], "method": r["method"], **s} for r in result["runs"]
                                   for s in r["steps"]])
    _write_csv(out / "evals.csv", [{"seed": r["seed"], "method": r["method"], **e} for r in result["runs"]
                                   for e in r["evals"]])
    plot(result, out / "curves.png")
    (out / "summary.md").write_text(summary_markdown(result, agg, elapsed_s))
    return agg


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _band(runs: list[dict], series: str, key: str, smooth: int = 1):
    """x, median over seeds, min, max; ``smooth`` > 1 applies a trailing moving average per run first."""
    x = np.array([s["step"] for s in runs[0][series]])
    y = np.array([[s[key] for s in r[series]] for r in runs])
    if smooth > 1:
        csum = np.cumsum(np.pad(y, ((0, 0), (1, 0))), axis=1)
        width = np.minimum(np.arange(1, y.shape[1] + 1), smooth)
        y = (csum[:, 1:] - csum[:, np.arange(y.shape[1]) + 1 - width]) / width
    return x, np.median(y, 0), y.min(0), y.max(0)


def plot(result: dict, path: Path) -> None:
    """Entropy per step and held-out accuracy per evaluation, median over seeds with a min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("steps", "entropy", f"mean token entropy of sampled responses (nats, {SMOOTH}-step average)"),
              ("evals", "sample_acc", "held-out accuracy, sampled (T=1)"),
              ("evals", "greedy_acc", "held-out accuracy, greedy")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    n_seeds = len(result["config"]["seeds"])
    for ax, (series, key, title) in zip(axes, panels):
        for m in result["config"]["methods"]:
            runs = [r for r in result["runs"] if r["method"] == m]
            x, med, lo, hi = _band(runs, series, key, SMOOTH if series == "steps" else 1)
            ax.plot(x, med, color=COLORS.get(m), label=LABELS.get(m, m), marker="o" if series == "evals" else None,
                    ms=3)
            if n_seeds > 1:
                ax.fill_between(x, lo, hi, color=COLORS.get(m), alpha=0.15, linewidth=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=9)
    spread = f"median over {n_seeds} seeds, band = min-max" if n_seeds > 1 else "one seed"
    fig.suptitle(f"Miniature GRPO vs Clip-Cov vs CW-GRPO on CPU ({spread})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(stat: dict, digits: int = 3, pct: bool = False) -> str:
    scale, digits = (100, 1) if pct else (1, digits)
    f = lambda v: f"{round(scale * v, digits) + 0.0:.{digits}f}"  # noqa: E731  (+ 0.0: no "-0.000")
    if stat["min"] == stat["max"]:
        return f(stat["median"])
    return f"{f(stat['median'])} [{f(stat['min'])}, {f(stat['max'])}]"


def _delta(agg: dict, m: str, key: str) -> dict:
    start, end = agg[m][f"{key}_start"]["per_seed"], agg[m][f"{key}_end"]["per_seed"]
    d = [e - s for s, e in zip(start, end)]
    return {"median": float(np.median(d)), "min": min(d), "max": max(d)}


def summary_markdown(result: dict, agg: dict, elapsed_s: float | None) -> str:
    cfg, methods = result["config"], result["config"]["methods"]
    rl = cfg["rl"]
    seeds = cfg["seeds"]
    warm = result["warm_start"]
    lines = [
        "# CW-GRPO demo: a miniature GRPO vs Clip-Cov vs CW-GRPO run on CPU",
        "",
        "A small-scale simulation of the mechanism, **not** the paper's experiment or result: a "
        f"{cfg['layers']}-layer, {cfg['hidden']}-wide Qwen2 (random init) learns two-digit addition "
        "(`ab+cd=`, answer in `\\boxed{}`), first by a short supervised warm start, then by RL with "
        f"{rl['prompts_per_step']} prompts x {rl['group_size']} samples per step for {rl['steps']} steps "
        f"(lr {rl['lr']:g}, one on-policy update per step, the whole step as one micro-batch, "
        "`seq-mean-token-mean`). Reward: `cwgrpo_verl.reward.compute_score` "
        f"(format weight {rl['format_weight']:g}); advantage: verl registry `{rl['adv_estimator']}`; "
        "losses: verl registry `vanilla`, `clip_cov`, `cw_grpo`. Every method starts from the same warm-start "
        "checkpoint of its seed and sees the same prompts.",
        "",
        f"Seeds: {', '.join(map(str, seeds))}; numbers are the median over seeds with [min, max]. "
        f"Held-out set: {cfg['eval_size']} fixed problems, greedy and {cfg['eval_samples']} samples each. "
        "Warm start: " + ", ".join(f"seed {s}: {warm[s]['warm_start_steps']} steps" for s in seeds) + ".",
        "",
        "## Accuracy and entropy",
        "",
        "| method | held-out acc, sampled: start → end (%) | change (points) | greedy: end (%) | change (points) "
        "| entropy, first 5 steps | entropy, last 10 steps |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in methods:
        a = agg[m]
        lines.append(
            f"| {LABELS.get(m, m)} | {_fmt(a['sample_acc_start'], pct=True)} → {_fmt(a['sample_acc_end'], pct=True)} "
            f"| {_fmt(_delta(agg, m, 'sample_acc'), pct=True)} | {_fmt(a['greedy_acc_end'], pct=True)} "
            f"| {_fmt(_delta(agg, m, 'greedy_acc'), pct=True)} | {_fmt(a['entropy_first'])} "
            f"| {_fmt(a['entropy_last'])} |"
        )
    lines += [
        "",
        "## Covariance tail (the paper's Table 1 statistic)",
        "",
        "Token covariance cov = (logp - mean logp of the response) x (A - mean A) over each step's batch, "
        "computed with `cwgrpo_verl.core.cw_weights` for every method (for GRPO and Clip-Cov it is what CW-GRPO "
        "would have seen); mean of the largest (pos) / smallest (neg) q-fraction, averaged over steps.",
        "",
        "| method | " + " | ".join(f"pos top {q.replace('pct', '%')}" for q in TAIL) + " | "
        + " | ".join(f"neg top {q.replace('pct', '%')}" for q in TAIL[:3]) + " |",
        "| --- |" + " --- |" * (len(TAIL) + 3),
    ]
    for m in methods:
        cells = [_fmt(agg[m][f"cov_pos_top_{q}"]) for q in TAIL] + [_fmt(agg[m][f"cov_neg_top_{q}"]) for q in TAIL[:3]]
        lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## CW-GRPO weights (mean over steps)",
        "",
        "What the Gaussian kernel assigns on each method's own batches (applied only by CW-GRPO; authors' "
        "defaults: padded normaliser, so the mean weight over valid tokens is >= 1).",
        "",
        "| method | min weight | fraction < 0.5 | max weight | effective sample size / tokens |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in methods:
        lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(_fmt(agg[m][k]) for k in WEIGHT_COLS) + " |")
    lines += ["", "## Reading", "", *_reading(agg, methods, len(seeds))]
    if elapsed_s is not None:
        lines += ["", f"Wall time: {elapsed_s:.0f} s."]
    lines += ["", "![curves](curves.png)", ""]
    return "\n".join(lines)


def _reading(agg: dict, methods: list[str], n_seeds: int) -> list[str]:
    """Plain statements of what the numbers show, computed, not hand-written."""
    out = []
    for m in methods:
        d = _delta(agg, m, "sample_acc")
        out.append(f"- {LABELS.get(m, m)}: sampled held-out accuracy changed by {100 * d['median']:+.1f} points "
                   f"(median; range {100 * d['min']:+.1f} to {100 * d['max']:+.1f}).")
    if "cw_grpo" in methods and "vanilla" in methods:
        diff = [c - v for c, v in zip(agg["cw_grpo"]["sample_acc_end"]["per_seed"],
                                      agg["vanilla"]["sample_acc_end"]["per_seed"])]
        ent = [c - v for c, v in zip(agg["cw_grpo"]["entropy_last"]["per_seed"],
                                     agg["vanilla"]["entropy_last"]["per_seed"])]
        out.append(f"- CW-GRPO minus GRPO, final sampled accuracy: {', '.join(f'{100 * x:+.1f}' for x in diff)} "
                   f"points per seed; final entropy: {', '.join(f'{x:+.3f}' for x in ent)} nats per seed.")
        out.append(f"- {n_seeds} seed(s): a difference between methods smaller than the spread over seeds is not "
                   "evidence either way; this miniature shows the mechanism running, not the paper's effect size.")
    return out
