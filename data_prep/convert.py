"""One streaming pass from a source to ``<out>/<name>.parquet``: read, validate, find repeats, screen, write.

Nothing is dropped silently.  An invalid row is a row error, ``FILE:row N: field 'X': problem``: it fails the run
(nothing is written), or with ``skip_invalid`` goes to ``<name>.rejects.jsonl`` (with its ``data``, or ``data: null``
and the line as ``raw`` for a line that could not be parsed).  A row whose problem (whitespace aside) repeats an
earlier row's follows ``duplicates``: ``"error"`` (the evaluation sets' default: a repeated item would count twice in
the accuracy, and none of the five real sets has one) makes it a row error; ``"keep"`` (the training set's default:
the paper trained on Open-RS as published) and ``"drop"`` (only the first copy is written) list it in
``<name>.duplicates.jsonl``.  Row groups end every :data:`CHUNK_ROWS` rows or :data:`CHUNK_CHARS` characters, so
memory stays flat (plus a 16-byte digest per row) and the bytes depend only on the rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from data_prep.common import PARQUET_SCHEMA, DataPrepError, RowError, build_row, problem_for
from data_prep.decontaminate import REPORT_HEADER
from data_prep.output import CONTAMINATED_SUFFIX, DUPLICATES_SUFFIX, REJECTS_SUFFIX, REPORT_SUFFIX, Outputs, output_dir
from data_prep.sources import SourceRow, iter_source_rows

logger = logging.getLogger("data_prep")

DUPLICATE_POLICIES = ("error", "keep", "drop")
CHUNK_ROWS = 1024
CHUNK_CHARS = 4 << 20
MAX_LISTED_ERRORS = 20


def row_message(label: str, rownum: int, error: RowError) -> str:
    """``FILE:row N: field 'X': problem``, the one form every row error takes."""
    return f"{label}:row {rownum}: field '{error.field}': {error.problem}"


def check_rows(set_name: str, source: str | os.PathLike, *, split_label: str,
               messages_fn: Callable[[str], list[dict[str, str]]], hub_split: str | None = None,
               hint: str = "--source") -> Iterator[SourceRow]:
    """Every source row with its verl ``row`` or its ``error``, and ``first`` if an earlier row has the same
    problem; no row's failure stops the others."""
    seen: dict[bytes, tuple[int, str]] = {}
    for sr in iter_source_rows(source, split=hub_split, hint=hint):
        try:
            if sr.error is None:
                sr.row = build_row(set_name, sr.data, sr.position, split_label, messages_fn)
        except RowError as e:
            sr.error = e
        except Exception as e:  # a value no rule foresaw still fails only its own row
            sr.error = RowError("*", f"{type(e).__name__}: {e}")
        if sr.row is not None:
            info = sr.row["extra_info"]
            key = hashlib.blake2b(" ".join(info["problem"].split()).encode("utf-8"), digest_size=16).digest()
            first = seen.setdefault(key, (sr.rownum, info["answer"]))
            sr.first = None if first[0] == sr.rownum else first
        yield sr


def _reject(sr: SourceRow, error: RowError, message: str) -> dict[str, Any]:
    data = sr.data
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError, RecursionError):  # what JSON cannot hold is kept as its repr
        try:
            data = repr(data)
        except RecursionError:
            data = None
    record = {"row": sr.rownum, "field": error.field, "problem": error.problem, "message": message, "data": data}
    if sr.data is None and sr.raw is not None:  # a line that could not be parsed: keep it as read
        record["raw"] = sr.raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
    return record


def convert(set_name: str, source: str | os.PathLike, out_dir: str | os.PathLike, *, split_label: str,
            messages_fn: Callable[[str], list[dict[str, str]]], hub_split: str | None = None, hint: str = "--source",
            skip_invalid: bool = False, duplicates: str = "error", screen: Any = None) -> Path:
    """Write ``<out_dir>/<set_name>.parquet`` (and its side files) or raise :class:`DataPrepError`, writing nothing.

    ``screen`` (a :class:`data_prep.decontaminate.Screen`) decides, valid row by valid row, which are written."""
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates={duplicates!r}; expected one of {DUPLICATE_POLICIES}")
    out = output_dir(out_dir, "--out")
    name, label, path = set_name, str(source), out / f"{set_name}.parquet"
    rejects_path, dups_path = out / f"{name}{REJECTS_SUFFIX}", out / f"{name}{DUPLICATES_SUFFIX}"
    total = valid = rejected = repeats = screened_out = chars = 0
    listed: list[str] = []
    chunk: list[dict[str, Any]] = []
    with Outputs([(hint, source)] + (screen.inputs if screen is not None else [])) as outputs:
        parquet = outputs.open(path, "--out")
        rejects = outputs.open(rejects_path, "--out", optional=True)
        dups = outputs.open(dups_path, "--out", optional=True)
        # unscreened, these stay empty: an earlier screened run's report and list would describe other data
        report = outputs.open(out / f"{name}{REPORT_SUFFIX}", "--out", optional=True,
                              header=None if screen is None else REPORT_HEADER)
        dropped = outputs.open(out / f"{name}{CONTAMINATED_SUFFIX}", "--out", optional=True)
        if screen is not None:
            screen.report_rows, screen.dropped_rows = report, dropped
        for sr in check_rows(set_name, source, split_label=split_label, messages_fn=messages_fn, hub_split=hub_split,
                             hint=hint):
            total += 1
            error = sr.error
            if sr.first is not None:
                repeats += 1
                same = sr.first[1] == sr.row["extra_info"]["answer"]
                if duplicates == "error":
                    error = RowError(problem_for(set_name, sr.data)[1], f"duplicate of row {sr.first[0]} "
                                     f"(same problem, {'same answer' if same else 'a different answer'})")
                else:
                    dups.write({"row": sr.rownum, "duplicate_of": sr.first[0], "same_answer": same,
                                "action": "kept" if duplicates == "keep" else "dropped",
                                "problem": sr.row["extra_info"]["problem"]})
                    if duplicates == "drop":
                        continue
            if error is not None:
                rejected += 1
                message = row_message(label, sr.rownum, error)
                if skip_invalid:
                    rejects.write(_reject(sr, error, message))
                if len(listed) < MAX_LISTED_ERRORS:
                    listed.append(message)
                continue
            valid += 1
            if screen is not None and not screen.keep(sr.row):
                screened_out += 1
                continue
            if rejected and not skip_invalid:
                continue  # the run fails anyway: keep validating, stop writing
            chunk.append(sr.row)
            texts = [*(m["content"] for m in sr.row["prompt"]), sr.row["reward_model"]["ground_truth"],
                     sr.row["extra_info"]["problem"]]
            chars += sum(map(len, texts))
            if len(chunk) >= CHUNK_ROWS or chars >= CHUNK_CHARS:
                parquet.write_table(pa.Table.from_pylist(chunk, schema=PARQUET_SCHEMA))
                chunk, chars = [], 0
        parquet.write_table(pa.Table.from_pylist(chunk, schema=PARQUET_SCHEMA))
        if rejected and not skip_invalid:
            more = f" (first {len(listed)} listed above)" if len(listed) > 1 else ""
            raise DataPrepError(f"{name}: {rejected} invalid row(s) of {total}{more}, nothing written: {listed[0]}; "
                                f"re-run with --skip-invalid to write the valid rows and list the others in "
                                f"{rejects_path}", listed)
        if valid == screened_out:
            why = ""
            if screened_out:
                why = f"; the {screened_out} valid row(s) all overlap evaluation problems (--drop-contaminated)"
            why += f"; {rejected} invalid, the first: {listed[0]}" if rejected else ""
            raise DataPrepError(f"{name}: no valid rows in {label} (of {total}){why}")
        outputs.commit()
    if rejected:
        logger.warning("%s: skipped %d invalid row(s) of %d; reasons in %s", name, rejected, total, rejects_path)
    if repeats and duplicates != "error":
        action = "dropped" if duplicates == "drop" else "kept (--duplicates drop keeps only the first)"
        logger.warning("%s: %d row(s) repeat an earlier problem: %s; listed in %s", name, repeats, action, dups_path)
    logger.info("%s: wrote %d of %d rows to %s", name, valid - screened_out, total, path)
    return path
