"""``python -m cwgrpo_verl.report``: the paper's tables and figure from verl's logs (see ``docs/report.md``).

    python -m cwgrpo_verl.report --base Base=base_eval.jsonl --run GRPO=grpo.jsonl --run CW-GRPO=cw.jsonl \
        --out reports/paper [--tail-steps 50] [--step last|N] [--checkpoints 100,150,200]

Writes table1.md/.csv (covariance tail and entropy per run), table2.md/.csv (accuracy at one step),
table3.md/.csv (accuracy at every checkpoint) and entropy.png. A run's PATH may end in ``#K`` (the K-th of several
runs appended to one file) or ``#resume`` (those runs read as one resumed run).
Exit status: 0 written; 1 no input holds a metric the report reads; 2 bad arguments or an unreadable input.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from cwgrpo_verl.report.logs import LogError, load_run, warn
from cwgrpo_verl.report.tables import VAL_PATTERN, reads, table1, table2, table3
from cwgrpo_verl.report.write import plot_entropy, write_table1, write_table2, write_table3


def _named(spec: str) -> tuple[str, str]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {spec!r}")
    return name, path


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def _steps(text: str) -> list[int]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items or not all(t.isdigit() for t in items):
        raise argparse.ArgumentTypeError(f"expected comma-separated step numbers, e.g. 100,150,200, got {text!r}")
    return sorted({int(t) for t in items})


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cwgrpo_verl.report", description=__doc__.split("\n\n")[0],
                                epilog="Exit status: 0 written; 1 nothing to report; 2 bad arguments or input.")
    add = p.add_argument
    add("--run", type=_named, action="append", default=[], metavar="NAME=PATH[#K|#resume]",
        help="a training run's log: verl's file-logger JSONL, wandb history rows, a console log or a tensorboard "
             "directory (repeat)")
    add("--base", type=_named, metavar="NAME=PATH", help="the base model's evaluation run (Δ reference)")
    add("--out", required=True, type=Path, help="output directory")
    add("--tail-steps", type=_positive_int, help="Table 1 over steps 1..K (paper: 50; default: every step)")
    add("--step", default="last", help="Table 2 at this step, or 'last' (each run's last validation)")
    add("--checkpoints", type=_steps, help="Table 3 at these steps (default: every step with validation)")
    add("--metric", default="acc", help="validation variable (falls back to 'reward')")
    add("--val-key-pattern", default=VAL_PATTERN, help="regex with named groups ds [, var, n]")
    add("--datasets", help="comma-separated data sources: the benchmark columns and their order")
    add("--skip-bad-lines", action="store_true", help="warn about unreadable lines and values instead of failing")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.step != "last" and not args.step.isdigit():
        p.error(f"--step must be 'last' or a step number, got {args.step!r}")
    try:
        used = reads(args.val_key_pattern)
    except re.error as error:
        p.error(f"--val-key-pattern: not a regular expression ({error})")
    specs = ([args.base] if args.base else []) + args.run
    if not specs:
        p.error("give at least one --run or --base")
    if len({n for n, _ in specs}) != len(specs):
        p.error("run names must be unique")
    try:
        runs = {name: load_run(text, not args.skip_bad_lines, used, name=name) for name, text in specs}
    except LogError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not any(used(k) for run in runs.values() for row in run.values() for k in row):
        print("error: no input holds a metric the report reads (val-core/<data_source>/acc/mean@N, cov/*, "
              f"actor/entropy): nothing to report ({', '.join(str(t) for _, t in specs)})", file=sys.stderr)
        return 1
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"error: --out {args.out}: cannot create it ({error.strerror or error})", file=sys.stderr)
        return 2
    base = args.base[0] if args.base else None
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    written = []
    try:
        rows, order, notes = table2(runs, base, args.val_key_pattern, args.metric, args.step, datasets)
        print(write_table2(rows, order, base, args.out))
        written += ["table2.md", "table2.csv"]
        rows, order, more = table3(runs, base, args.val_key_pattern, args.metric, args.checkpoints, datasets)
        print(write_table3(rows, order, args.out))
        written += ["table3.md", "table3.csv"]
        notes += more
        columns, more = table1(runs, base, args.tail_steps)
        notes += more
        if columns:
            print(write_table1(columns, args.tail_steps, base, args.out))
            written += ["table1.md", "table1.csv"]
        else:
            notes.append("no training run (--run): table1 not written")
        png = plot_entropy(runs, args.val_key_pattern, args.metric, args.out)
        if png is None:
            notes.append("no run logs actor/entropy: entropy.png not written")
        else:
            written.append(png.name)
    except OSError as error:
        print(f"error: --out {args.out}: cannot write ({error.strerror or error}: {error.filename})", file=sys.stderr)
        return 2
    for note in dict.fromkeys(notes):
        warn(note)
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0
