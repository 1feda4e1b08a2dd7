"""Build verl parquet files for the paper's five evaluation sets.

    python -m data_prep.eval_sets --out DIR [--sets aime24,math500,amc23,minerva,olympiadbench]
                                  [--source-dir DIR] [--source NAME=PATH_OR_HUB_ID ...]
                                  [--prompt paper|none] [--skip-invalid]

Default sources are the Hugging Face hub datasets the paper's lighteval tasks used
(see ``common.HUB_SOURCES``).  ``--source-dir`` points at a folder holding ``aime24``, ``math500``,
``amc23``, ``minerva_math`` and ``olympiadbench`` as ``.jsonl``/``.json``/``.parquet`` files or
``save_to_disk`` folders (the layout of shared/data).  Writes ``DIR/<set>.parquet`` for each set
(set names: aime24, math500, amc23, minerva, olympiadbench).
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

from data_prep.common import (
    EVAL_SETS,
    HUB_SOURCES,
    LOCAL_FILE_STEMS,
    PROMPT_STYLES,
    DataPrepError,
    convert,
    eval_messages,
    finish_conversion,
    setup_logging,
)

logger = logging.getLogger("data_prep.eval_sets")

_SUFFIXES = (".jsonl", ".json", ".parquet", "")


def resolve_source(set_name: str, source_dir: str | Path | None, overrides: dict[str, str]) -> tuple[str, str | None]:
    """(source, hub split or None for local files)."""
    if set_name in overrides:
        src = overrides[set_name]
        return src, (None if Path(src).exists() else HUB_SOURCES[set_name][1])
    if source_dir is not None:
        d = Path(source_dir)
        for stem in dict.fromkeys((LOCAL_FILE_STEMS[set_name], set_name)):
            for suf in _SUFFIXES:
                p = d / f"{stem}{suf}"
                if p.exists():
                    return str(p), HUB_SOURCES[set_name][1]
        raise FileNotFoundError(
            f"{set_name}: none of {LOCAL_FILE_STEMS[set_name]}.jsonl/.json/.parquet (or a save_to_disk folder) in {d}"
        )
    return HUB_SOURCES[set_name]


def prepare_eval_set(
    set_name: str,
    out_dir: str | Path,
    source: str,
    hub_split: str | None = None,
    prompt: str = "paper",
    skip_invalid: bool = False,
) -> Path:
    res = convert(
        set_name,
        source,
        split_label="test",
        messages_fn=functools.partial(eval_messages, style=prompt),
        hub_split=hub_split,
    )
    return finish_conversion(set_name, res, Path(out_dir), skip_invalid)


def parse_sets(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    aliases = {"minerva_math": "minerva", "math_500": "math500", "aime": "aime24", "amc": "amc23"}
    names = [aliases.get(n, n) for n in names]
    bad = [n for n in names if n not in EVAL_SETS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown set(s) {bad}; choose from {','.join(EVAL_SETS)}")
    return list(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_prep.eval_sets", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--sets", type=parse_sets, default=list(EVAL_SETS), help="comma-separated (default: all five)")
    ap.add_argument("--source-dir", default=None, help="folder with aime24.jsonl, math500.jsonl, ... (default: hub)")
    ap.add_argument(
        "--source", action="append", default=[], metavar="NAME=PATH_OR_HUB_ID", help="per-set source override"
    )
    ap.add_argument("--prompt", choices=PROMPT_STYLES, default="paper", help="paper: lighteval query; none: bare problem")
    ap.add_argument("--skip-invalid", action="store_true", help="write valid rows, rejects to <out>/<set>.rejects.jsonl")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)

    overrides = {}
    for item in args.source:
        if "=" not in item:
            ap.error(f"--source expects NAME=PATH_OR_HUB_ID, got {item!r}")
        k, v = item.split("=", 1)
        overrides[parse_sets(k)[0]] = v

    failed = []
    for name in args.sets:
        try:
            src, split = resolve_source(name, args.source_dir, overrides)
            path = prepare_eval_set(name, args.out, src, split, prompt=args.prompt, skip_invalid=args.skip_invalid)
            print(f"{name}: {path}")
        except (DataPrepError, FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            failed.append(name)
    if failed:
        print(f"error: {len(failed)} set(s) not written: {','.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
