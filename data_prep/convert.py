"""One streaming pass from a source to ``<out>/<name>.parquet``: read, validate, find repeats, screen, write.

Nothing is dropped silently.  An invalid row of any kind is a row error, ``FILE:row N: field 'X': problem``: it
fails the run (nothing is written), or with ``skip_invalid`` it goes to ``<name>.rejects.jsonl`` (with its
``data``, or, for a line that could not be parsed, ``data: null`` and the line itself as ``raw``).  A row whose
problem text (whitespace aside) repeats an earlier row's follows ``duplicates``:

* ``"error"``, the default for evaluation sets: a repeated item counts twice in the accuracy, so the score is no
  longer the benchmark's.  None of the five real sets has one, so a repeat means a damaged copy: a row error.
* ``"keep"``, the default for the training set: the paper trained on Open-RS as published, and a repeated
  problem is only sampled twice as often; it makes no reward wrong.  Kept, counted in a warning, listed in
  ``<name>.duplicates.jsonl``.
* ``"drop"``: only the first copy is written; the others are listed in ``<name>.duplicates.jsonl``.

Rows are written in row groups of at most :data:`CHUNK_ROWS` rows or :data:`CHUNK_CHARS` characters, so memory
stays flat whatever the input size (plus a 16-byte digest per row for the repeat check), and where a row group
ends depends only on the rows: the bytes are deterministic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from data_prep.common import PARQUET_SCHEMA, DataPrepError, RowError, build_row, problem_for
from data_prep.output import (
    CONTAMINATED_SUFFIX,
    CONTAMINATION_REPORT_SUFFIX,
    DUPLICATES_SUFFIX,
    REJECTS_SUFFIX,
    Outputs,
    output_dir,
)
from data_prep.sources import SourceRow, iter_source_rows

logger = logging.getLogger("data_prep")

DUPLICATE_POLICIES = ("error", "keep", "drop")
CHUNK_ROWS = 1024
CHUNK_CHARS = 4 << 20
MAX_LISTED_ERRORS = 20


class RowScreen(Protocol):
    """Decides, row by row, whether a valid row is written (decontamination is one)."""

    def inputs(self) -> list[tuple[str, Path]]: ...

    def open(self, outputs: Outputs, out_dir: Path, name: str) -> None: ...

    def keep(self, position: int, row: dict[str, Any]) -> bool: ...


@dataclass
class Checked:
    """A source row after validation: ``row`` (the verl row) or ``error``; ``first`` is the earlier row with the
    same problem as ``(rownum, answer)``, if any."""

    source: SourceRow
    row: dict[str, Any] | None
    error: RowError | None
    first: tuple[int, str] | None = None


@dataclass
class Summary:
    name: str
    source: str
    path: Path | None = None
    total: int = 0  # source rows, blank lines aside
    valid: int = 0
    written: int = 0
    rejected: int = 0
    duplicates: int = 0
    screened_out: int = 0


def row_message(label: str, rownum: int, error: RowError) -> str:
    """``FILE:row N: field 'X': problem``, the one form every row error takes."""
    return f"{label}:row {rownum}: field '{error.field}': {error.problem}"


def _problem_key(problem: str) -> bytes:
    return hashlib.blake2b(" ".join(problem.split()).encode("utf-8"), digest_size=16).digest()


def check_rows(
    set_name: str,
    source: str | os.PathLike,
    *,
    split_label: str,
    messages_fn: Callable[[str], list[dict[str, str]]],
    hub_split: str | None = None,
    hint: str = "--source",
) -> Iterator[Checked]:
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
        first = seen.setdefault(_problem_key(info["problem"]), (sr.rownum, info["answer"]))
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


def convert(
    set_name: str,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    split_label: str,
    messages_fn: Callable[[str], list[dict[str, str]]],
    hub_split: str | None = None,
    hint: str = "--source",
    skip_invalid: bool = False,
    duplicates: str = "error",
    screen: RowScreen | None = None,
) -> Summary:
    """Write ``<out_dir>/<set_name>.parquet`` (and its side files) or raise :class:`DataPrepError`, writing nothing."""
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates={duplicates!r}; expected one of {DUPLICATE_POLICIES}")
    out = output_dir(out_dir, "--out")
    name, label = set_name, str(source)
    s = Summary(name, label)
    rejects_path, dups_path = out / f"{name}{REJECTS_SUFFIX}", out / f"{name}{DUPLICATES_SUFFIX}"
    listed: list[str] = []
    inputs = [(hint, source)] + (screen.inputs() if screen is not None else [])
    with Outputs(inputs) as outputs:
        parquet = outputs.parquet(out / f"{name}.parquet", "--out", PARQUET_SCHEMA)
        rejects = outputs.jsonl(rejects_path, "--out")
        dups = outputs.jsonl(dups_path, "--out")
        if screen is not None:
            screen.open(outputs, out, name)
        else:  # an earlier screened run's report and list describe other data than this run writes
            outputs.remove(out / f"{name}{CONTAMINATION_REPORT_SUFFIX}", "--out")
            outputs.remove(out / f"{name}{CONTAMINATED_SUFFIX}", "--out")
        chunk: list[dict[str, Any]] = []
        chars = 0
        checked = check_rows(set_name, source, split_label=split_label, messages_fn=messages_fn, hub_split=hub_split, hint=hint)
        for c in checked:
            s.total += 1
            error = c.error
            if c.first is not None:
                s.duplicates += 1
                same = "same answer" if c.first[1] == c.row["extra_info"]["answer"] else "a different answer"
                if duplicates == "error":
                    field = problem_for(set_name, c.source.data)[1]
                    error = RowError(field, f"duplicate of row {c.first[0]} (same problem, {same})")
                else:
                    dups.write({"row": c.source.rownum, "duplicate_of": c.first[0], "same_answer": same == "same answer",
                                "action": "kept" if duplicates == "keep" else "dropped",
                                "problem": c.row["extra_info"]["problem"]})
                    if duplicates == "drop":
                        continue
            if error is not None:
                s.rejected += 1
                message = row_message(label, c.source.rownum, error)
                if skip_invalid:
                    rejects.write(_reject(c, error, message))
                if len(listed) < MAX_LISTED_ERRORS:
                    listed.append(message)
                continue
            position = s.valid
            s.valid += 1
            if screen is not None and not screen.keep(position, c.row):
                s.screened_out += 1
                continue
            if s.rejected and not skip_invalid:
                continue  # the run fails anyway: keep validating, stop writing
            chunk.append(c.row)
            chars += _chars(c.row)
            if len(chunk) >= CHUNK_ROWS or chars >= CHUNK_CHARS:
                parquet.write_rows(chunk)
                s.written += len(chunk)
                chunk, chars = [], 0
        parquet.write_rows(chunk)
        s.written += len(chunk)
        if s.rejected and not skip_invalid:
            more = f" (first {len(listed)} listed above)" if len(listed) > 1 else ""
            raise DataPrepError(
                f"{name}: {s.rejected} invalid row(s) of {s.total}{more}, nothing written: {listed[0]}; "
                f"re-run with --skip-invalid to write the valid rows and list the others in {rejects_path}",
                details=listed,
            )
        if s.written == 0:
            why = f"; the {s.screened_out} valid row(s) all overlap evaluation problems (--drop-contaminated)" if s.screened_out else ""
            why += f"; {s.rejected} invalid, the first: {listed[0]}" if s.rejected else ""
            raise DataPrepError(f"{name}: no valid rows in {label} (of {s.total}){why}")
        outputs.commit()
    s.path = out / f"{name}.parquet"
    if s.rejected:
        logger.warning("%s: skipped %d invalid row(s) of %d; reasons in %s", name, s.rejected, s.total, rejects_path)
    if s.duplicates and duplicates != "error":
        action = "dropped" if duplicates == "drop" else "kept (--duplicates drop keeps only the first)"
        logger.warning("%s: %d row(s) repeat an earlier problem: %s; listed in %s", name, s.duplicates, action, dups_path)
    logger.info("%s: wrote %d of %d rows to %s", name, s.written, s.total, s.path)
    return s
