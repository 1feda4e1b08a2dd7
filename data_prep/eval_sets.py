"""Build verl parquet files for the paper's five evaluation sets.

Writes ``DIR/<set>.parquet`` for each set, by default from the Hugging Face hub datasets the paper's lighteval
tasks used (``hub_id`` in :mod:`cwgrpo_verl.data_sets`).  Without network, use ``--source-dir``, a folder holding
``aime24``, ``math500``, ``amc23``, ``minerva_math`` and ``olympiadbench`` as ``.jsonl``/``.json``/``.parquet`` files
or ``save_to_disk`` folders (the layout of shared/data), or set ``HF_HUB_OFFLINE=1`` to use the Hugging Face cache.
A repeated problem is a row error by default: it would count twice in the accuracy (see :mod:`data_prep.convert`).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from cwgrpo_verl import argtypes, data_sets
from data_prep.common import PROMPT_STYLES, DataPrepError, eval_messages, parse_args, run
from data_prep.convert import DUPLICATE_POLICIES, convert
from data_prep.output import output_dir


def resolve_source(set_name: str, source_dir: str | Path | None, overrides: dict[str, str]) -> tuple[str, str, str]:
    """(source, hub split, the flag that chose it)."""
    dataset = data_sets.get(set_name)
    if set_name in overrides:
        return overrides[set_name], dataset.hub_split, "--source"
    if source_dir is None:
        return dataset.hub_id, dataset.hub_split, "--source-dir (or --source NAME=PATH)"
    d = _source_dir(source_dir)
    for stem in dict.fromkeys((dataset.local_stem, set_name)):
        for p in (d / f"{stem}{suf}" for suf in (".jsonl", ".json", ".parquet", "")):
            if p.exists():
                return str(p), dataset.hub_split, "--source-dir"
    raise DataPrepError(f"--source-dir {d}: no {dataset.local_stem}.jsonl/.json/.parquet or save_to_disk folder for "
                        f"{set_name}")


def _source_dir(d: str | Path) -> Path:
    if not Path(d).is_dir():
        raise DataPrepError(f"--source-dir {d}: {'not a folder' if Path(d).exists() else 'no such folder'}")
    return Path(d)


def prepare_eval_set(set_name: str, out_dir: str | Path, source: str, hub_split: str | None = None,
                     prompt: str = "paper", skip_invalid: bool = False, duplicates: str = "error",
                     hint: str = "--source") -> Path:
    return convert(set_name, source, out_dir, split_label="test", hub_split=hub_split, hint=hint,
                   messages_fn=functools.partial(eval_messages, style=prompt), skip_invalid=skip_invalid,
                   duplicates=duplicates)


def parse_sets(text: str) -> list[str]:
    """Comma-separated set names or aliases, as keys of the registry (read at call time)."""
    return argtypes.names(data_sets.evaluation_keys(), lambda n: getattr(data_sets.resolve(n), "key", n))(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_prep.eval_sets", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--sets", type=parse_sets, default=list(data_sets.evaluation_keys()),
                    help="comma-separated (default: all)")
    ap.add_argument("--source-dir", default=None, help="folder with aime24.jsonl, math500.jsonl, ... (default: hub)")
    ap.add_argument("--source", action="append", default=[], metavar="NAME=PATH_OR_HUB_ID",
                    help="per-set source override")
    ap.add_argument("--prompt", choices=PROMPT_STYLES, default="paper",
                    help="paper: lighteval query; none: bare problem")
    ap.add_argument("--skip-invalid", action="store_true",
                    help="write valid rows, rejects to <out>/<set>.rejects.jsonl")
    ap.add_argument("--duplicates", choices=DUPLICATE_POLICIES, default="error",
                    help="repeated problems: error (default: a row error), drop (keep the first) or keep (listed)")
    args = parse_args(ap, argv)

    overrides = {}
    for item in args.source:
        if "=" not in item:
            ap.error(f"--source expects NAME=PATH_OR_HUB_ID, got {item!r}")
        k, v = item.split("=", 1)
        try:
            overrides[parse_sets(k)[0]] = v
        except argparse.ArgumentTypeError as e:
            ap.error(f"--source {item}: {e}")
    if run(output_dir, args.out, "--out") or (args.source_dir is not None and run(_source_dir, args.source_dir)):
        return 1

    def one(name: str) -> None:
        src, split, hint = resolve_source(name, args.source_dir, overrides)
        path = prepare_eval_set(name, args.out, src, split, prompt=args.prompt, skip_invalid=args.skip_invalid,
                                duplicates=args.duplicates, hint=hint)
        print(f"{name}: {path}")

    failed = [name for name in args.sets if run(one, name)]
    if failed:
        print(f"error: {len(failed)} set(s) not written: {','.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
