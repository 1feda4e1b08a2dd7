"""Paper-style report from verl's logged metrics: Table 2 (accuracy), Figure 1 (entropy), Table 1 (covariance tail).

Reads what verl 0.9.1 writes (``trainer.logger=[console,file,tensorboard]``):

* file logger: JSONL, one ``{"step": S, "data": {metric: value, ...}}`` per ``log`` call, at
  ``$VERL_FILE_LOGGER_PATH`` or else ``${VERL_FILE_LOGGER_ROOT:-.}/<project_name>/<experiment_name>.jsonl``;
* console logger: captured stdout (``... 2>&1 | tee train.log``) with lines ``step:S - key:value - ...``, also
  behind Ray's ``(TaskRunner pid=N)`` prefix; values may be ``np.float64(x)``; other lines are skipped;
* tensorboard: a directory of ``events.out.tfevents.*`` (``$TENSORBOARD_DIR``, default
  ``tensorboard_log/<project>/<experiment>``), read with tensorboard's EventAccumulator if it is installed.

    python -m cwgrpo_verl.report --base Base=base_eval.jsonl --run GRPO=grpo.jsonl --run CW-GRPO=cw.log \
        --out reports/paper [--step last|N] [--metric acc] [--tail-steps 50]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from cwgrpo_verl.metrics import TAIL_FRACTIONS

DISPLAY_NAMES = {
    "cwgrpo/aime24": "AIME24",
    "cwgrpo/math500": "MATH-500",
    "cwgrpo/amc23": "AMC23",
    "cwgrpo/minerva": "Minerva",
    "cwgrpo/olympiadbench": "OlympiadBench",
}
VAL_PATTERN = r"^val-core/(?P<ds>.+)/(?P<var>[^/]+)/mean@(?P<n>\d+)$"
TAIL_LABELS = {name: f"top {q * 100:g}%" for name, q in TAIL_FRACTIONS.items()}  # as the loss logs them
CW_PREFIXES = ("actor/cw/", "cw/")
ENTROPY_KEY = "actor/entropy"
DASH = "—"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CONSOLE = re.compile(r"(?:^|[\s)])step:(-?\d+)(?: - (.*))?$")
_NP_SCALAR = re.compile(r"^(?:np|numpy)\.\w+\((.*)\)$")


class LogParseError(ValueError):
    """A log line that looks like metrics but cannot be read; the message names the file and line."""


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _number(value):
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, (int, float)) else None


def _parse_console_value(text: str) -> float:
    text = text.strip()
    match = _NP_SCALAR.match(text)
    if match:
        text = match.group(1)
    if text in ("True", "False"):
        return float(text == "True")
    return float(text)


def _read_jsonl(path: Path, strict: bool) -> dict[int, dict[str, float]]:
    steps: dict[int, dict[str, float]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                step, data = int(record["step"]), record["data"]
                if not isinstance(data, dict):
                    raise TypeError("'data' is not an object")
            except (ValueError, KeyError, TypeError) as error:
                message = f"{path}:{lineno}: not a verl file-logger record ({error}): {line.strip()[:120]!r}"
                if strict:
                    raise LogParseError(message) from None
                warn(message + " (skipped)")
                continue
            row = steps.setdefault(step, {})
            row.update({k: v for k, v in ((k, _number(v)) for k, v in data.items()) if v is not None})
    return steps


def _read_console(path: Path, strict: bool) -> dict[int, dict[str, float]]:
    steps: dict[int, dict[str, float]] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, 1):
            match = _CONSOLE.search(_ANSI.sub("", raw.rstrip("\r\n")))
            if not match:
                continue
            row = steps.setdefault(int(match.group(1)), {})
            for item in (match.group(2) or "").split(" - "):
                key, sep, value = item.rpartition(":")
                try:
                    if not sep or not key:
                        raise ValueError("expected key:value")
                    row[key] = _parse_console_value(value)
                except ValueError as error:
                    message = f"{path}:{lineno}: cannot parse console metric {item[:120]!r} ({error})"
                    if strict:
                        raise LogParseError(message) from None
                    warn(message + " (skipped)")
    return steps


def _read_tensorboard(path: Path) -> dict[int, dict[str, float]]:
    try:
        from tensorboard.backend.event_processing import event_accumulator as ea
        from tensorboard.util import tensor_util
    except ImportError as error:
        raise SystemExit(f"{path} is a tensorboard directory but tensorboard is not installed: {error}") from None
    steps: dict[int, dict[str, float]] = {}
    dirs = sorted({p.parent for p in path.rglob("events.out.tfevents.*")})
    if not dirs:
        raise LogParseError(f"{path}: directory holds no tensorboard event files (events.out.tfevents.*)")
    for directory in dirs:
        acc = ea.EventAccumulator(str(directory), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            for event in acc.Scalars(tag):
                steps.setdefault(int(event.step), {})[tag] = float(event.value)
        for tag in acc.Tags().get("tensors", []):
            for event in acc.Tensors(tag):
                array = tensor_util.make_ndarray(event.tensor_proto)
                if array.size == 1 and array.dtype.kind in "fiub":
                    steps.setdefault(int(event.step), {})[tag] = float(array.reshape(()))
    return steps


def load_run(path: str | Path, strict: bool = True) -> dict[int, dict[str, float]]:
    """``{step: {metric: value}}`` from a verl file-logger JSONL, a console log, or a tensorboard directory."""
    path = Path(path)
    if path.is_dir():
        return _read_tensorboard(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such log: {path}")
    if path.suffix == ".jsonl":
        return _read_jsonl(path, strict)
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = next((line for line in fh if line.strip()), "")
    try:  # a console log may start with verl's pprint of the config, which also begins with "{"
        record = json.loads(first)
        is_jsonl = isinstance(record, dict) and {"step", "data"} <= record.keys()
    except ValueError:
        is_jsonl = False
    return _read_jsonl(path, strict) if is_jsonl else _read_console(path, strict)


def _finite(value) -> bool:
    return value is not None and not math.isnan(value)


def val_scores(run, pattern: str, metric: str, step: str | int):
    """Validation scores at ``step`` ("last": the last step that has any) as ``(step, {data_source: (value, key,
    fallback)})``; ``fallback`` is 1 where ``metric`` is missing and the ``reward`` variable was used."""
    regex = re.compile(pattern)

    def scores_at(row):
        found: dict[str, tuple[int, int, float, str]] = {}
        for key, value in row.items():
            match = regex.match(key)
            if not match or not _finite(value):
                continue
            groups = match.groupdict()
            var = groups.get("var") or metric
            rank = 0 if var == metric else 1 if var == "reward" else None
            if rank is None:
                continue
            candidate = (rank, -int(groups.get("n") or 0), value, key)
            ds = groups.get("ds", key)
            found[ds] = min(found.get(ds, candidate), candidate)
        return {ds: (v, k, rank) for ds, (rank, _, v, k) in found.items()}

    candidates = sorted(run) if step == "last" else [int(step)] if int(step) in run else []
    for s in reversed(candidates):
        scores = scores_at(run[s])
        if scores:
            return s, scores
    return None, {}


def table2(runs: dict, base: str | None, pattern=VAL_PATTERN, metric="acc", step="last", datasets=None):
    """Rows of Table 2 as dicts (full-precision percent) plus the ordered list of benchmark columns."""
    picked = {}
    for name, run in runs.items():
        at = "last" if name == base else step
        picked[name] = val_scores(run, pattern, metric, at)
        if picked[name][0] is None:
            warn(f"run {name!r} has no validation metrics matching {pattern!r} at step {at}: its row shows {DASH}")
        for ds, (_, key, rank) in picked[name][1].items():
            if rank:
                warn(f"run {name!r}, {ds}: no {metric!r} metric, using {key}")
    seen = {ds for _, scores in picked.values() for ds in scores}
    if datasets:
        order = list(datasets)
    else:
        order = [ds for ds in DISPLAY_NAMES if ds in seen] + sorted(seen - DISPLAY_NAMES.keys())
    rows = []
    for name, (s, scores) in picked.items():
        row = {"run": name, "step": s}
        for ds in order:
            row[ds] = 100.0 * scores[ds][0] if ds in scores else None
        values = [row[ds] for ds in order]
        row["Avg"] = sum(values) / len(values) if values and all(v is not None for v in values) else None
        rows.append(row)
    base_row = next((r for r in rows if r["run"] == base), None)
    for row in rows:
        for col in [*order, "Avg"]:
            ok = base_row is not None and row is not base_row and row[col] is not None and base_row[col] is not None
            row[f"Δ {col}"] = row[col] - base_row[col] if ok else None
    return rows, order


def tail_table(runs: dict, tail_steps: int | None = None):
    """{run: {fraction: (mean cov_pos_top, mean cov_neg_top)}} over logged steps (the first ``tail_steps`` if set)."""
    out = {}
    for name, run in runs.items():
        keys = {k for row in run.values() for k in row}
        prefix = next((p for p in CW_PREFIXES if any(k.startswith(p + "cov_pos_top_") for k in keys)), None)
        if prefix is None:
            continue
        cells = {}
        for frac in TAIL_LABELS:
            means = []
            for sign in ("pos", "neg"):
                key = f"{prefix}cov_{sign}_top_{frac}"
                values = [run[s][key] for s in sorted(run) if _finite(run[s].get(key))][:tail_steps]
                means.append(sum(values) / len(values) if values else None)
            cells[frac] = tuple(means)
        out[name] = cells
    return out


def _fmt(value, spec=".1f", signed=False) -> str:
    if value is None:
        return DASH
    return format(value, ("+" if signed else "") + spec)


def _markdown(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def write_table2(rows, order, base, out: Path) -> str:
    import pandas as pd

    names = [DISPLAY_NAMES.get(ds, ds) for ds in order]
    delta = f"Δ vs {base}" if base else "Δ"
    body = [[r["run"], *(_fmt(r[c]) for c in [*order, "Avg"]), _fmt(r["Δ Avg"], signed=True)] for r in rows]
    text = _markdown(["Method", *names, "Avg", delta], body)
    steps = ", ".join(f"{r['run']} @ step {r['step'] if r['step'] is not None else DASH}" for r in rows)
    text += f"\npass@1 accuracy (%) from verl's validation metrics; {steps}.\n"
    (out / "table2.md").write_text(text, encoding="utf-8")
    frame = pd.DataFrame(rows).rename(columns=dict(zip(order, names)))
    frame = frame.rename(columns={f"Δ {ds}": f"Δ {n}" for ds, n in zip(order, names)})
    frame.to_csv(out / "table2.csv", index=False, float_format="%.4f")
    return text


def write_table1(tails, tail_steps, out: Path) -> str:
    import pandas as pd

    header = ["Tokens"] + [f"{run} {sign}" for run in tails for sign in ("positive", "negative")]
    body = [[label, *(_fmt(v, ".3f") for run in tails for v in tails[run][frac])]
            for frac, label in TAIL_LABELS.items()]
    scope = f"first {tail_steps} logged steps" if tail_steps else "all logged steps"
    text = _markdown(header, body)
    text += f"\nMean covariance of the top-q tokens (cov_pos_top_* / cov_neg_top_*) over the {scope}.\n"
    (out / "table1.md").write_text(text, encoding="utf-8")
    signs = ("positive", "negative")
    csv = [{"tokens": label, **{f"{run} {s}": tails[run][frac][i] for run in tails for i, s in enumerate(signs)}}
           for frac, label in TAIL_LABELS.items()]
    pd.DataFrame(csv).to_csv(out / "table1.csv", index=False, float_format="%.6g")
    return text


def plot_entropy(runs: dict, pattern: str, metric: str, out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for name, run in runs.items():
        points = [(s, row[ENTROPY_KEY]) for s, row in sorted(run.items()) if _finite(row.get(ENTROPY_KEY))]
        if points:
            curves[name] = points
    if not curves:
        warn(f"no run logs {ENTROPY_KEY!r}: entropy.png not written")
        return None
    accuracy = {}
    for name, run in runs.items():
        points = []
        for s in sorted(run):
            got, scores = val_scores(run, pattern, metric, s)
            if got is not None:
                points.append((s, 100.0 * sum(v[0] for v in scores.values()) / len(scores)))
        if points:
            accuracy[name] = points
    fig, axes = plt.subplots(1, 2 if accuracy else 1, figsize=(11 if accuracy else 6, 4), squeeze=False)
    colors = {name: f"C{i % 10}" for i, name in enumerate(runs)}  # one colour per run in both panels
    for name, points in curves.items():
        axes[0, 0].plot(*zip(*points), label=name, color=colors[name], marker="." if len(points) < 30 else None)
    axes[0, 0].set(xlabel="training step", ylabel="entropy", title="Policy entropy")
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


def _named(spec: str) -> tuple[str, str]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {spec!r}")
    return name, path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cwgrpo_verl.report", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--run", type=_named, action="append", default=[], metavar="NAME=PATH", help="a run's log (repeat)")
    add("--base", type=_named, metavar="NAME=PATH", help="base model run (first row, Δ reference; last val step)")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--step", default="last", help="'last' (last step with validation metrics) or a step number")
    parser.add_argument("--metric", default="acc", help="validation variable (falls back to 'reward')")
    parser.add_argument("--val-key-pattern", default=VAL_PATTERN, help="regex with named groups ds [, var, n]")
    parser.add_argument("--datasets", help="comma-separated data sources: Table 2 columns and their order")
    parser.add_argument("--tail-steps", type=int, help="Table 1 over the first K logged steps (paper: 50)")
    parser.add_argument("--skip-bad-lines", action="store_true", help="warn about unparsable lines instead of failing")
    args = parser.parse_args(argv)
    if args.step != "last" and not args.step.lstrip("-").isdigit():
        parser.error(f"--step must be 'last' or an integer, got {args.step!r}")
    specs = ([args.base] if args.base else []) + args.run
    if not specs:
        parser.error("give at least one --run or --base")
    if len({n for n, _ in specs}) != len(specs):
        parser.error("run names must be unique")
    try:
        runs = {name: load_run(path, strict=not args.skip_bad_lines) for name, path in specs}
    except (LogParseError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.base[0] if args.base else None
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    rows, order = table2(runs, base, args.val_key_pattern, args.metric, args.step, datasets)
    print(write_table2(rows, order, base, args.out))
    tails = tail_table(runs, args.tail_steps)
    if tails:
        print(write_table1(tails, args.tail_steps, args.out))
    else:
        warn("no run logs cov_pos_top_*/cov_neg_top_* (actor/cw/... or cw/...): table1 not written")
    png = plot_entropy(runs, args.val_key_pattern, args.metric, args.out)
    written = ["table2.md", "table2.csv", *(["table1.md", "table1.csv"] if tails else []), *([png.name] if png else [])]
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
