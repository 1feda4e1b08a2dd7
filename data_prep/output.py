"""Output files written all-or-nothing: a temporary file beside each target, moved into place on commit.

No target changes until :meth:`Outputs.commit`, so a failed run (bad rows, a full disk, Ctrl-C) leaves the previous
outputs as they were; a target that is one of the run's inputs or other targets is a one-line error naming both.
A process killed outright leaves its temporary files (``.<target>.<host>-<pid>-<random>.tmp``): every run first
removes its targets' stale ones, whose process is gone from this host or which are older than :data:`STALE_AFTER_S`.
"""

from __future__ import annotations

import contextlib
import csv
import glob
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

from cwgrpo_verl.processes import alive
from data_prep.common import DataPrepError

logger = logging.getLogger("data_prep")

#: side files written next to ``<name>.parquet``, never read back as evaluation data; and the decontamination report
REJECTS_SUFFIX, DUPLICATES_SUFFIX, CONTAMINATED_SUFFIX = ".rejects.jsonl", ".duplicates.jsonl", ".contaminated.jsonl"
SIDE_FILE_SUFFIXES = (REJECTS_SUFFIX, DUPLICATES_SUFFIX, CONTAMINATED_SUFFIX)
REPORT_SUFFIX = ".contamination.csv"
#: a temporary file older than this is stale even if its process still seems alive (pid reuse, another host)
STALE_AFTER_S = 3600.0
PARQUET_OPTIONS = {"compression": "snappy", "use_dictionary": True, "write_statistics": True}  # deterministic bytes
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
_TMP_MIDDLE = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-[A-Za-z0-9_]+")


def _error(what: str, e: OSError) -> DataPrepError:
    return DataPrepError(f"{what} ({e.strerror or type(e).__name__})")


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
        raise _error(f"{flag} {p}: cannot create the folder", e) from None
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


def _remove_stale_temporaries(target: Path) -> None:
    for p in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        m = _TMP_MIDDLE.fullmatch(p.name[len(target.name) + 2 : -len(".tmp")])
        try:
            dead = m is not None and m["host"] == _HOST and not alive(int(m["pid"]))
            if p.is_file() and not p.is_symlink() and (dead or time.time() - p.stat().st_mtime > STALE_AFTER_S):
                p.unlink()
                logger.info("removed stale temporary file %s (from an interrupted run)", p)
        except OSError:  # gone meanwhile, or not ours to remove
            continue


class _Target:
    """One file of a run, in a temporary file: jsonl records, csv rows or parquet tables (the first sets the schema)."""

    def __init__(self, path: Path, flag: str, optional: bool):
        self.path, self.flag, self.optional, self.records, self.writer = path, flag, optional, 0, None
        _remove_stale_temporaries(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}-", suffix=".tmp", dir=path.parent)
        except OSError as e:
            raise _error(f"{flag} {path.parent}: cannot write in this folder", e) from None
        self.tmp, self.file = Path(tmp), os.fdopen(fd, "wb")

    def _write(self, write: Any, data: Any) -> None:
        try:
            write(data)
        except OSError as e:
            raise _error(f"{self.flag} {self.path}: cannot write", e) from None
        self.records += 1

    def write(self, record: Any) -> None:
        """One JSON object per line (UTF-8; text parquet could not store is written with ``\\u`` escapes)."""
        try:
            line = json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            line = json.dumps(record, ensure_ascii=True).encode("ascii")
        self.write_raw(line)

    def write_raw(self, line: bytes) -> None:
        self._write(self.file.write, line if line.endswith(b"\n") else line + b"\n")

    def write_csv(self, row: Iterable[Any]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(row)
        self.write_raw(buf.getvalue().encode("utf-8", "backslashreplace"))

    def write_table(self, table: pa.Table) -> None:
        """One parquet row group (none for an empty table)."""
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.file, table.schema, **PARQUET_OPTIONS)
        if table.num_rows:
            self._write(self.writer.write_table, table)

    def discard(self) -> None:
        with contextlib.suppress(Exception):  # the file is being thrown away; its footer does not matter
            if self.writer is not None:
                self.writer.close()
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class Outputs:
    """The files of one run, reading ``inputs`` (``(flag, path)``); leaving the ``with`` block without :meth:`commit`
    discards them all.  An ``optional`` target that received no records is not written and an old file at its path is
    removed: an earlier run's list must not outlive the data it described."""

    def __init__(self, inputs: Iterable[tuple[str, str | os.PathLike]] = ()) -> None:
        self._inputs = [(flag, Path(p)) for flag, p in inputs]
        self._targets: list[_Target] = []

    def open(self, path: str | os.PathLike, flag: str, *, optional: bool = False,
             header: list[str] | None = None) -> _Target:
        """A new target; ``header``: a csv file's first row."""
        p = output_file(path, flag)
        for other_flag, other in self._inputs:
            if same_file(p, other):
                raise DataPrepError(f"{flag} {p}: same file as the input {other_flag} {other}; writing it would "
                                    "overwrite what this run reads: give another path")
        for t in self._targets:
            if same_file(p, t.path):
                raise DataPrepError(f"{flag} {p}: same file as {t.flag} {t.path}, also written by this run: "
                                    "give another path")
        t = _Target(p, flag, optional)
        self._targets.append(t)
        if header is not None:
            t.write_csv(header)
        return t

    def commit(self) -> None:
        """Finish every file, then move each into place (each move is atomic)."""
        mask = os.umask(0o022)
        os.umask(mask)
        try:
            for t in self._targets:
                if t.writer is not None:
                    t.writer.close()
                t.file.flush()
                os.fsync(t.file.fileno())
                t.file.close()
            for t in self._targets:
                if t.optional and t.records == 0:
                    t.discard()
                    if t.path.is_file():
                        t.path.unlink()
                        logger.info("removed %s (from an earlier run; this run does not write it)", t.path)
                else:
                    os.chmod(t.tmp, 0o666 & ~mask)
                    os.replace(t.tmp, t.path)
        except OSError as e:
            raise _error(f"{t.flag} {t.path}: cannot write", e) from None
        self._targets.clear()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *_exc: object) -> None:  # after a commit, nothing is left to discard
        for t in self._targets:
            t.discard()
