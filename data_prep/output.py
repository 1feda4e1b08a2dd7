"""Output files written all-or-nothing: a temporary file beside each target, moved into place on commit.

A run opens every file it will write in one :class:`Outputs` and streams rows into them; no target changes until
:meth:`Outputs.commit`, so a run that fails (bad rows, a full disk, Ctrl-C) leaves the previous outputs as they
were.  Every target is checked, when it is opened, against the run's inputs and its other targets: a target that is
the same file as one of them is a one-line error naming both, so no run writes over what it reads.  Temporary
files are named ``.<target>.<host>-<pid>-<random>.tmp``.  A process killed outright cannot remove its own, so
every run first removes the stale ones of the targets it writes: those of a process on this host that no longer
exists, and any older than :data:`STALE_AFTER_S` (another host, or an older naming).

Bytes are deterministic: parquet row groups are cut by :mod:`data_prep.convert` at positions that depend only
on the rows; compression and options are fixed; no pandas metadata.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_prep.common import DataPrepError

logger = logging.getLogger("data_prep")

#: side files written next to ``<name>.parquet``; never read back as evaluation data
REJECTS_SUFFIX = ".rejects.jsonl"
DUPLICATES_SUFFIX = ".duplicates.jsonl"
CONTAMINATED_SUFFIX = ".contaminated.jsonl"
SIDE_FILE_SUFFIXES = (REJECTS_SUFFIX, DUPLICATES_SUFFIX, CONTAMINATED_SUFFIX)
#: the decontamination report written next to ``<name>.parquet``
CONTAMINATION_REPORT_SUFFIX = ".contamination.csv"

#: a temporary file older than this is stale even if its process still seems alive (pid reuse, another host)
STALE_AFTER_S = 3600.0

PARQUET_OPTIONS = dict(compression="snappy", use_dictionary=True, write_statistics=True)

_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
_TMP_MIDDLE = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-[A-Za-z0-9_]+")


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


def output_dir(path: str | os.PathLike, flag: str) -> Path:
    """``path`` as an existing folder (created if missing); a one-line error naming ``flag`` otherwise."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise DataPrepError(f"{flag} {p}: is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DataPrepError(f"{flag} {p}: cannot create the folder (a part of the path is a file)") from None
    except OSError as e:
        raise DataPrepError(f"{flag} {p}: cannot create the folder ({_reason(e)})") from None
    return p


def output_file(path: str | os.PathLike, flag: str) -> Path:
    """``path`` as a file path whose folder exists (created if missing)."""
    p = Path(path)
    if p.is_dir():
        raise DataPrepError(f"{flag} {p}: is a folder; give a file path")
    output_dir(p.parent, flag)
    return p


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file (through links, ``..`` and hard links); a missing path by its name."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove this tool's leftover temporary files for ``target`` (see the module docstring); returns them."""
    prefix, removed = f".{target.name}.", []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        name = p.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        try:
            if not p.is_file() or p.is_symlink():
                continue
            age = time.time() - p.stat().st_mtime
        except OSError:
            continue
        m = _TMP_MIDDLE.fullmatch(name[len(prefix) : -len(".tmp")])
        dead = m is not None and m["host"] == _HOST and not _alive(int(m["pid"]))
        if dead or age > STALE_AFTER_S:
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            logger.info("removed stale temporary file %s (from an interrupted run)", p)
            removed.append(p)
    return removed


class _Target:
    def __init__(self, path: Path, flag: str, optional: bool):
        self.path, self.flag, self.optional, self.records = path, flag, optional, 0
        remove_stale_temporaries(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}-", suffix=".tmp", dir=path.parent)
        except OSError as e:
            raise DataPrepError(f"{flag} {path.parent}: cannot write in this folder ({_reason(e)})") from None
        self.tmp = Path(tmp)
        self.file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as e:
            raise DataPrepError(f"{self.flag} {self.path}: cannot write ({_reason(e)})") from None

    def discard(self) -> None:
        if not self.file.closed:
            self.file.close()
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass


class ParquetSink:
    """Rows of a fixed schema, streamed as row groups (one per :meth:`write_rows` call)."""

    def __init__(self, target: _Target, schema: pa.Schema):
        self.target, self.schema = target, schema
        self._writer = pq.ParquetWriter(target.file, schema, **PARQUET_OPTIONS)

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def write_table(self, table: pa.Table) -> None:
        if table.num_rows:
            try:
                self._writer.write_table(table)
            except OSError as e:
                raise DataPrepError(f"{self.target.flag} {self.target.path}: cannot write ({_reason(e)})") from None
            self.target.records += table.num_rows

    def close(self) -> None:
        self._writer.close()


class JsonlSink:
    """One JSON object per line (UTF-8; text parquet could not store is written with ``\\u`` escapes)."""

    def __init__(self, target: _Target):
        self.target = target

    def write(self, record: Any) -> None:
        try:
            line = json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            line = json.dumps(record, ensure_ascii=True).encode("ascii")
        self.target.write(line + b"\n")
        self.target.records += 1

    def write_raw(self, line: bytes) -> None:
        self.target.write(line if line.endswith(b"\n") else line + b"\n")
        self.target.records += 1


class CsvSink:
    def __init__(self, target: _Target, header: list[str]):
        self.target = target
        self._write(header)
        self.target.records = 0

    def _write(self, row: Iterable[Any]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(row)
        self.target.write(buf.getvalue().encode("utf-8", "backslashreplace"))

    def write(self, row: Iterable[Any]) -> None:
        self._write(row)
        self.target.records += 1


class Outputs:
    """The files of one run.  Use as a context manager: leaving it without :meth:`commit` discards them all.

    ``inputs`` are ``(flag, path)`` of what the run reads: no target may be one of them, nor another target.
    An ``optional`` target that received no records is not written, and an old file at its path is removed
    (a rejects list from an earlier run must not outlive the data it described); so is a path given to
    :meth:`remove` (a side file that this run does not write).
    """

    def __init__(self, inputs: Iterable[tuple[str, str | os.PathLike | None]] = ()) -> None:
        self._inputs = [(flag, Path(p)) for flag, p in inputs if p is not None]
        self._targets: list[_Target] = []
        self._parquets: list[ParquetSink] = []
        self._removals: list[tuple[Path, str]] = []

    def check(self, path: Path, flag: str) -> None:
        """A one-line error if ``path`` is an input of this run or already one of its targets."""
        for other_flag, other in self._inputs:
            if same_file(path, other):
                raise DataPrepError(f"{flag} {path}: same file as the input {other_flag} {other}; writing it would "
                                    "overwrite what this run reads: give another path")
        for t in self._targets:
            if same_file(path, t.path):
                raise DataPrepError(f"{flag} {path}: same file as {t.flag} {t.path}, also written by this run: "
                                    "give another path")

    def _open(self, path: str | os.PathLike, flag: str, optional: bool) -> _Target:
        p = output_file(path, flag)
        self.check(p, flag)
        t = _Target(p, flag, optional)
        self._targets.append(t)
        return t

    def remove(self, path: str | os.PathLike, flag: str) -> None:
        """Remove the file at ``path`` on :meth:`commit` (a side file of an earlier run that this run does not write);
        never one of the run's inputs."""
        if not any(same_file(path, other) for _, other in self._inputs):
            self._removals.append((Path(path), flag))

    def parquet(self, path: str | os.PathLike, flag: str, schema: pa.Schema) -> ParquetSink:
        sink = ParquetSink(self._open(path, flag, optional=False), schema)
        self._parquets.append(sink)
        return sink

    def jsonl(self, path: str | os.PathLike, flag: str, optional: bool = True) -> JsonlSink:
        return JsonlSink(self._open(path, flag, optional))

    def csv(self, path: str | os.PathLike, flag: str, header: list[str]) -> CsvSink:
        return CsvSink(self._open(path, flag, optional=False), header)

    def commit(self) -> None:
        """Finish every file and move it into place (each move is atomic)."""
        mask = os.umask(0o022)
        os.umask(mask)
        for sink in self._parquets:
            sink.close()
        self._parquets.clear()
        for t in self._targets:
            try:
                t.file.flush()
                os.fsync(t.file.fileno())
                t.file.close()
                if t.optional and t.records == 0:
                    t.discard()
                    if t.path.is_file():
                        t.path.unlink()
                    continue
                os.chmod(t.tmp, 0o666 & ~mask)
                os.replace(t.tmp, t.path)
            except OSError as e:
                raise DataPrepError(f"{t.flag} {t.path}: cannot write ({_reason(e)})") from None
        self._targets.clear()
        for path, flag in self._removals:
            try:
                if path.is_file():
                    path.unlink()
                    logger.info("removed %s (from an earlier run; this run does not write it)", path)
            except OSError as e:
                raise DataPrepError(f"{flag} {path}: cannot remove the earlier run's file ({_reason(e)})") from None
        self._removals.clear()

    def discard(self) -> None:
        for sink in self._parquets:
            try:
                sink.close()
            except Exception:  # the file is being thrown away; its footer does not matter
                pass
        for t in self._targets:
            t.discard()
        self._targets.clear()
        self._removals.clear()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.discard()
