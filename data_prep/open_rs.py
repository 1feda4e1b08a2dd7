"""Build the verl training parquet from Open-RS (knoveleng/open-rs, 7000 rows).

Writes ``DIR/open_rs.parquet``: the paper's system prompt (``--no-system-prompt``: none), then the problem as the
user message; ``reward_model.ground_truth`` is the ``solution`` text (the authors' accuracy reward parses it with
math-verify, first match) and ``extra_info.answer`` its last ``\\boxed{}`` (else the ``answer`` column).  Repeated
problems are kept as published and listed in ``DIR/open_rs.duplicates.jsonl``.  ``--decontaminate-against`` checks
the problems against evaluation sets (files or folders, whose training sets are skipped) into the pair report
``DIR/open_rs.contamination.csv``; ``--drop-contaminated`` removes the rows scoring >= the threshold, listed in
``DIR/open_rs.contaminated.jsonl``; a run without them removes those files of an earlier run (they would describe
other data).  Without network, name a local copy with ``--source`` (or set ``HF_HUB_OFFLINE=1`` to use the Hugging
Face cache).
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

from cwgrpo_verl import argtypes, data_sets
from data_prep.common import parse_args, run, train_messages
from data_prep.convert import DUPLICATE_POLICIES, convert
from data_prep.decontaminate import DEFAULT_N, DEFAULT_THRESHOLD, SCORE, EvalIndex, Screen, load_eval_texts
from data_prep.output import CONTAMINATED_SUFFIX, REPORT_SUFFIX, output_dir

logger = logging.getLogger("data_prep.open_rs")

NAME = data_sets.TRAINING.key


def prepare_open_rs(out_dir: str | Path, source: str | None = None, system_prompt: bool = True,
                    skip_invalid: bool = False, decontaminate_against: list[str] | None = None,
                    drop_contaminated: bool = False, n: int = DEFAULT_N, threshold: float = DEFAULT_THRESHOLD,
                    duplicates: str = "keep") -> Path:
    out = output_dir(out_dir, "--out")
    src = source or data_sets.TRAINING.hub_id
    screen = None
    if decontaminate_against:  # before reading the source: a bad evaluation path fails first
        flag = "--decontaminate-against"
        evals = load_eval_texts(decontaminate_against, exclude=[out / f"{NAME}.parquet", src], flag=flag)
        screen = Screen(EvalIndex(evals, n), threshold, drop_contaminated, label=str(src), eval_flag=flag)
    path = convert(NAME, src, out, split_label="train", hub_split=data_sets.TRAINING.hub_split,
                   messages_fn=functools.partial(train_messages, system_prompt=system_prompt),
                   skip_invalid=skip_invalid, duplicates=duplicates, screen=screen)
    if screen is not None:
        logger.info("decontamination: %s", screen.summary())
        if screen.flagged and drop_contaminated:
            logger.warning("%s: dropped %d contaminated row(s) (score >= %.2f); listed in %s",
                           NAME, screen.dropped, threshold, out / f"{NAME}{CONTAMINATED_SUFFIX}")
        elif screen.flagged:
            logger.warning("%s: %d row(s) overlap evaluation problems (score >= %.2f); kept (use "
                           "--drop-contaminated); see %s", NAME, screen.flagged, threshold,
                           out / f"{NAME}{REPORT_SUFFIX}")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_prep.open_rs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (writes open_rs.parquet)")
    ap.add_argument("--source", default=None, help="hub id or local jsonl/parquet/save_to_disk folder (default "
                    f"{data_sets.TRAINING.hub_id})")
    ap.add_argument("--no-system-prompt", action="store_true", help="user message only, no system prompt")
    ap.add_argument("--skip-invalid", action="store_true",
                    help="write valid rows, rejects to <out>/open_rs.rejects.jsonl")
    ap.add_argument("--duplicates", choices=DUPLICATE_POLICIES, default="keep",
                    help="repeated problems: keep (default, as published; listed), drop (keep the first) or error")
    ap.add_argument("--decontaminate-against", nargs="+", default=None, metavar="PARQUET_OR_DIR")
    ap.add_argument("--drop-contaminated", action="store_true")
    ap.add_argument("--decontam-n", type=argtypes.integer(), default=DEFAULT_N, help="word n-gram size (default 13)")
    ap.add_argument("--decontam-threshold", type=SCORE, default=DEFAULT_THRESHOLD, help="score >= this is contaminated")
    args = parse_args(ap, argv)
    if args.drop_contaminated and not args.decontaminate_against:
        ap.error("--drop-contaminated needs --decontaminate-against")
    return run(lambda: print(f"{NAME}:", prepare_open_rs(
        args.out, args.source, not args.no_system_prompt, args.skip_invalid, args.decontaminate_against,
        args.drop_contaminated, args.decontam_n, args.decontam_threshold, args.duplicates)))


if __name__ == "__main__":
    sys.exit(main())
