"""Source rows, one at a time, from a local jsonl/json/parquet file, a ``save_to_disk`` folder or a hub dataset id.

Rows stream (a JSON list file is held whole as text and decoded element by element), so memory does not grow with
the file.  Anything wrong with one row is that row's :class:`RowError` (blank jsonl lines are skipped); a failure of
the whole source is one :class:`DataPrepError` naming the file and the flag that chose it.  A hub dataset fails in
seconds when the hub cannot be reached (``datasets`` would retry for half a minute): one ``HEAD`` request first,
waiting ``HF_HUB_ETAG_TIMEOUT`` seconds (default 5); with ``HF_HUB_OFFLINE=1`` (or ``HF_DATASETS_OFFLINE=1``) nothing
is requested and ``datasets`` reads its cache.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_prep.common import DataPrepError, RowError

_BOM = b"\xef\xbb\xbf"
_JSON_WS = re.compile(r"[ \t\n\r]*")


@dataclass
class SourceRow:
    """One source row on its way through a run: ``data`` as read, else the ``error`` that stopped it; ``rownum``
    (1-based, in messages) is a jsonl file's line, ``position`` (0-based, blank lines aside) ``extra_info.index``;
    ``raw`` the jsonl line, or the JSON text of an array element that is not an object.  :func:`check_rows
    <data_prep.convert.check_rows>` adds the verl ``row`` and ``first``, an earlier row with the same problem."""

    rownum: int
    position: int
    data: dict[str, Any] | None
    error: RowError | None = None
    raw: bytes | None = None
    row: dict[str, Any] | None = None
    first: tuple[int, str] | None = None


def _source_row(rownum: int, position: int, obj: Any, raw: bytes | None = None) -> SourceRow:
    if isinstance(obj, RowError):
        return SourceRow(rownum, position, None, obj, raw)
    if isinstance(obj, Mapping):
        return SourceRow(rownum, position, dict(obj), raw=raw)
    raw = raw or json.dumps(obj, ensure_ascii=False).encode("utf-8", "backslashreplace")
    return SourceRow(rownum, position, None, RowError("*", f"row is not an object (got {type(obj).__name__})"), raw)


def _iter_jsonl(path: Path) -> Iterator[SourceRow]:
    with path.open("rb") as f:
        lines = ((rownum, line) for rownum, line in enumerate(f, 1) if line.strip())
        for position, (rownum, line) in enumerate(lines):
            text = (line.removeprefix(_BOM) if rownum == 1 else line).rstrip(b"\r\n")
            try:
                obj = json.loads(text.decode("utf-8"))
            except UnicodeDecodeError as e:
                obj = RowError("*", f"invalid UTF-8 (byte 0x{text[e.start]:02x} at byte {e.start + 1} of the line)")
            except json.JSONDecodeError as e:
                obj = RowError("*", f"invalid JSON ({e.msg} at column {e.colno})")
            except RecursionError:
                obj = RowError("*", "invalid JSON (nested too deeply to parse)")
            except ValueError as e:  # e.g. an integer longer than Python converts (sys.get_int_max_str_digits)
                obj = RowError("*", f"invalid JSON ({str(e).splitlines()[0]})")
            yield _source_row(rownum, position, obj, line)


def _numbered(rows: Iterable[Any]) -> Iterator[SourceRow]:
    return (_source_row(i + 1, i, r) for i, r in enumerate(rows))


def _json_error(path: Path, text: str, pos: int, what: str) -> DataPrepError:
    line = text.count("\n", 0, pos) + 1
    return DataPrepError(f"{path}: invalid JSON at line {line} column {pos - text.rfind(chr(10), 0, pos)}: {what}")


def _json_array(path: Path) -> Iterator[Any]:
    """The elements of a JSON list, decoded one at a time from the file's text (held whole)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataPrepError(f"{path}: invalid UTF-8 at byte {e.start + 1} (a JSON array file is read whole)") from None
    pos = _JSON_WS.match(text).end()
    if not text.startswith("[", pos):  # a .json file starting with "{" is read as JSON lines
        raise DataPrepError(f"{path}: expected a JSON list of objects or JSON lines")
    decoder = json.JSONDecoder()
    pos = _JSON_WS.match(text, pos + 1).end()
    sep = "]" if text.startswith("]", pos) else ","
    while sep == ",":
        try:
            element, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise _json_error(path, text, e.pos, e.msg) from None
        except (RecursionError, ValueError) as e:  # too deep, an integer too long: the element cannot be skipped
            reason = f"{type(e).__name__}: {str(e).splitlines()[0]}"
            raise _json_error(path, text, pos, f"cannot decode this element ({reason})") from None
        yield element
        pos = _JSON_WS.match(text, pos).end()
        sep = text[pos:pos + 1]
        if sep not in (",", "]"):
            raise _json_error(path, text, pos, "expected ',' or ']' after an element")
        if sep == ",":
            pos = _JSON_WS.match(text, pos + 1).end()
    if _JSON_WS.match(text, pos + 1).end() != len(text):  # pos: the closing "]"
        raise _json_error(path, text, pos + 1, "extra data after the list")


def parquet_file(path: Path, flag: str = "") -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        where = f"{flag} {path}" if flag else str(path)
        raise DataPrepError(f"{where}: not a readable parquet file ({str(e).splitlines()[0]})") from None


def _saved_rows(path: Path, split: str | None, hint: str) -> Any:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises several types for a folder that is not a saved dataset
        raise DataPrepError(f"{hint} {path}: not a jsonl/json/parquet file or save_to_disk folder ({e})") from None
    if not isinstance(ds, datasets.DatasetDict):
        return ds
    if split not in ds and len(ds) != 1:
        raise DataPrepError(f"{hint} {path}: splits {list(ds)}; expected {split!r} or a single split")
    return ds[split] if split in ds else next(iter(ds.values()))


def _unreachable(url: str, timeout: float) -> str | None:
    """Why ``url`` got no HTTP answer within ``timeout`` seconds, or None if it got one (of any status)."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "cwgrpo-verl-data-prep"})
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError:
        return None
    except OSError as e:
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        if isinstance(reason, ssl.SSLError):  # the network is there: datasets reports certificates better
            return None
        if isinstance(reason, TimeoutError):
            return f"no answer within {timeout:g} s"
        return getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return None


def _hub_rows(repo_id: str, split: str, hint: str) -> Any:
    advice = f"pass {hint} with a local copy (jsonl, parquet or a save_to_disk folder)"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    offline = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    if any(os.environ.get(v, "").upper() in {"1", "ON", "YES", "TRUE"} for v in offline):
        where = "the Hugging Face cache (HF_HUB_OFFLINE=1)"
    else:
        where = f"the Hugging Face hub at {endpoint}"
        try:
            timeout = float(os.environ["HF_HUB_ETAG_TIMEOUT"])
        except (KeyError, ValueError):
            timeout = 5.0
        reason = _unreachable(f"{endpoint}/api/datasets/{repo_id}", timeout)
        if reason is not None:
            raise DataPrepError(f"{repo_id}: cannot reach {where} ({reason}); {advice}, "
                                "or set HF_HUB_OFFLINE=1 to use a copy in the Hugging Face cache")
    import datasets

    try:
        return datasets.load_dataset(repo_id, split=split)
    except Exception as e:  # network, auth, missing split, cache miss: all end here as one line
        first = (str(e).strip().splitlines() or [""])[0]
        raise DataPrepError(f"{repo_id}: cannot load split {split!r} from {where} ({type(e).__name__}: {first}); "
                            f"{advice}") from None


def iter_source_rows(source: str | os.PathLike, split: str | None = None,
                     hint: str = "--source") -> Iterator[SourceRow]:
    """Rows of ``source`` in order.  ``split`` picks a hub/DatasetDict split; ``hint`` is the flag that named
    the source (messages tell the user which flag to change)."""
    p, s = Path(source), str(source)
    suffix = p.suffix.lower()
    local = True  # False: a hub id
    try:  # inside: is_file() itself raises for a name too long or a folder that cannot be searched
        if p.is_dir():
            yield from _numbered(_saved_rows(p, split, hint))
        elif not p.is_file():
            local = False  # a hub id, below
        elif suffix in (".jsonl", ".ndjson") or (suffix == ".json" and _looks_like_jsonl(p)):
            yield from _iter_jsonl(p)
        elif suffix == ".json":
            yield from _numbered(_json_array(p))
        elif suffix == ".parquet":
            yield from _numbered(r for b in parquet_file(p).iter_batches(batch_size=256) for r in b.to_pylist())
        else:
            raise DataPrepError(f"{hint} {p}: unsupported file type {suffix!r} (use .jsonl, .json, .parquet or a "
                                "save_to_disk folder)")
    except OSError as e:  # pyarrow reports a corrupt file as an OSError without strerror
        reason = e.strerror or (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataPrepError(f"{hint} {p}: cannot read ({reason})") from None
    if local:
        return
    path_like = s.startswith((".", "/", "~")) or s.endswith((".jsonl", ".json", ".parquet"))
    if path_like or s.count("/") > 1 or not s.strip():
        raise DataPrepError(f"{hint} {s}: no such file or folder (and not a hub dataset id such as owner/name)")
    yield from _numbered(_hub_rows(s, split or "train", hint))


def _looks_like_jsonl(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4096).lstrip(_BOM).lstrip()[:1] == b"{"
