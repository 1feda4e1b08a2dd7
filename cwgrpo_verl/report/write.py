"""Markdown and CSV for the tables, and the entropy / accuracy figure; each writer returns what it wrote."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from cwgrpo_verl.processes import alive
from cwgrpo_verl.report.tables import ENTROPY_KEY, TAIL_LABELS, TailColumn, benchmarks, validation_scores


DASH = "—"
#: marks an accuracy cell whose logged value is outside [0, 1] (see :mod:`.tables`)
OUT_OF_RANGE = "†"
#: every file a report writes into ``--out``
OUTPUT_NAMES = ("table1.md", "table1.csv", "table2.md", "table2.csv", "table3.md", "table3.csv", "validation.md",
                "validation.csv", "entropy.png", "tokens.html", "tokens.md")
_TEMP_PREFIX = ".report-"


class OutputSet:
    """This run's files, written into a temporary folder inside ``out``: leaving the ``with`` block without
    :meth:`commit` changes nothing in ``out`` (docs/report.md)."""

    def __init__(self, out: Path):
        self.out = out

    def __enter__(self) -> OutputSet:
        for p in self.out.glob(f"{_TEMP_PREFIX}*"):  # a killed run's
            pid = p.name[len(_TEMP_PREFIX):].split("-", 1)[0]
            if p.is_dir() and pid.isdigit() and not alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-", dir=self.out))
        return self

    def commit(self) -> tuple[list[str], list[str]]:
        """Move this run's files into ``out``; returns their names and those of the earlier run's files it removed."""
        written, removed = [], []
        for name in OUTPUT_NAMES:
            if (self.dir / name).exists():
                os.replace(self.dir / name, self.out / name)
                written.append(name)
            elif (self.out / name).is_file():
                (self.out / name).unlink()
                removed.append(name)
        return written, removed

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def fmt(value, spec=".1f", signed=False) -> str:
    return DASH if value is None else format(value, ("+" if signed else "") + spec)


def cell(text) -> str:
    """``text`` as one markdown table cell: a ``|`` would end the cell and a line break the row."""
    return " ".join(str(text).splitlines()).replace("|", "\\|")


def markdown(header, rows) -> str:
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(cell, row)) + " |" for row in rows]) + "\n"


def _names(order):
    return [benchmarks().get(ds, ds) for ds in order]


def _save(header, body, caption: str, settings: str, rows, order, out: Path, stem: str) -> str:
    """``<stem>.md`` (the table, its caption and notes) and ``<stem>.csv`` (the rows, benchmarks by title)."""
    import pandas as pd

    text = markdown(header, body) + f"\n{caption}.\n" + (f"Settings: {settings}.\n" if settings else "")
    if any(r["out_of_range"] for r in rows):
        text += (f"{OUT_OF_RANGE} logged outside [0, 1], where verl logs accuracy as a fraction: shown as logged "
                 "x 100, not rescaled.\n")
    (out / f"{stem}.md").write_text(text, encoding="utf-8")
    titles = dict(zip(order, _names(order)))
    frame = pd.DataFrame(rows).rename(columns={**titles, **{f"Δ {ds}": f"Δ {n}" for ds, n in titles.items()}})
    frame["out_of_range"] = [";".join(_names(r["out_of_range"])) for r in rows]
    frame.to_csv(out / f"{stem}.csv", index=False, float_format="%.4f")
    return text


def _accuracy(row, column, signed=False) -> str:
    """The cell's value, marked when a logged value it comes from is outside [0, 1]."""
    flagged = row["out_of_range"] if column in ("Avg", "Δ Avg") else [column] if column in row["out_of_range"] else []
    return fmt(row[column], signed=signed) + (OUT_OF_RANGE if flagged and row[column] is not None else "")


EVALUATED = "pass@1 accuracy (%) of the evaluations (python -m cwgrpo_verl.evaluate)"
VALIDATED = ("Training-time validation: accuracy (%) from verl's validation during training, at the training run's "
             "lengths and sampling, not the paper's protocol (Tables 2 and 3 come from evaluations)")


def write_table2(rows, order, base, out: Path, settings: str = "") -> str:
    delta = f"Δ vs {base}" if base else "Δ"
    body = [[r["run"], *(_accuracy(r, c) for c in [*order, "Avg"]), _accuracy(r, "Δ Avg", signed=True)] for r in rows]
    steps = ", ".join(f"{r['run']} @ step {r['step'] if r['step'] is not None else DASH}" for r in rows)
    return _save(["Method", *_names(order), "Avg", delta], body, f"{EVALUATED}; {steps}", settings, rows, order, out,
                 "table2")


def write_table3(rows, order, out: Path, settings: str = "", stem: str = "table3", caption: str = EVALUATED) -> str:
    body = [[r["run"], fmt(r["step"], "d"), *(_accuracy(r, c) for c in [*order, "Avg"])] for r in rows]
    return _save(["Method", "Step", *_names(order), "Avg"], body, f"{caption}, at each checkpoint (step) of each run",
                 settings, rows, order, out, stem)


def _steps(steps: list[int]) -> str:
    """``first-last``, with the count when steps are missing in between (``steps``: sorted, distinct)."""
    if not steps:
        return DASH
    contiguous = steps[-1] - steps[0] + 1 == len(steps)  # never a list of the steps in between: 1 and 1e9 is two
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
                "source": c.source.prefix + "*" if c.source else None}
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
    accuracy = {name: [(s, 100.0 * sum(v[0] for v in scores.values()) / len(scores)) for s, scores in
                       validation_scores(run, pattern, metric).items()] for name, run in runs.items()}
    accuracy = {name: points for name, points in accuracy.items() if points}
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
