"""Markdown and CSV for the tables, and the entropy / accuracy figure; each writer returns what it wrote."""

from __future__ import annotations

from pathlib import Path

from cwgrpo_verl.report.tables import (
    BENCHMARKS,
    ENTROPY_KEY,
    TAIL_LABELS,
    TailColumn,
    validation_steps,
    val_scores,
)

DASH = "—"


def fmt(value, spec=".1f", signed=False) -> str:
    if value is None:
        return DASH
    return format(value, ("+" if signed else "") + spec)


def markdown(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def _names(order):
    return [BENCHMARKS.get(ds, ds) for ds in order]


def _accuracy_csv(rows, order, path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows).rename(columns=dict(zip(order, _names(order))))
    frame = frame.rename(columns={f"Δ {ds}": f"Δ {n}" for ds, n in zip(order, _names(order))})
    frame.to_csv(path, index=False, float_format="%.4f")


def write_table2(rows, order, base, out: Path) -> str:
    delta = f"Δ vs {base}" if base else "Δ"
    body = [[r["run"], *(fmt(r[c]) for c in [*order, "Avg"]), fmt(r["Δ Avg"], signed=True)] for r in rows]
    text = markdown(["Method", *_names(order), "Avg", delta], body)
    steps = ", ".join(f"{r['run']} @ step {r['step'] if r['step'] is not None else DASH}" for r in rows)
    text += f"\npass@1 accuracy (%) from verl's validation metrics; {steps}.\n"
    (out / "table2.md").write_text(text, encoding="utf-8")
    _accuracy_csv(rows, order, out / "table2.csv")
    return text


def write_table3(rows, order, out: Path) -> str:
    body = [[r["run"], fmt(r["step"], "d"), *(fmt(r[c]) for c in [*order, "Avg"])] for r in rows]
    text = markdown(["Method", "Step", *_names(order), "Avg"], body)
    text += "\npass@1 accuracy (%) from verl's validation metrics at each checkpoint (step) of each run.\n"
    (out / "table3.md").write_text(text, encoding="utf-8")
    _accuracy_csv(rows, order, out / "table3.csv")
    return text


def _steps(steps: list[int]) -> str:
    if not steps:
        return DASH
    contiguous = steps == list(range(steps[0], steps[-1] + 1))
    return f"{steps[0]}-{steps[-1]}" + ("" if contiguous else f" ({len(steps)} steps)")


def write_table1(columns: list[TailColumn], tail_steps, base: str | None, out: Path) -> str:
    import pandas as pd

    header = ["Tokens"] + [f"{c.run} {word}" for c in columns for word in ("positive", "negative")]
    body = [[label, *(fmt(v, ".3f") for c in columns for v in c.cells[frac])] for frac, label in TAIL_LABELS.items()]
    window = f"the first {tail_steps} steps" if tail_steps else "all logged steps"
    text = markdown(header, body)
    text += (f"\nMean of the largest (positive) and smallest (negative) q-fraction of the token covariances "
             f"(log-prob minus its response's mean) x (advantage minus the scope's mean) over {window} of each run; "
             "the table below says which statistics each run logged.\n\n")
    text += markdown(["Method", "steps", f"entropy (nats, mean of {ENTROPY_KEY})", "statistics"],
                     [[c.run, _steps(c.steps), fmt(c.entropy, ".3f"), c.source.describes if c.source else DASH]
                      for c in columns])
    if base:
        text += f"\n{base} is the evaluation-only base run (--base): it has no training steps.\n"
    (out / "table1.md").write_text(text, encoding="utf-8")
    records = [{"run": c.run, "tokens": label, "fraction": frac,
                "positive": c.cells[frac][0], "negative": c.cells[frac][1],
                "entropy_mean": c.entropy, "first_step": c.steps[0] if c.steps else None,
                "last_step": c.steps[-1] if c.steps else None, "num_steps": len(c.steps),
                "source": c.source.prefix + c.source.stem + "*" if c.source else None}
               for c in columns for frac, label in TAIL_LABELS.items()]
    pd.DataFrame(records).to_csv(out / "table1.csv", index=False, float_format="%.6g")
    return text


def plot_entropy(runs: dict, pattern: str, metric: str, out: Path) -> Path | None:
    """entropy.png: the entropy of every run per step and (if validated) its mean accuracy; None if no entropy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {name: [(s, row[ENTROPY_KEY]) for s, row in sorted(run.items()) if ENTROPY_KEY in row]
              for name, run in runs.items()}
    curves = {name: points for name, points in curves.items() if points}
    if not curves:
        return None
    accuracy = {}
    for name, run in runs.items():
        points = []
        for s in validation_steps(run, pattern, metric):
            _, scores = val_scores(run, pattern, metric, s)
            points.append((s, 100.0 * sum(v[0] for v in scores.values()) / len(scores)))
        if points:
            accuracy[name] = points
    fig, axes = plt.subplots(1, 2 if accuracy else 1, figsize=(11 if accuracy else 6, 4), squeeze=False)
    colors = {name: f"C{i % 10}" for i, name in enumerate(runs)}  # one colour per run in both panels
    for name, points in curves.items():
        axes[0, 0].plot(*zip(*points), label=name, color=colors[name], marker="." if len(points) < 30 else None)
    axes[0, 0].set(xlabel="training step", ylabel="entropy (nats)", title="Policy entropy")
    for name, points in accuracy.items():
        if len(points) == 1:  # an evaluation-only run (the base model): a reference line
            axes[0, 1].axhline(points[0][1], label=name, color=colors[name], linestyle="--")
        else:
            axes[0, 1].plot(*zip(*points), label=name, color=colors[name], marker="o")
    if accuracy:
        axes[0, 1].set(xlabel="training step", ylabel="accuracy (%)", title="Validation accuracy (mean over sets)")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = out / "entropy.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
