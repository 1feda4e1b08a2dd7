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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_prep.common import PARQUET_SCHEMA, DataPrepError, RowError, build_row, problem_for
from data_prep.output import CONTAMINATED_SUFFIX, DUPLICATES_SUFFIX, REJECTS_SUFFIX, REPORT_SUFFIX, Outputs, output_dir
from data_prep.sources import SourceRow, iter_source_rows

logger = logging.getLogger("data_prep")

DUPLICATE_POLICIES = ("error", "keep", "drop")
CHUNK_ROWS = 1024
CHUNK_CHARS = 4 << 20
MAX_LISTED_ERRORS = 20


@dataclass
class Checked:
    """A source row after validation: ``row`` (the verl row) or ``error``; ``first`` is the earlier row with the
    same problem as ``(rownum, answer)``, if any."""

    source: SourceRow
    row: dict[str, Any] | None
    error: RowError | None
    first: tuple[int, str] | None = None


def row_message(label: str, rownum: int, error: RowError) -> str:
    """``FILE:row N: field 'X': problem``, the one form every row error takes."""
    return f"{label}:row {rownum}: field '{error.field}': {error.problem}"


def check_rows(set_name: str, source: str | os.PathLike, *, split_label: str,
               messages_fn: Callable[[str], list[dict[str, str]]], hub_split: str | None = None,
               hint: str = "--source") -> Iterator[Checked]:
    """Every source row, validated and built; no row's failure stops the others."""
    seen: dict[bytes, tuple[int, str]] = {}
    for sr in iter_source_rows(source, split=hub_split, hint=hint):
        if sr.error is not None:
            yield Checked(sr, None, sr.error)
            continue
        try:
            row = build_row(set_name, sr.data, sr.position, split_label, messages_fn)
        except RowError as e:
            yield Checked(sr, None, e)
            continue
        except Exception as e:  # a value no rule foresaw still fails only its own row
            yield Checked(sr, None, RowError("*", f"{type(e).__name__}: {e}"))
            continue
        info = row["extra_info"]
        key = hashlib.blake2b(" ".join(info["problem"].split()).encode("utf-8"), digest_size=16).digest()
        first = seen.setdefault(key, (sr.rownum, info["answer"]))
        yield Checked(sr, row, None, None if first[0] == sr.rownum else first)


def _jsonable(obj: Any) -> Any:
    try:
        json.dumps(obj, allow_nan=False)
        return obj
    except (TypeError, ValueError, RecursionError):
        try:
            return repr(obj)
        except RecursionError:
            return None


def _reject(c: Checked, error: RowError, message: str) -> dict[str, Any]:
    record = {"row": c.source.rownum, "field": error.field, "problem": error.problem, "message": message,
              "data": _jsonable(c.source.data)}
    if c.source.data is None and c.source.raw is not None:  # a line that could not be parsed: keep it as read
        record["raw"] = c.source.raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
    return record


def _chars(row: dict[str, Any]) -> int:
    info = row["extra_info"]
    return sum(len(m["content"]) for m in row["prompt"]) + len(row["reward_model"]["ground_truth"]) + len(info["problem"])


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
    total = valid = written = rejected = repeats = screened_out = 0
    listed: list[str] = []
    with Outputs([(hint, source)] + (screen.inputs if screen is not None else [])) as outputs:
        parquet = outputs.open(path, "--out", schema=PARQUET_SCHEMA)
        rejects = outputs.open(rejects_path, "--out", optional=True)
        dups = outputs.open(dups_path, "--out", optional=True)
        report, dropped = out / f"{name}{REPORT_SUFFIX}", out / f"{name}{CONTAMINATED_SUFFIX}"
        if screen is not None:
            screen.open(outputs, report, dropped, "--out")
        else:  # an earlier screened run's report and list describe other data than this run writes
            outputs.remove(report, "--out")
            outputs.remove(dropped, "--out")
        chunk: list[dict[str, Any]] = []
        chars = 0
        for c in check_rows(set_name, source, split_label=split_label, messages_fn=messages_fn, hub_split=hub_split,
                            hint=hint):
            total += 1
            error = c.error
            if c.first is not None:
                repeats += 1
                same = c.first[1] == c.row["extra_info"]["answer"]
                if duplicates == "error":
                    error = RowError(problem_for(set_name, c.source.data)[1], f"duplicate of row {c.first[0]} "
                                     f"(same problem, {'same answer' if same else 'a different answer'})")
                else:
                    dups.write({"row": c.source.rownum, "duplicate_of": c.first[0], "same_answer": same,
                                "action": "kept" if duplicates == "keep" else "dropped",
                                "problem": c.row["extra_info"]["problem"]})
                    if duplicates == "drop":
                        continue
            if error is not None:
                rejected += 1
                message = row_message(label, c.source.rownum, error)
                if skip_invalid:
                    rejects.write(_reject(c, error, message))
                if len(listed) < MAX_LISTED_ERRORS:
                    listed.append(message)
                continue
            valid += 1
            if screen is not None and not screen.keep(valid - 1, c.row):
                screened_out += 1
                continue
            if rejected and not skip_invalid:
                continue  # the run fails anyway: keep validating, stop writing
            chunk.append(c.row)
            chars += _chars(c.row)
            if len(chunk) >= CHUNK_ROWS or chars >= CHUNK_CHARS:
                parquet.write_rows(chunk)
                written += len(chunk)
                chunk, chars = [], 0
        parquet.write_rows(chunk)
        written += len(chunk)
        if rejected and not skip_invalid:
            more = f" (first {len(listed)} listed above)" if len(listed) > 1 else ""
            raise DataPrepError(f"{name}: {rejected} invalid row(s) of {total}{more}, nothing written: {listed[0]}; re-run "
                                f"with --skip-invalid to write the valid rows and list the others in {rejects_path}", listed)
        if written == 0:
            why = f"; the {screened_out} valid row(s) all overlap evaluation problems (--drop-contaminated)" if screened_out else ""
            why += f"; {rejected} invalid, the first: {listed[0]}" if rejected else ""
            raise DataPrepError(f"{name}: no valid rows in {label} (of {total}){why}")
        outputs.commit()
    if rejected:
        logger.warning("%s: skipped %d invalid row(s) of %d; reasons in %s", name, rejected, total, rejects_path)
    if repeats and duplicates != "error":
        action = "dropped" if duplicates == "drop" else "kept (--duplicates drop keeps only the first)"
        logger.warning("%s: %d row(s) repeat an earlier problem: %s; listed in %s", name, repeats, action, dups_path)
    logger.info("%s: wrote %d of %d rows to %s", name, written, total, path)
    return path
