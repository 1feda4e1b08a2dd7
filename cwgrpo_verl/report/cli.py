"""``python -m cwgrpo_verl.report``: the paper's tables and figure from evaluations and training logs (see
``docs/report.md``).

    python -m cwgrpo_verl.report --base Base=evals/base --eval GRPO=ckpt/grpo/evals --eval CW-GRPO=ckpt/cw/evals \
        --run GRPO=logs/grpo.jsonl --run CW-GRPO=logs/cw.jsonl --out reports/paper [--tail-steps 50] \
        [--step last|N] [--checkpoints 100,150,200] [--mixed-settings] [--tokens]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from cwgrpo_verl import argtypes
from cwgrpo_verl.evaluate import COMPARED
from cwgrpo_verl.report import tokens
from cwgrpo_verl.report.logs import LogError, load_evaluations, load_run, split_selector, warn
from cwgrpo_verl.report.tables import (VAL_PATTERN, reads, settings_differences, table1, table2, table3,
                                       validation_scores)
from cwgrpo_verl.report.write import (OUTPUT_NAMES, VALIDATED, OutputSet, plot_entropy, write_table1, write_table2,
                                      write_table3)


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


def _common_settings(rows: list[dict], settings: dict) -> str:
    recorded = next((settings[r["run"]].get(r["step"]) for r in rows if settings[r["run"]].get(r["step"])), None)
    if recorded is None:
        return "not recorded (logs without evaluation settings)"
    return ", ".join(f"{key} {recorded.get(key)}" for key in COMPARED)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cwgrpo_verl.report", description=__doc__.split("\n\n")[0],
                                epilog="Exit status: 0 written; 1 nothing to report; 2 bad arguments or input.")
    add = p.add_argument
    add("--run", type=_named, action="append", default=[], metavar="NAME=PATH[#K|#resume]",
        help="a training run's log: verl's file-logger JSONL, wandb history rows, a console log or a tensorboard "
             "directory (repeat): Table 1, the entropy figure, the training-time validation")
    add("--eval", type=_named, action="append", default=[], metavar="NAME=PATH",
        help="a run's evaluations for Tables 2 and 3: a folder of logs (examples/evaluate_checkpoints.sh), a glob or "
             "one log (repeat)")
    add("--base", type=_named, metavar="NAME=PATH", help="the base model's evaluation (Δ reference of Table 2)")
    add("--mixed-settings", action="store_true",
        help="put evaluations with different settings in one table (it then lists what differs)")
    add("--out", required=True, type=Path, help="output directory")
    add("--tail-steps", type=argtypes.integer(), help="Table 1 over steps 1..K (paper: 50; default: every step)")
    add("--step", default="last", help="Table 2 at this step, or 'last' (each run's last validation)")
    add("--checkpoints", type=lambda text: sorted(argtypes.integers(low=1)(text)),
        help="Table 3 at these steps (default: every step with validation)")
    add("--metric", default="acc", help="validation variable (falls back to 'reward')")
    add("--val-key-pattern", default=VAL_PATTERN, help="regex with named groups ds [, var, n]")
    add("--datasets", help="comma-separated data sources: the benchmark columns and their order")
    add("--tokens", action="store_true",
        help="also tokens.html and tokens.md: each logged step's extreme tokens in context, from the token log beside "
             "each --run log (<experiment>.tokens.jsonl, written by the recipe every cwgrpo.token_log_every steps)")
    add("--skip-bad-lines", action="store_true", help="warn about unreadable lines and values instead of failing")
    return p


def _error(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.step != "last" and not args.step.isdigit():
        p.error(f"--step must be 'last' or a step number, got {args.step!r}")
    try:
        used = reads(args.val_key_pattern)
    except re.error as error:
        p.error(f"--val-key-pattern: not a regular expression ({error})")
    evals = ([args.base] if args.base else []) + args.eval
    if not evals and not args.run:
        p.error("give at least one --run, --eval or --base")
    for kind, specs in (("--run", args.run), ("--eval/--base", evals)):
        if len({n for n, _ in specs}) != len(specs):
            p.error(f"{kind} names must be unique")
    for name, text in args.run + evals:
        output = _is_output(split_selector(text)[0], args.out)
        if output is not None:
            p.error(f"{name}={text}: is {output}, an output of this report (--out): give another --out")
    if args.tokens and not args.run:
        p.error("--tokens reads the token logs beside the --run logs: give at least one --run")
    strict, pattern, metric = not args.skip_bad_lines, args.val_key_pattern, args.metric
    token_logs = {name: tokens.token_log_for(text) for name, text in args.run} if args.tokens else {}
    if token_logs and not any(path.is_file() for path in token_logs.values()):
        return _error("--tokens: no token log found (" + ", ".join(map(str, token_logs.values())) + "); the recipe "
                      "writes one beside its metrics log when cwgrpo.token_log_every > 0", 1)
    try:
        token_records = {name: tokens.load_tokens(path, strict) for name, path in token_logs.items() if path.is_file()}
        runs = {name: load_run(text, strict, used, name=name) for name, text in args.run}
        loaded = {name: load_evaluations(text, strict, used, name=name) for name, text in evals}
    except LogError as error:
        return _error(str(error), 2)
    evaluations = {name: steps for name, (steps, _) in loaded.items()}
    settings = {name: recorded for name, (_, recorded) in loaded.items()}
    if not any(used(k) for run in [*runs.values(), *evaluations.values()] for row in run.values() for k in row):
        return _error("no input holds a metric the report reads (val-core/<data_source>/acc/mean@N, cov/*, "
                      f"actor/entropy): nothing to report ({', '.join(t for _, t in args.run + evals)})", 1)
    base = args.base[0] if args.base else None
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    texts, notes = [], []
    if evaluations:
        table_2 = table2(evaluations, base, pattern, metric, args.step, datasets)
        table_3 = table3(evaluations, base, pattern, metric, args.checkpoints, datasets)
        rows = [r for table in (table_2, table_3) for r in table[0] if r["step"] is not None]
        differ = settings_differences(rows, settings)
        if differ and not args.mixed_settings:
            return _error("the evaluations in Tables 2 and 3 were made with different settings (evaluate them alike, "
                          "or pass --mixed-settings to compare them anyway):\n  " + "\n  ".join(differ), 2)
        settings_text = "; ".join(differ) if differ else _common_settings(rows, settings)
        notes += table_2[2] + table_3[2]
    else:
        notes.append("no --eval or --base: Tables 2 and 3 (accuracy of evaluations) not written; evaluate "
                     "checkpoints with examples/evaluate_checkpoints.sh")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return _error(f"--out {args.out}: cannot create it ({error.strerror or error})", 2)
    try:
        with OutputSet(args.out) as output:
            if evaluations:
                texts.append(write_table2(*table_2[:2], base, output.dir, settings_text))
                texts.append(write_table3(*table_3[:2], output.dir, settings_text))
            if any(validation_scores(run, pattern, metric) for run in runs.values()):
                rows, order, more = table3(runs, None, pattern, metric, args.checkpoints, datasets)
                texts.append(write_table3(rows, order, output.dir, stem="validation", caption=VALIDATED))
                notes += more
            columns, more = table1(runs, None, args.tail_steps)
            notes += more
            if columns:
                texts.append(write_table1(columns, args.tail_steps, None, output.dir))
            else:
                notes.append("no training run (--run): table1 not written")
            if token_records:
                (output.dir / "tokens.html").write_text(tokens.render_html(token_records), encoding="utf-8")
                (output.dir / "tokens.md").write_text(tokens.render_markdown(token_records), encoding="utf-8")
                notes += [f"--tokens: {name} has no token log ({path})" for name, path in token_logs.items()
                          if name not in token_records]
            if plot_entropy(runs, pattern, metric, output.dir) is None:
                notes.append("no run logs actor/entropy: entropy.png not written")
            written, removed = output.commit()
    except OSError as error:
        return _error(f"--out {args.out}: cannot write ({error.strerror or error}: {error.filename})", 2)
    for text in texts:
        print(text)
    if removed:
        notes.append(f"removed {', '.join(removed)} of an earlier report from {args.out} "
                     "(this run does not write them)")
    for note in dict.fromkeys(notes):
        warn(note)
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0
