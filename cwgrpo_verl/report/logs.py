"""Read verl's logged metrics into ``{step: {metric: value}}``, refusing what cannot be read rather than guessing.

Formats (one reader each):

* verl's file logger (``trainer.logger=[...,file]``): JSONL, one ``{"step": S, "data": {...}}`` per ``log`` call.
  It writes NaN and infinity as ``null`` (orjson), so a ``null`` is a non-finite value.
* wandb history rows (``wandb.Api().run(PATH).scan_history()`` dumped one JSON object per line): ``_step`` is
  verl's step; ``null`` there means "not logged at this step"; keys starting with ``_`` are wandb's own.
* a captured console log (``... 2>&1 | tee train.log``): lines ``step:S - key:value - ...``, also behind Ray's
  ``(TaskRunner pid=N)`` prefix and colour codes; values may read ``np.float64(x)``; other lines are skipped.
* a tensorboard directory (``events.out.tfevents.*``), read with tensorboard's EventAccumulator, which applies
  TensorBoard's own restart handling (a step going back discards the later steps of the earlier attempt).

Every failure is a :class:`LogError` naming the file and line. Only the metrics the caller reads (``used``) must
be finite numbers (a boolean is not one: ``true`` / ``True`` is refused, never read as 1.0): a NaN
``actor/grad_norm`` does not stop a report that never reads it.

Evaluations (:func:`load_evaluations`): ``python -m cwgrpo_verl.evaluate`` writes one file-logger record per model
with its settings under ``"evaluation"``; a run's evaluations are a folder of such logs (one per checkpoint, as
``examples/evaluate_checkpoints.sh`` writes them), a glob of them, or one of them.

Two runs in one file: a step lower than the one before starts a new *segment* (``cat``-ed logs, a console log
written with ``tee -a``, a resumed run's attempts joined by hand). A file with several segments is refused, with
the line where the step goes back, unless the caller picks one: ``PATH#K`` (the K-th run) or ``PATH#resume``
(each run resumed the one before: a later run replaces the steps from its first step on).
"""

from __future__ import annotations

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

    def span(self) -> str:
        steps = sorted(self.steps)
        return f"steps {steps[0]}-{steps[-1]} (lines {self.first_line}-{self.last_line})"


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
        number = _number(raw)
        if number is not None and math.isfinite(number):
            return number
        if self.used(key):
            what = "null (verl's file logger writes NaN and infinity as null)" if raw is None else (
                f"{raw!r} (not finite)" if number is not None else f"not a number: {str(raw)[:60]!r}")
            self.bad(lineno, f"metric {key!r} is {what}")
        return None

    def add(self, lineno: int, step: int, values: dict[str, float]) -> None:
        """A record starts a new run when its step goes back, or repeats the last step with a metric it already has
        (two runs appended to one file that both log step 0, for example)."""
        repeated = step == self.last_step and not values.keys().isdisjoint(self.segments[-1].steps[step])
        if self.last_step is None or step < self.last_step or repeated:
            self.segments.append(Segment(first_line=lineno))
        segment = self.segments[-1]
        segment.steps.setdefault(step, {}).update(values)
        segment.last_line, self.last_step = lineno, step


def _number(raw) -> float | None:
    """``raw`` as a float, or None if it is not a number (a JSON ``true`` is a flag, not the value 1.0)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        try:
            return float(raw)
        except OverflowError:  # an int beyond float range
            return math.inf
    return None


def _step(raw) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        return int(raw)
    return None


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            yield lineno, raw.rstrip(b"\r\n")


def _decode(raw: bytes) -> tuple[str, str | None]:
    """(text, error): the strict UTF-8 decoding, or a replacement decoding and why the strict one failed."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as error:
        return raw.decode("utf-8", errors="replace"), f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column " \
                                                      f"{error.start + 1})"


def _read_jsonl(path: Path, build: _Builder) -> None:
    for lineno, raw in _lines(path):
        text, undecodable = _decode(raw)
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
        values = {k: build.value(lineno, k, v, null_is_nonfinite) for k, v in data.items()}
        build.add(lineno, step, {k: v for k, v in values.items() if v is not None})


def _console_value(text: str) -> float | str:
    text = text.strip()
    match = _NP_SCALAR.match(text)
    if match:
        text = match.group(1)
    try:
        return float(text)
    except ValueError:
        return text


def _read_console(path: Path, build: _Builder) -> None:
    for lineno, raw in _lines(path):
        text, undecodable = _decode(raw)
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
            values[key] = build.value(lineno, key, _console_value(value), null_is_nonfinite=True)
        build.add(lineno, int(match.group(1)), {k: v for k, v in values.items() if v is not None})


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
        for tag in acc.Tags().get("scalars", []):
            for event in acc.Scalars(tag):
                points.setdefault(int(event.step), {})[tag] = event.value
        for tag in acc.Tags().get("tensors", []):
            for event in acc.Tensors(tag):
                array = tensor_util.make_ndarray(event.tensor_proto)
                if array.size == 1 and array.dtype.kind in "fiub":
                    points.setdefault(int(event.step), {})[tag] = array.reshape(()).item()
    for step in sorted(points):
        values = {k: build.value(f"step {step}", k, v, True) for k, v in points[step].items()}
        build.add(0, step, {k: v for k, v in values.items() if v is not None})


def _looks_like_jsonl(path: Path) -> bool:
    for _, raw in _lines(path):
        text, _ = _decode(raw)
        if text.strip():
            try:  # a console log may start with verl's pprint of the config, which also begins with "{"
                record = json.loads(text)
            except (ValueError, RecursionError):
                return False
            return isinstance(record, dict) and ({"step", "data"} <= record.keys() or "_step" in record)
    return False


def read_segments(path: str | Path, strict: bool = True, used: Used | None = None) -> list[Segment]:
    """Every run in ``path`` (a file-logger/wandb JSONL, a console log or a tensorboard directory), in order."""
    path = Path(path)
    build = _Builder(path, strict, used)
    try:
        if path.is_dir():
            _read_tensorboard(path, build)
        elif not path.exists():
            raise LogError(f"{path}: no such file or directory")
        elif path.suffix == ".jsonl" or _looks_like_jsonl(path):
            _read_jsonl(path, build)
        else:
            _read_console(path, build)
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
    if selector is None:
        if n == 1:
            return segments[0].steps, None
        second = segments[1]
        before = max(segments[0].steps)
        raise LogError(
            f"{path}:{second.first_line}: step {min(second.steps)} after step {before}: this file holds {n} runs ("
            + "; ".join(f"#{i} {s.span()}" for i, s in enumerate(segments, 1))
            + f"); read one with {path}#K (K = 1..{n}), or {path}#resume if each resumed the one before")
    spans = "; ".join(f"#{i} {s.span()}" for i, s in enumerate(segments, 1))
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
    """``{step: {metric: value}}`` of ``PATH``, ``PATH#K`` or ``PATH#resume`` (see the module docstring); a note
    (which run of several was read) goes to stderr, headed by the run's ``name``."""
    path, selector = split_selector(str(spec))
    steps, note = select(read_segments(path, strict, used), selector, path)
    if note:
        print(f"note: {name}: {note}" if name else f"note: {note}", file=sys.stderr)
    return steps


#: the record key under which ``cwgrpo_verl.evaluate`` writes an evaluation's settings
SETTINGS_KEY = "evaluation"
Settings = dict[int, "dict | None"]


def _evaluation_files(spec: str) -> list[Path]:
    if glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
        if not files:
            raise LogError(f"{spec}: no file matches")
        return files
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.jsonl") if not p.name.startswith(".")
                       and not p.name.endswith(".generations.jsonl"))
        if not files:
            raise LogError(f"{path}: no evaluation log (*.jsonl) in this folder: write them with "
                           "examples/evaluate_checkpoints.sh or examples/evaluate.sh")
        return files
    return [path]


def _recorded_settings(path: Path) -> dict | None:
    """The settings the first record of ``path`` carries (None: a log without them, e.g. verl's validation-only run)."""
    for _, raw in _lines(path):
        text, _ = _decode(raw)
        if text.strip():
            try:
                record = json.loads(text)
            except (ValueError, RecursionError):
                return None
            settings = record.get(SETTINGS_KEY) if isinstance(record, dict) else None
            return settings if isinstance(settings, dict) else None
    return None


def load_evaluations(spec: str, strict: bool = True, used: Used | None = None,
                     name: str | None = None) -> tuple[Steps, Settings]:
    """A run's evaluations (a log, a folder of logs or a glob): ``({step: metrics}, {step: settings or None})``.
    Two logs of one step are refused, naming both: pick one with a glob (the settings are in the file names)."""
    steps: Steps = {}
    settings: Settings = {}
    origin: dict[int, Path] = {}
    for path in _evaluation_files(spec):
        recorded = _recorded_settings(path) if path.is_file() else None
        for step, row in load_run(path, strict, used, name).items():
            if step in origin:
                raise LogError(f"{path}: step {step} is also evaluated in {origin[step]}: keep one, or choose with a "
                               "glob (e.g. 'DIR/step_*.t0.6-p0.95-n1-len32768.jsonl')")
            origin[step], steps[step], settings[step] = path, row, recorded
    return steps, settings
