"""``python -m cwgrpo_verl.report``: the paper's tables and figure from verl's logs (see ``docs/report.md``).

    python -m cwgrpo_verl.report --base Base=base_eval.jsonl --run GRPO=grpo.jsonl --run CW-GRPO=cw.jsonl \
        --out reports/paper [--tail-steps 50] [--step last|N] [--checkpoints 100,150,200]

Writes table1.md/.csv (covariance tail and entropy per run), table2.md/.csv (accuracy at one step),
table3.md/.csv (accuracy at every checkpoint) and entropy.png, as a set: the files of an earlier run in ``--out``
that this run does not write are removed, and a run that fails leaves them all as they were. A run's PATH may end
in ``#K`` (the K-th of several runs appended to one file) or ``#resume`` (those runs read as one resumed run).
Exit status: 0 written; 1 no input holds a metric the report reads; 2 bad arguments or an unreadable input.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from cwgrpo_verl.report.logs import LogError, load_run, split_selector, warn
from cwgrpo_verl.report.tables import VAL_PATTERN, reads, table1, table2, table3
from cwgrpo_verl.report.write import OUTPUT_NAMES, OutputSet, plot_entropy, write_table1, write_table2, write_table3


def _named(spec: str) -> tuple[str, str]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {spec!r}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise argparse.ArgumentTypeError(f"run name {name!r}: a control character (line break, tab) cannot be "
                                         "written in a table row")
    return name, path


def _is_output(path: Path, out: Path) -> Path | None:
    """The output of this report that ``path`` is, if any (a log must not be overwritten by a table)."""
    for target in (out / name for name in OUTPUT_NAMES):
        try:
            same = os.path.samefile(path, target)
        except OSError:  # one of them does not exist
            same = os.path.realpath(path) == os.path.realpath(target)
        if same:
            return target
    return None


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
    for name, text in specs:
        output = _is_output(split_selector(text)[0], args.out)
        if output is not None:
            p.error(f"--run/--base {name}={text}: is {output}, an output of this report (--out): give another --out")
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
    written, texts = [], []
    try:
        with OutputSet(args.out) as output:
            rows, order, notes = table2(runs, base, args.val_key_pattern, args.metric, args.step, datasets)
            texts.append(write_table2(rows, order, base, output.dir))
            written += ["table2.md", "table2.csv"]
            rows, order, more = table3(runs, base, args.val_key_pattern, args.metric, args.checkpoints, datasets)
            texts.append(write_table3(rows, order, output.dir))
            written += ["table3.md", "table3.csv"]
            notes += more
            columns, more = table1(runs, base, args.tail_steps)
            notes += more
            if columns:
                texts.append(write_table1(columns, args.tail_steps, base, output.dir))
                written += ["table1.md", "table1.csv"]
            else:
                notes.append("no training run (--run): table1 not written")
            png = plot_entropy(runs, args.val_key_pattern, args.metric, output.dir)
            if png is None:
                notes.append("no run logs actor/entropy: entropy.png not written")
            else:
                written.append(png.name)
            removed = output.commit()
    except OSError as error:
        print(f"error: --out {args.out}: cannot write ({error.strerror or error}: {error.filename})", file=sys.stderr)
        return 2
    for text in texts:
        print(text)
    if removed:
        notes.append(f"removed {', '.join(removed)} of an earlier report from {args.out} "
                     "(this run does not write them)")
    for note in dict.fromkeys(notes):
        warn(note)
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0
