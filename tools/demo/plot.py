"""The demo's figure: entropy and held-out accuracy per RL step, one style per method, median over seeds.

Methods differ in colour (Okabe-Ito, colour-blind safe), line style and marker, so they stay apart in grey
print too. The spread over seeds is drawn as min-max bars at the marked steps, shifted sideways per method,
instead of shaded bands (three overlapping bands read as one grey blur). Accuracy is in % like the tables.
The PNG carries the run's fingerprint in its metadata, so a test can tell which run a figure was drawn from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STYLES = {  # label, colour, line style, marker
    "vanilla": ("GRPO (vanilla)", "#0072B2", "-", "o"),
    "clip_cov": ("Clip-Cov", "#D55E00", "--", "s"),
    "cw_grpo": ("CW-GRPO", "#009E73", "-.", "^"),
}
SMOOTH = 5  # entropy is plotted as a trailing 5-step mean (the raw per-step values are in steps.csv)
FINGERPRINT_KEY = "cwgrpo-demo-run"  # PNG text chunk holding the run's fingerprint


def label(method: str) -> str:
    return STYLES[method][0]


def series(runs: list[dict], part: str, key: str, smooth: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """x (steps) and y (seeds x steps) of ``runs[i][part][j][key]``; ``smooth`` > 1: trailing mean per run."""
    x = np.array([s["step"] for s in runs[0][part]])
    y = np.array([[s[key] for s in r[part]] for r in runs], dtype=float)
    if smooth > 1:
        csum = np.cumsum(np.pad(y, ((0, 0), (1, 0))), axis=1)
        width = np.minimum(np.arange(1, y.shape[1] + 1), smooth)
        y = (csum[:, 1:] - csum[:, np.arange(y.shape[1]) + 1 - width]) / width
    return x, y


def plot(metrics: dict, path: Path, fingerprint: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    methods, n_seeds = metrics["config"]["methods"], len(metrics["config"]["seeds"])
    eval_every = metrics["config"]["rl"]["eval_every"]
    panels = [
        ("steps", "entropy", 1.0, f"Token entropy ({SMOOTH}-step mean)", "entropy of sampled tokens (nats)"),
        ("evals", "sample_acc", 100.0, "Held-out accuracy, sampled at T = 1", "accuracy (%)"),
        ("evals", "greedy_acc", 100.0, "Held-out accuracy, greedy", "accuracy (%)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, (part, key, scale, title, ylabel) in zip(axes, panels):
        for i, m in enumerate(methods):
            _, colour, line, marker = STYLES[m]
            x, y = series([r for r in metrics["runs"] if r["method"] == m], part, key, SMOOTH if part == "steps" else 1)
            y = scale * y
            med = np.median(y, 0)
            # markers (and min-max bars) at the evaluation steps, shifted sideways per method so none hide another
            marks = np.flatnonzero(x % eval_every == 0) if part == "steps" else np.arange(len(x))
            dx = (i - (len(methods) - 1) / 2) * 0.1 * eval_every
            dense = part == "steps"  # a per-step curve stays on its steps; one point per evaluation: all shifted
            ax.plot(x if dense else x + dx, med, color=colour, linestyle=line, lw=1.6 if dense else 1.8)
            err = [med[marks] - y.min(0)[marks], y.max(0)[marks] - med[marks]] if n_seeds > 1 else None
            ax.errorbar(x[marks] + dx, med[marks], yerr=err, fmt=marker, color=colour, ms=6, elinewidth=1.2,
                        capsize=3)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("RL step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=c, linestyle=ls, marker=mk, lw=1.8, ms=6)
               for _, c, ls, mk in map(STYLES.get, methods)]
    spread = f"median over {n_seeds} seeds; bars: min to max over seeds" if n_seeds > 1 else "one seed"
    title = f"Miniature GRPO vs Clip-Cov vs CW-GRPO on CPU ({spread})"
    if metrics["config"].get("quick"):
        title = "SMOKE RUN (--quick): these curves mean nothing. " + title
    fig.suptitle(title, fontsize=12)
    fig.legend(handles, [label(m) for m in methods], loc="lower center", ncol=len(methods), frameon=False, fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=100, metadata={FINGERPRINT_KEY: fingerprint} if fingerprint else None)
    plt.close(fig)


def read_fingerprint(path: Path) -> str | None:
    """The fingerprint a PNG written by ``plot`` carries (None if it carries none)."""
    from PIL import Image

    with Image.open(path) as img:
        return img.info.get(FINGERPRINT_KEY)
