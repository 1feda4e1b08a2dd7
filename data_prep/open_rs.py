"""Build the verl training parquet from Open-RS (knoveleng/open-rs, 7000 rows).

    python -m data_prep.open_rs --out DIR [--source HUB_ID_OR_LOCAL_PATH] [--no-system-prompt] [--skip-invalid]
                                [--decontaminate-against PARQUET_OR_DIR ... [--drop-contaminated]
                                 [--decontam-n 13] [--decontam-threshold 0.5]]

Writes ``DIR/open_rs.parquet``.  Prompt: the paper's system prompt, then the problem as the user
message (``--no-system-prompt``: user message only).  ``reward_model.ground_truth`` is the ``solution``
text (the authors' accuracy reward parses it with math-verify, first match); ``extra_info.answer`` holds
its last ``\\boxed{}`` (else the ``answer`` column).

With ``--decontaminate-against`` the problems are checked against evaluation sets (data_prep
parquet output or raw jsonl, files or folders): the pair report goes to
``DIR/open_rs.contamination.csv``; with ``--drop-contaminated`` rows scoring >= the threshold are
removed and listed in ``DIR/open_rs.contaminated.jsonl``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

from data_prep.common import (
    HUB_SOURCES,
    DataPrepError,
    convert,
    finish_conversion,
    setup_logging,
    train_messages,
    write_jsonl_atomic,
)
from data_prep.decontaminate import DEFAULT_N, DEFAULT_THRESHOLD, decontaminate_rows, dropped_records, write_report

logger = logging.getLogger("data_prep.open_rs")

NAME = "open_rs"


def prepare_open_rs(
    out_dir: str | Path,
    source: str | None = None,
    system_prompt: bool = True,
    skip_invalid: bool = False,
    decontaminate_against: list[str] | None = None,
    drop_contaminated: bool = False,
    n: int = DEFAULT_N,
    threshold: float = DEFAULT_THRESHOLD,
) -> Path:
    out_dir = Path(out_dir)
    hub_id, hub_split = HUB_SOURCES[NAME]
    src = source or hub_id
    split = None if Path(src).exists() else hub_split
    res = convert(
        NAME, src, split_label="train", messages_fn=functools.partial(train_messages, system_prompt=system_prompt), hub_split=split
    )
    if decontaminate_against:
        # validate first (raises without --skip-invalid), then check the valid rows
        if res.rejects and not skip_invalid:
            finish_conversion(NAME, res, out_dir, skip_invalid)
        overlaps, bad = decontaminate_rows(res.rows, decontaminate_against, n=n, threshold=threshold, source_label=str(src))
        out_dir.mkdir(parents=True, exist_ok=True)
        write_report(out_dir / f"{NAME}.contamination.csv", overlaps, threshold)
        contaminated_path = out_dir / f"{NAME}.contaminated.jsonl"
        if drop_contaminated:
            write_jsonl_atomic(contaminated_path, dropped_records(res.rows, bad))
            res.rows = [r for i, r in enumerate(res.rows) if i not in bad]
            logger.warning("%s: dropped %d contaminated row(s) (score >= %.2f); listed in %s", NAME, len(bad), threshold, contaminated_path)
        else:
            if contaminated_path.exists():
                contaminated_path.unlink()
            if bad:
                logger.warning(
                    "%s: %d row(s) overlap evaluation problems (score >= %.2f); kept (use --drop-contaminated); see %s",
                    NAME,
                    len(bad),
                    threshold,
                    out_dir / f"{NAME}.contamination.csv",
                )
    return finish_conversion(NAME, res, out_dir, skip_invalid)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_prep.open_rs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (writes open_rs.parquet)")
    ap.add_argument("--source", default=None, help=f"hub id or local jsonl/parquet/save_to_disk folder (default {HUB_SOURCES[NAME][0]})")
    ap.add_argument("--no-system-prompt", action="store_true", help="user message only, no system prompt")
    ap.add_argument("--skip-invalid", action="store_true", help="write valid rows, rejects to <out>/open_rs.rejects.jsonl")
    ap.add_argument("--decontaminate-against", nargs="+", default=None, metavar="PARQUET_OR_DIR")
    ap.add_argument("--drop-contaminated", action="store_true")
    ap.add_argument("--decontam-n", type=int, default=DEFAULT_N)
    ap.add_argument("--decontam-threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    if args.drop_contaminated and not args.decontaminate_against:
        ap.error("--drop-contaminated needs --decontaminate-against")
    try:
        path = prepare_open_rs(
            args.out,
            source=args.source,
            system_prompt=not args.no_system_prompt,
            skip_invalid=args.skip_invalid,
            decontaminate_against=args.decontaminate_against,
            drop_contaminated=args.drop_contaminated,
            n=args.decontam_n,
            threshold=args.decontam_threshold,
        )
    except (DataPrepError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{NAME}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
