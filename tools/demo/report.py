"""A run's metrics as files: the report folder, and the published docs page docs/results.md quotes.

Every sentence with a number in it is computed here from the metrics, so the docs cannot claim what the run did
not show. Across seeds a statistic is the median with the [min, max] spread. ``render_markdown`` and
``results_block`` work on a loaded ``metrics.json`` or ``docs/demo.json`` alike (a test re-renders the page).

The figure tells methods apart by colour (Okabe-Ito, colour-blind safe), line style and marker, so they stay apart
in grey print too, and draws the spread over seeds as min-max bars at the marked steps, shifted sideways per method
(three overlapping shaded bands read as one grey blur). The PNG's metadata carries the run's fingerprint.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
from itertools import combinations
from pathlib import Path

import numpy as np

from cwgrpo_verl.metrics import TAIL_FRACTIONS
from cwgrpo_verl.report import tokens as tokens_page
from cwgrpo_verl.tokens import append

TAIL = list(TAIL_FRACTIONS)
PCT_DIGITS = 2  # at the defaults accuracies are multiples of 0.25%: two decimals make every difference add up
ALPHA = 0.05  # the sign test's level for "beyond the seed noise"
LAST = 10  # steps whose mean gives the final entropy and training accuracy
WEIGHT_COLS = ["weight_min", "weight_frac_lt_0.5", "weight_max", "weight_ess_frac"]
BLOCK_START, BLOCK_END = "<!-- demo-results:start -->", "<!-- demo-results:end -->"
SMOKE = ("SMOKE RUN (--quick): a smaller model, an unfinished warm start and a few RL steps. The numbers mean "
         "nothing; the run only shows that the pipeline works end to end. Run without --quick for the comparison.")

STYLES = {  # label, colour, line style, marker
    "vanilla": ("GRPO (vanilla)", "#0072B2", "-", "o"),
    "clip_cov": ("Clip-Cov", "#D55E00", "--", "s"),
    "cw_grpo": ("CW-GRPO", "#009E73", "-.", "^"),
}
SMOOTH = 5  # entropy is plotted as a trailing 5-step mean (the raw per-step values are in steps.csv)
FINGERPRINT_KEY = "cwgrpo-demo-run"  # PNG text chunk holding the run's fingerprint
PAGE_KEY = "cwgrpo-demo-page"  # the README's screenshot: a PNG text chunk holding the digest of the page it shows


def label(method: str) -> str:
    return STYLES[method][0]


def run_summary(run: dict) -> dict:
    """One run reduced to numbers: held-out accuracy at start/end, entropy early/late, covariance and weights."""
    steps, evals, tail = run["steps"], run["evals"], run["steps"][-LAST:]
    out = {
        "sample_acc_start": evals[0]["sample_acc"], "sample_acc_end": evals[-1]["sample_acc"],
        "greedy_acc_start": evals[0]["greedy_acc"], "greedy_acc_end": evals[-1]["greedy_acc"],
        "entropy_first": float(np.mean([s["entropy"] for s in steps[:5]])),
        "entropy_last": float(np.mean([s["entropy"] for s in tail])),
        "train_acc_last": float(np.mean([s["acc"] for s in tail])),
    }
    for key in [f"cov_{side}_top_{q}" for side in ("pos", "neg") for q in TAIL] + WEIGHT_COLS:
        out[key] = float(np.mean([s[f"cw/{key}"] for s in steps]))
    return out


def with_summaries(metrics: dict) -> dict:
    """``metrics`` with each run's ``summary`` added, after a JSON round trip (what is rendered is what is saved)."""
    out = json.loads(json.dumps(metrics))
    for run in out["runs"]:
        run["summary"] = run_summary(run)
    return out


def docs_view(metrics: dict) -> dict:
    """What the docs keep of a run: everything but the per-step records the page and figure do not use."""
    runs = [{**{k: v for k, v in r.items() if k != "tokens"},
             "steps": [{"step": s["step"], "entropy": s["entropy"]} for s in r["steps"]]} for r in metrics["runs"]]
    return {**metrics, "runs": runs}


def fingerprint(metrics: dict) -> str:
    """Short hash of the docs view of a run; the page and the figure both carry it."""
    return hashlib.sha256(json.dumps(docs_view(metrics), sort_keys=True).encode()).hexdigest()[:12]


def per_seed(metrics: dict, method: str, key: str) -> list[float]:
    return [r["summary"][key] for s in metrics["config"]["seeds"] for r in metrics["runs"]
            if r["method"] == method and r["seed"] == s]


def _fmt(values: list[float], pct: bool = False, sign: bool = False) -> str:
    """median [min, max] (just the value when they agree); % values scaled by 100 with two decimals."""
    scale, digits = (100, PCT_DIGITS) if pct else (1, 3)
    f = lambda v: f"{round(scale * v, digits) + 0.0:{'+' if sign else ''}.{digits}f}"  # noqa: E731  (+ 0.0: no -0.0)
    median, low, high = f(float(np.median(values))), f(min(values)), f(max(values))
    return median if low == high else f"{median} [{low}, {high}]"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _n(count: int, word: str, plural: str = "") -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _diff(metrics: dict, a: str, b: str, key: str, b_key: str | None = None) -> list[float]:
    """Per seed, ``key`` of method ``a`` minus ``b_key`` (default ``key``) of method ``b``."""
    return [x - y for x, y in zip(per_seed(metrics, a, key), per_seed(metrics, b, b_key or key))]


def _change(metrics: dict, method: str) -> list[float]:
    """Per seed, final minus initial sampled held-out accuracy."""
    return _diff(metrics, method, method, "sample_acc_end", "sample_acc_start")


def _rounded(diffs: list[float], pct: bool) -> list[float]:
    """Differences at the printed precision: what reads as equal counts as equal."""
    return [round(100 * d, PCT_DIGITS) if pct else round(d, 3) for d in diffs]


def sign_test(diffs: list[float]) -> float:
    """Exact two-sided sign test of paired differences (zeros dropped): the chance, if neither method were better,
    of a split at least this uneven."""
    up, down = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    n = up + down
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(up, down) + 1)) / 2**n) if n else 1.0


def _paired(diffs: list[float], pct: bool) -> str:
    """'higher in 9 of 10 seeds, lower in 1; sign test p = 0.021: beyond the seed noise'."""
    r = _rounded(diffs, pct)
    up, down, same = sum(v > 0 for v in r), sum(v < 0 for v in r), sum(v == 0 for v in r)
    p = sign_test(r)
    verdict = f"beyond the seed noise (p < {ALPHA})" if p < ALPHA else "within the seed noise"
    return (f"higher in {up} of {_n(len(r), 'seed')}, lower in {down}" + (f", equal in {same}" if same else "")
            + f" (median {_fmt([float(np.median(diffs))], pct=pct, sign=True)}{' points' if pct else ' nats'}); "
            f"sign test p = {p:.2g}: {verdict}")


def results_block(metrics: dict) -> str:
    """The results table, the per-seed table and the reading: the part of the docs page docs/results.md includes."""
    cfg, methods, seeds = metrics["config"], metrics["config"]["methods"], metrics["config"]["seeds"]
    lines = [f"> **{SMOKE}**", ""] if cfg.get("quick") else []
    over = f"Median over seeds {', '.join(map(str, seeds))} with [min, max]" if len(seeds) > 1 else f"Seed {seeds[0]}"
    lines += [
        f"{over}; held-out set of {cfg['eval_size']} problems, {_n(cfg['eval_samples'], 'sample')} each at "
        f"temperature 1 (sampled) and one greedy; {_n(cfg['rl']['steps'], 'RL step')}.",
        "",
        "| method | sampled accuracy: start → end (%) | change (points) | greedy accuracy at the end (%) "
        f"| entropy, last {_n(min(LAST, cfg['rl']['steps']), 'step')} (nats) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in methods:
        start, end = (_fmt(per_seed(metrics, m, f"sample_acc_{k}"), pct=True) for k in ("start", "end"))
        lines.append(_row([label(m), f"{start} → {end}", _fmt(_change(metrics, m), pct=True, sign=True),
                           _fmt(per_seed(metrics, m, "greedy_acc_end"), pct=True),
                           _fmt(per_seed(metrics, m, "entropy_last"))]))
    others = [m for m in methods if m != "vanilla"] if "vanilla" in methods else []
    columns = ["seed", "start", *(f"{label(m)} end" for m in methods),
               *(f"{label(m)} − GRPO (points)" for m in others)]
    lines += ["", "Per seed, sampled held-out accuracy (%):", "", _row(columns), _row(["---"] * len(columns))]
    start = per_seed(metrics, methods[0], "sample_acc_start")
    for i, s in enumerate(seeds):
        ends = [_fmt([per_seed(metrics, m, "sample_acc_end")[i]], pct=True) for m in methods]
        diffs = [_fmt([_diff(metrics, m, "vanilla", "sample_acc_end")[i]], pct=True, sign=True) for m in others]
        lines.append(_row([str(s), _fmt([start[i]], pct=True), *ends, *diffs]))
    lines += ["", "Reading (computed from the numbers above):", "", *_reading(metrics)]
    return "\n".join(lines)


def _reading(metrics: dict) -> list[str]:
    methods, n = metrics["config"]["methods"], len(metrics["config"]["seeds"])
    out = []
    for m in methods:
        change = _change(metrics, m)
        rose = sum(v > 0 for v in _rounded(change, pct=True))
        out.append(f"- {label(m)}: sampled accuracy rose in {rose} of {_n(n, 'seed')} "
                   f"(change {_fmt(change, pct=True, sign=True)} points).")
    for base, m in combinations(sorted(methods, key=lambda name: name != "vanilla"), 2):  # each against GRPO first
        out.append(f"- {label(m)} vs {label(base)}, paired by seed: final sampled accuracy "
                   f"{_paired(_diff(metrics, m, base, 'sample_acc_end'), pct=True)}; final entropy "
                   f"{_paired(_diff(metrics, m, base, 'entropy_last'), pct=False)}.")
    out.append(f"- A difference holds beyond the seed noise when the exact two-sided sign test over the {n} paired "
               f"seeds gives p < {ALPHA} (with 10 seeds: 9 or more the same way). A toy model: this shows the "
               "mechanism running, not evidence for or against the paper's effect size.")
    return out


def render_markdown(metrics: dict, figure: str = "curves.png") -> str:
    """The whole page: setup, provenance, results block, covariance tail, weights, figure."""
    cfg, env, warm = metrics["config"], metrics.get("environment", {}), metrics["warm_start"]
    methods, rl, seeds = cfg["methods"], cfg["rl"], cfg["seeds"]
    lines = [
        "# CW-GRPO demo: a miniature GRPO vs Clip-Cov vs CW-GRPO run on CPU",
        "",
        *([f"> **{SMOKE}**", ""] if cfg.get("quick") else []),
        "A small-scale simulation of the mechanism, **not** the paper's experiment or result: a "
        f"{cfg['layers']}-layer, {cfg['hidden']}-wide Qwen2 (random init) learns two-digit addition "
        "(`ab+cd=`, answer in `\\boxed{}`), first by a supervised warm start to a sampled accuracy of "
        f"{100 * cfg['warm_target']:g}% on a probe set, then by RL with "
        f"{rl['prompts_per_step']} prompts x {rl['group_size']} samples per step for {rl['steps']} steps "
        f"(lr {rl['lr']:g}, one on-policy update per step, the whole step as one micro-batch, "
        "`seq-mean-token-mean`). Reward: `cwgrpo_verl.reward.compute_score` "
        f"(format weight {rl['format_weight']:g}); advantage: verl registry `{rl['adv_estimator']}`; "
        "losses: verl registry `vanilla`, `clip_cov`, `cw_grpo`. Every method starts from the same warm-start "
        "checkpoint of its seed and sees the same prompts and sampling seeds.",
        "",
        f"Command: `{metrics.get('command', 'python -m tools.demo')}`; wall time "
        + (f"{metrics['elapsed_s']:.0f} s" if metrics.get("elapsed_s") is not None else "not recorded")
        + f" ({_n(cfg['workers'], 'process', 'processes')} x {_n(cfg['threads'], 'thread')}). Warm start: "
        + ", ".join(f"seed {s}: {warm[str(s)]['warm_start_steps']} steps" for s in seeds) + ".",
    ]
    if env:
        lines += ["", "Environment: " + "; ".join(f"{k} {v}" for k, v in env.items())
                  + f". Run fingerprint `{fingerprint(metrics)}` (also in the figure's metadata)."]
    lines += [
        "", "## Results", "", results_block(metrics), "", f"![entropy and held-out accuracy per RL step]({figure})",
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
        *(_row([label(m), *(_fmt(per_seed(metrics, m, f"cov_pos_top_{q}")) for q in TAIL),
                *(_fmt(per_seed(metrics, m, f"cov_neg_top_{q}")) for q in TAIL[:3])]) for m in methods),
        "",
        "## CW-GRPO weights (mean over steps)",
        "",
        "What the Gaussian kernel assigns on each method's own batches (applied only by CW-GRPO; authors' "
        "defaults: padded normaliser, so the mean weight over valid tokens is >= 1).",
        "",
        "| method | min weight | fraction < 0.5 | max weight | effective sample size / tokens |",
        "| --- | --- | --- | --- | --- |",
        *(_row([label(m), *(_fmt(per_seed(metrics, m, k)) for k in WEIGHT_COLS)]) for m in methods),
    ]
    return "\n".join(lines) + "\n"


def write_report(metrics: dict, out: Path) -> None:
    """metrics.json, steps.csv, evals.csv, curves.png and summary.md in ``out``, and the token logs: each run's
    records in ``tokens/<method>_seed<seed>.tokens.jsonl``, the first seed's as tokens.html and tokens.md."""
    metrics = with_summaries(metrics)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "tokens", ignore_errors=True)  # an earlier run's logs: appending would mix two runs
    _token_page(metrics, out / "tokens.html", out / "tokens.md")
    for run in metrics["runs"]:
        if run.get("tokens"):
            append(out / "tokens" / f"{run['method']}_seed{run['seed']}.tokens.jsonl", run.pop("tokens"))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    for part in ("steps", "evals"):
        rows = [{"seed": r["seed"], "method": r["method"], **s} for r in metrics["runs"] for s in r[part]]
        with (out / f"{part}.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
            writer.writeheader()
            writer.writerows(rows)
    plot(metrics, out / "curves.png")
    (out / "summary.md").write_text(render_markdown(metrics))


def _token_page(metrics: dict, html: Path, md: Path | None = None) -> None:
    """The first seed's token records, methods side by side, as the report's --tokens renders them."""
    first = metrics["config"]["seeds"][0]
    shown = {label(r["method"]): r["tokens"] for r in metrics["runs"] if r["seed"] == first and r.get("tokens")}
    if shown:
        html.write_text(tokens_page.render_html(shown), encoding="utf-8")
        if md is not None:
            md.write_text(tokens_page.render_markdown(shown), encoding="utf-8")


def write_docs(metrics: dict, docs: Path) -> dict:
    """The published copy, returned: demo.json (the run less unused per-step records), demo.md, demo_curves.png and
    demo_tokens.html (the README's picture of the token page is shot from it: make tokens-screenshot)."""
    view = docs_view(with_summaries(metrics))
    docs.mkdir(parents=True, exist_ok=True)
    _token_page(metrics, docs / "demo_tokens.html")
    (docs / "demo.json").write_text(json.dumps(view, indent=1) + "\n")
    plot(view, docs / "demo_curves.png")
    (docs / "demo.md").write_text(render_markdown(view, figure="demo_curves.png"))
    return view


def readme_block(readme_text: str) -> str | None:
    """The text between a page's demo markers (None without markers)."""
    if BLOCK_START not in readme_text or BLOCK_END not in readme_text:
        return None
    return readme_text.split(BLOCK_START, 1)[1].split(BLOCK_END, 1)[0].strip("\n")


def update_readme(path: Path, metrics: dict) -> None:
    """Replace the block between the demo markers of ``path`` with ``results_block(metrics)``."""
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(BLOCK_START, 1)
    tail = rest.split(BLOCK_END, 1)[1]
    path.write_text(f"{head}{BLOCK_START}\n{results_block(metrics)}\n{BLOCK_END}{tail}", encoding="utf-8")


def plot(metrics: dict, path: Path) -> None:
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
            runs = [r for r in metrics["runs"] if r["method"] == m]
            x = np.array([s["step"] for s in runs[0][part]])
            y = np.array([[s[key] for s in r[part]] for r in runs], dtype=float)
            dense = part == "steps"  # a per-step curve stays on its steps; one point per evaluation: all shifted
            if dense:  # trailing mean per run
                csum = np.cumsum(np.pad(y, ((0, 0), (1, 0))), axis=1)
                width = np.minimum(np.arange(1, y.shape[1] + 1), SMOOTH)
                y = (csum[:, 1:] - csum[:, np.arange(y.shape[1]) + 1 - width]) / width
            y = scale * y
            med = np.median(y, 0)
            # markers (and min-max bars) at the evaluation steps, shifted sideways per method so none hide another
            marks = np.flatnonzero(x % eval_every == 0) if dense else np.arange(len(x))
            dx = (i - (len(methods) - 1) / 2) * 0.1 * eval_every
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
    fig.savefig(path, dpi=100, metadata={FINGERPRINT_KEY: fingerprint(metrics)})
    plt.close(fig)


def read_fingerprint(path: Path, key: str = FINGERPRINT_KEY) -> str | None:
    """The fingerprint a PNG written by ``plot`` (or stamped by :func:`stamp_screenshot`) carries, or None."""
    from PIL import Image

    with Image.open(path) as img:
        return img.info.get(key)


def page_digest(page: Path) -> str:
    return hashlib.sha256(page.read_bytes()).hexdigest()[:16]


def stamp_screenshot(png: Path, page: Path) -> None:
    """Write into a screenshot the digest of the page it shows (``make tokens-screenshot``), so that a test sees
    when the page changed and the picture did not."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(PAGE_KEY, page_digest(page))
    with Image.open(png) as img:
        img.load()
        img.save(png, pnginfo=info, optimize=True)
