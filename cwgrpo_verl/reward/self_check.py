"""Self-check: every gold answer of the five evaluation sets, boxed in a model-like response, must score 1.

Scores each row's ``extra_info.answer``, boxed, against its ``reward_model.ground_truth``, as verl will
(docs/reward.md, "Parity, measured"); prints the pass rate per set and every failure, and exits 1 if any answer
fails other than the known data defects below.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cwgrpo_verl import argtypes, data_sets

from . import compute_score, default_workers, model_like_response

#: Golds no response can match under lighteval's rules: OlympiadBench row 194's malformed "$221,$8$", from which
#: lighteval extracts only "221," (so 674/675 is the expected result there).
KNOWN_UNMATCHABLE = {("olympiadbench", "$221,$8$")}


def run(data_dir, timeout_s: float = 10.0, workers: int | None = None, every: int = 1) -> dict[str, dict[str, Any]]:
    """``{set: {"n", "passed", "failures": [(row, answer, reason, pred)], "known": [those forgiven]}}`` over every
    ``every``-th row of ``<data_dir>/<set>.parquet``; samples run concurrently on the pool."""
    import pandas as pd

    workers = workers or default_workers()

    def score(row: dict) -> dict:
        return compute_score(row["data_source"], model_like_response(row["extra_info"]["answer"]),
                             row["reward_model"]["ground_truth"], timeout_s=timeout_s, workers=workers)

    report: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for key in data_sets.evaluation_keys():
            rows = pd.read_parquet(Path(data_dir) / f"{key}.parquet").to_dict("records")
            picked = range(0, len(rows), every)
            failures = [(i, rows[i]["extra_info"]["answer"], r["reason"], r["pred"])
                        for i, r in zip(picked, ex.map(score, rows[::every])) if r["acc"] != 1.0]
            known = [f for f in failures if (key, rows[f[0]]["reward_model"]["ground_truth"]) in KNOWN_UNMATCHABLE]
            report[key] = {"n": len(picked), "passed": len(picked) - len(failures), "failures": failures,
                           "known": known}
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cwgrpo_verl.reward", description=__doc__.splitlines()[0])
    ap.add_argument("--self-check", metavar="DATA_DIR",
                    help="the folder examples/prepare_data.sh wrote (aime24.parquet, math500.parquet, ...)")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: min(4, cores))")
    ap.add_argument("--timeout", type=float, default=10.0, help="limit per sample in seconds (default 10)")
    ap.add_argument("--every", type=argtypes.integer(), default=1, help="check every N-th row only (default 1: all)")
    args = ap.parse_args(argv)
    if not args.self_check:
        ap.print_help()
        return 0
    missing = [f"{k}.parquet" for k in data_sets.evaluation_keys()
               if not (Path(args.self_check) / f"{k}.parquet").is_file()]
    if missing:
        ap.error(f"--self-check {args.self_check}: no {', '.join(missing)} (write them with examples/prepare_data.sh)")
    bad = 0
    for key, r in run(args.self_check, timeout_s=args.timeout, workers=args.workers, every=args.every).items():
        print(f"{key:14s} {r['passed']:4d}/{r['n']:4d} = {100.0 * r['passed'] / max(r['n'], 1):6.2f}%")
        for failure in r["failures"]:
            i, ans, reason, pred = failure
            note = " (a known data defect)" if failure in r["known"] else ""
            print(f"    row {i}: answer={ans!r} reason={reason} pred={pred!r}{note}")
        bad += len(r["failures"]) - len(r["known"])
    return 1 if bad else 0
