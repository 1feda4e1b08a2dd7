"""Read verl's logged metrics into ``{step: {metric: value}}``, refusing what cannot be read rather than guessing
(formats, ``PATH#K`` / ``PATH#resume`` and errors: docs/report.md)."""

from __future__ import annotations

import contextlib
import glob
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

Steps = dict[int, dict[str, float]]
Used = Callable[[str], bool]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CONSOLE = re.compile(r"(?:^|[\s)])step:(-?\d+)(?: - (.*))?$")
_NP_SCALAR = re.compile(r"^(?:np|numpy)\.\w+\((.*)\)$")
_SELECTOR = re.compile(r"^(?P<path>.+)#(?P<sel>\d+|resume)$")


class LogError(ValueError):
    """A log that cannot be read as asked; the message is one line naming the file (and line)."""


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass
class Segment:
    """One run's records in a file, in order: steps never go back inside a segment."""

    first_line: int
    steps: Steps = field(default_factory=dict)
    last_line: int = 0


class _Builder:
    """Collects records into segments and applies the bad-line policy (strict: raise; else warn and skip)."""

    def __init__(self, path: Path, strict: bool, used: Used | None):
        self.path, self.strict, self.used = path, strict, used or (lambda key: True)
        self.segments: list[Segment] = []
        self.last_step: int | None = None

    def bad(self, lineno: int | str, reason: str) -> None:
        where = f"{self.path}:{lineno}" if isinstance(lineno, int) else f"{self.path} ({lineno})"
        if self.strict:
            raise LogError(f"{where}: {reason} (--skip-bad-lines skips such lines with a warning)")
        warn(f"{where}: {reason} (skipped)")

    def value(self, lineno: int | str, key: str, raw, null_is_nonfinite: bool) -> float | None:
        """The float to keep, or None (not a number the report reads); a bad value of a used key is bad()."""
        if raw is None and not null_is_nonfinite:
            return None
        try:  # a JSON ``true`` is a flag, not the value 1.0
            number = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
        except OverflowError:  # an int beyond float range
            number = math.inf
        if number is not None and math.isfinite(number):
            return number
        if self.used(key):
            what = "null (verl's file logger writes NaN and infinity as null)" if raw is None else (
                f"{raw!r} (not finite)" if number is not None else f"not a number: {str(raw)[:60]!r}")
            self.bad(lineno, f"metric {key!r} is {what}")
        return None

    def add(self, lineno: int, step: int, values: dict[str, float | None]) -> None:
        """A record starts a new run when its step goes back, or repeats the last step with a metric it already has
        (two runs appended to one file that both log step 0, for example); None values are dropped."""
        values = {k: v for k, v in values.items() if v is not None}
        repeated = step == self.last_step and not values.keys().isdisjoint(self.segments[-1].steps[step])
        if self.last_step is None or step < self.last_step or repeated:
            self.segments.append(Segment(first_line=lineno))
        segment = self.segments[-1]
        segment.steps.setdefault(step, {}).update(values)
        segment.last_line, self.last_step = lineno, step


def _step(raw) -> int | None:
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        return int(raw)
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _lines(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line number, text, None), or for a line that is not valid UTF-8 its replacement decoding and why."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            raw = raw.rstrip(b"\r\n")
            try:
                text, undecodable = raw.decode("utf-8"), None
            except UnicodeDecodeError as error:
                text = raw.decode("utf-8", errors="replace")
                undecodable = f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1})"
            yield lineno, text, undecodable


def _read_jsonl(path: Path, build: _Builder) -> None:
    for lineno, text, undecodable in _lines(path):
        if not text.strip():
            continue
        if undecodable:
            build.bad(lineno, undecodable)
            continue
        try:
            record = json.loads(text)
        except (ValueError, RecursionError) as error:
            build.bad(lineno, f"not JSON ({str(error)[:80]})")
            continue
        if isinstance(record, dict) and "step" in record and isinstance(record.get("data"), dict):
            raw_step, data, null_is_nonfinite = record["step"], record["data"], True  # verl's file logger
        elif isinstance(record, dict) and "_step" in record:
            raw_step, null_is_nonfinite = record["_step"], False  # a wandb history row
            data = {k: v for k, v in record.items() if not k.startswith("_")}
        else:
            build.bad(lineno, "not a verl file-logger record {\"step\": N, \"data\": {...}} nor a wandb history "
                              "row {\"_step\": N, ...}")
            continue
        step = _step(raw_step)
        if step is None:
            build.bad(lineno, f"step {raw_step!r} is not a finite integer")
            continue
        build.add(lineno, step, {k: build.value(lineno, k, v, null_is_nonfinite) for k, v in data.items()})


def _read_console(path: Path, build: _Builder) -> None:
    for lineno, text, undecodable in _lines(path):
        match = _CONSOLE.search(_ANSI.sub("", text))
        if not match:
            continue  # not a metrics line (config dump, progress bars, worker output)
        if undecodable:
            build.bad(lineno, undecodable)
            continue
        values = {}
        for item in (match.group(2) or "").split(" - "):
            key, sep, value = item.rpartition(":")
            if not sep or not key:
                build.bad(lineno, f"cannot parse console metric {item[:120]!r} (expected key:value)")
                continue
            value = _NP_SCALAR.sub(r"\1", value.strip())
            with contextlib.suppress(ValueError):
                value = float(value)
            values[key] = build.value(lineno, key, value, null_is_nonfinite=True)
        build.add(lineno, int(match.group(1)), values)


def _read_tensorboard(path: Path, build: _Builder) -> None:
    try:
        from tensorboard.backend.event_processing import event_accumulator as ea
        from tensorboard.util import tensor_util
    except ImportError as error:
        raise LogError(f"{path} is a tensorboard directory but tensorboard is not installed ({error})") from None
    dirs = sorted({p.parent for p in path.rglob("events.out.tfevents.*")})
    if not dirs:
        raise LogError(f"{path}: directory holds no tensorboard event files (events.out.tfevents.*)")
    points: dict[int, dict[str, float]] = {}
    for directory in dirs:
        acc = ea.EventAccumulator(str(directory), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
        acc.Reload()
        events = [(tag, e, e.value) for tag in acc.Tags().get("scalars", []) for e in acc.Scalars(tag)]
        for tag in acc.Tags().get("tensors", []):
            arrays = [(e, tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
            events += [(tag, e, a.reshape(()).item()) for e, a in arrays if a.size == 1 and a.dtype.kind in "fiub"]
        for tag, event, value in events:
            points.setdefault(int(event.step), {})[tag] = value
    for step in sorted(points):
        build.add(0, step, {k: build.value(f"step {step}", k, v, True) for k, v in points[step].items()})


def _first_record(path: Path) -> dict | None:
    """The first non-blank line as a JSON object, or None (a console log may start with verl's pprint of the
    config, which also begins with "{")."""
    text = next((text for _, text, _ in _lines(path) if text.strip()), "")
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def read_segments(path: str | Path, strict: bool = True, used: Used | None = None) -> list[Segment]:
    """Every run in ``path`` (a file-logger/wandb JSONL, a console log or a tensorboard directory), in order."""
    path = Path(path)
    build = _Builder(path, strict, used)
    try:
        if path.is_dir():
            _read_tensorboard(path, build)
        elif not path.exists():
            raise LogError(f"{path}: no such file or directory")
        else:
            first = {} if path.suffix == ".jsonl" else _first_record(path) or {}
            jsonl = path.suffix == ".jsonl" or {"step", "data"} <= first.keys() or "_step" in first
            (_read_jsonl if jsonl else _read_console)(path, build)
    except OSError as error:
        raise LogError(f"{path}: cannot read it ({error.strerror or error})") from None
    if not build.segments:
        empty = path.is_file() and path.stat().st_size == 0
        raise LogError(f"{path}: {'empty file' if empty else 'no verl metrics in it'}: expected verl's file-logger "
                       "JSONL, wandb history rows, a console log with `step:N - key:value` lines, or a tensorboard "
                       "directory")
    return build.segments


def split_selector(text: str) -> tuple[Path, str | None]:
    """``PATH#K`` / ``PATH#resume`` -> (PATH, selector); a path that exists as written is never split."""
    match = _SELECTOR.match(text)
    if match and not Path(text).exists():
        return Path(match["path"]), match["sel"]
    return Path(text), None


def select(segments: list[Segment], selector: str | None, path: Path) -> tuple[Steps, str | None]:
    """The steps the selector asks for, and a note when the file held several runs."""
    n = len(segments)
    spans = "; ".join(f"#{i} steps {min(s.steps)}-{max(s.steps)} (lines {s.first_line}-{s.last_line})"
                      for i, s in enumerate(segments, 1))
    if selector is None:
        if n == 1:
            return segments[0].steps, None
        raise LogError(f"{path}:{segments[1].first_line}: step {min(segments[1].steps)} after step "
                       f"{max(segments[0].steps)}: this file holds {n} runs ({spans}); read one with {path}#K "
                       f"(K = 1..{n}), or {path}#resume if each resumed the one before")
    if selector == "resume":
        steps: Steps = {}
        for segment in segments:
            start = min(segment.steps)
            steps = {s: row for s, row in steps.items() if s <= start}
            for s, row in segment.steps.items():
                steps[s] = {**steps.get(s, {}), **row} if s == start else dict(row)
        return steps, f"{path}: {n} run(s) read as one resumed run ({spans})"
    k = int(selector)
    if not 1 <= k <= n:
        raise LogError(f"{path}#{selector}: this file holds {n} run(s) ({spans})")
    return segments[k - 1].steps, (f"{path}: run #{k} of {n} ({spans})" if n > 1 else None)


def load_run(spec: str | Path, strict: bool = True, used: Used | None = None, name: str | None = None) -> Steps:
    """``{step: {metric: value}}`` of ``PATH``, ``PATH#K`` or ``PATH#resume``; a note (which run of several was
    read) goes to stderr, headed by the run's ``name``."""
    path, selector = split_selector(str(spec))
    steps, note = select(read_segments(path, strict, used), selector, path)
    if note:
        print(f"note: {name}: {note}" if name else f"note: {note}", file=sys.stderr)
    return steps


def load_evaluations(spec: str, strict: bool = True, used: Used | None = None,
                     name: str | None = None) -> tuple[Steps, dict[int, dict | None]]:
    """A run's evaluations (a log, a folder of logs or a glob): ``({step: metrics}, {step: settings or None})``.
    Two logs of one step are refused, naming both: pick one with a glob (the settings are in the file names)."""
    steps: Steps = {}
    settings: dict[int, dict | None] = {}
    origin: dict[int, Path] = {}
    given = Path(spec)
    files = [given]
    if glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
        if not files:
            raise LogError(f"{spec}: no file matches")
    elif given.is_dir():
        files = sorted(p for p in given.glob("[!.]*.jsonl") if not p.name.endswith(".generations.jsonl"))
        if not files:
            raise LogError(f"{given}: no evaluation log (*.jsonl) in this folder: write them with "
                           "examples/evaluate_checkpoints.sh or examples/evaluate.sh")
    for path in files:
        recorded = (_first_record(path) or {}).get("evaluation") if path.is_file() else None  # cwgrpo's evaluate
        recorded = recorded if isinstance(recorded, dict) else None  # None: a log without them (verl's own)
        for step, row in load_run(path, strict, used, name).items():
            if step in origin:
                raise LogError(f"{path}: step {step} is also evaluated in {origin[step]}: keep one, or choose with a "
                               "glob (e.g. 'DIR/step_*.t0.6-p0.95-n1-len32768.jsonl')")
            origin[step], steps[step], settings[step] = path, row, recorded
    return steps, settings
