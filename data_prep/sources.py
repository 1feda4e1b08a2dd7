"""Source rows, one at a time: a local jsonl/json/parquet file, a ``save_to_disk`` folder or a hub dataset id.

Rows stream (jsonl line by line, parquet batch by batch, datasets memory-mapped), so memory does not grow with
the file.  Anything wrong with one jsonl line -- invalid UTF-8, invalid JSON, nesting too deep for the parser,
an integer too long to convert, not an object -- becomes that row's :class:`~data_prep.common.RowError`; blank
lines are skipped.  A JSON array file is decoded one element at a time from its text (the text is held whole):
a syntax error there is a file error.
Failures that concern the whole source raise :class:`~data_prep.common.DataPrepError` naming the file and the
flag that chose it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_prep import hub
from data_prep.common import DataPrepError, RowError

_BOM = b"\xef\xbb\xbf"
PARQUET_BATCH_ROWS = 256


@dataclass
class SourceRow:
    """One source row, or the reason it could not be read.

    ``rownum`` is 1-based and is what messages show: the line of a jsonl file, else the row.  ``position`` is
    the 0-based position among the source's rows (blank lines do not count): it becomes ``extra_info.index``.
    ``raw`` is the jsonl line as read (for tools that copy rows through unchanged), or the JSON text of an array
    element that is not an object.
    """

    rownum: int
    position: int
    data: dict[str, Any] | None
    error: RowError | None = None
    raw: bytes | None = None


def _parse_line(line: bytes, first: bool) -> tuple[dict[str, Any] | None, RowError | None]:
    if first and line.startswith(_BOM):
        line = line[len(_BOM) :]
    line = line.rstrip(b"\r\n")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, RowError("*", f"invalid UTF-8 (byte 0x{line[e.start]:02x} at byte {e.start + 1} of the line)")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, RowError("*", f"invalid JSON ({e.msg} at column {e.colno})")
    except RecursionError:
        return None, RowError("*", "invalid JSON (nested too deeply to parse)")
    except ValueError as e:  # e.g. an integer longer than Python converts (sys.get_int_max_str_digits)
        return None, RowError("*", f"invalid JSON ({str(e).splitlines()[0]})")
    if not isinstance(obj, dict):
        return None, RowError("*", f"row is not an object (got {type(obj).__name__})")
    return obj, None


def iter_jsonl(path: Path) -> Iterator[SourceRow]:
    position = 0
    with path.open("rb") as f:
        for rownum, line in enumerate(f, 1):
            if not line.strip():
                continue
            data, error = _parse_line(line, rownum == 1)
            yield SourceRow(rownum, position, data, error, raw=line)
            position += 1


_JSON_WS = re.compile(r"[ \t\n\r]*")


def _iter_json_array(path: Path, split: str | None) -> Iterator[SourceRow]:
    """A JSON list of objects, decoded one element at a time from the text (the parsed rows are never all in
    memory); a list wrapped in an object (``{"data": [...]}``) is parsed whole."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataPrepError(f"{path}: invalid UTF-8 at byte {e.start + 1} (a JSON array file is read whole)") from None
    pos = _JSON_WS.match(text).end()
    if text.startswith("[", pos):
        rows = _json_array_elements(path, text, pos + 1)
    else:
        rows = _json_wrapped_rows(path, text, split)
    for i, r in enumerate(rows):
        if isinstance(r, dict):
            yield SourceRow(i + 1, i, r)
        else:
            raw = json.dumps(r, ensure_ascii=False).encode("utf-8", "backslashreplace")
            yield SourceRow(i + 1, i, None, RowError("*", f"row is not an object (got {type(r).__name__})"), raw=raw)


def _json_error(path: Path, text: str, pos: int, what: str) -> DataPrepError:
    line = text.count("\n", 0, pos) + 1
    return DataPrepError(f"{path}: invalid JSON at line {line} column {pos - text.rfind(chr(10), 0, pos)}: {what}")


def _json_array_elements(path: Path, text: str, pos: int) -> Iterator[Any]:
    decoder = json.JSONDecoder()
    pos = _JSON_WS.match(text, pos).end()
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            try:
                element, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                raise _json_error(path, text, e.pos, e.msg) from None
            except (RecursionError, ValueError) as e:  # too deep, an integer too long: the element cannot be skipped
                reason = f"{type(e).__name__}: {str(e).splitlines()[0]}"
                raise _json_error(path, text, pos, f"cannot decode this element ({reason})") from None
            yield element
            pos = _JSON_WS.match(text, pos).end()
            if text.startswith(",", pos):
                pos = _JSON_WS.match(text, pos + 1).end()
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                raise _json_error(path, text, pos, "expected ',' or ']' after an element")
    if _JSON_WS.match(text, pos).end() != len(text):
        raise _json_error(path, text, pos, "extra data after the list")


def _json_wrapped_rows(path: Path, text: str, split: str | None) -> list:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataPrepError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except (RecursionError, ValueError) as e:
        raise DataPrepError(f"{path}: invalid JSON ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if isinstance(obj, dict):  # {"data": [...]}; column-oriented files are not supported
        for key in ("data", "rows", split or "train"):
            if isinstance(obj.get(key), list):
                return obj[key]
    raise DataPrepError(f"{path}: expected a JSON list of objects or JSON lines")


def _iter_parquet(path: Path) -> Iterator[SourceRow]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise DataPrepError(f"{path}: not a readable parquet file ({str(e).splitlines()[0]})") from None
    i = 0
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for r in batch.to_pylist():
            yield SourceRow(i + 1, i, r)
            i += 1


def _iter_saved(path: Path, split: str | None, hint: str) -> Iterator[SourceRow]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises several types for a folder that is not a saved dataset
        raise DataPrepError(f"{hint} {path}: not a jsonl/json/parquet file or save_to_disk folder ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if split in ds:
            ds = ds[split]
        elif len(ds) == 1:
            ds = next(iter(ds.values()))
        else:
            raise DataPrepError(f"{hint} {path}: splits {list(ds)}; expected {split!r} or a single split")
    for i, r in enumerate(ds):
        yield SourceRow(i + 1, i, dict(r))


def looks_like_jsonl(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(4096).lstrip(_BOM).lstrip()
    return head[:1] == b"{"


def iter_source_rows(source: str | os.PathLike, split: str | None = None, hint: str = "--source") -> Iterator[SourceRow]:
    """Rows of ``source`` in order.  ``split`` picks a hub/DatasetDict split; ``hint`` is the flag that named
    the source (messages tell the user which flag to change)."""
    p = Path(source)
    try:
        if p.is_file():
            suffix = p.suffix.lower()
            if suffix in (".jsonl", ".ndjson") or (suffix == ".json" and looks_like_jsonl(p)):
                yield from iter_jsonl(p)
            elif suffix == ".json":
                yield from _iter_json_array(p, split)
            elif suffix == ".parquet":
                yield from _iter_parquet(p)
            else:
                raise DataPrepError(f"{hint} {p}: unsupported file type {suffix!r} (use .jsonl, .json, .parquet or a save_to_disk folder)")
            return
        if p.is_dir():
            yield from _iter_saved(p, split, hint)
            return
    except OSError as e:  # pyarrow reports a corrupt file as an OSError without strerror
        reason = e.strerror or (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataPrepError(f"{hint} {p}: cannot read ({reason})") from None
    s = str(source)
    if s.startswith((".", "/", "~")) or s.endswith((".jsonl", ".json", ".parquet")) or s.count("/") > 1 or not s.strip():
        raise DataPrepError(f"{hint} {s}: no such file or folder (and not a hub dataset id such as owner/name)")
    for i, r in enumerate(hub.load_rows(s, split or "train", hint)):
        yield SourceRow(i + 1, i, dict(r))
