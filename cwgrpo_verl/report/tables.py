"""The paper's tables from ``{run name: {step: {metric: value}}}`` as plain rows (``write.py`` renders them): Table 1,
the covariance tail and entropy; Table 2, accuracy at one step with Δ against the base; Table 3, at checkpoints."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from cwgrpo_verl import data_sets
from cwgrpo_verl.evaluate import COMPARED
from cwgrpo_verl.metrics import TAIL_FRACTIONS


def benchmarks() -> dict[str, str]:
    """The benchmark columns in the paper's order: ``{data_source: title}``."""
    return {d.data_source: d.title for d in data_sets.EVALUATION}


VAL_PATTERN = r"^val-core/(?P<ds>.+)/(?P<var>[^/]+)/mean@(?P<n>\d+)$"
ENTROPY_KEY = "actor/entropy"
TAIL_LABELS = {name: f"top {q * 100:g}%" for name, q in TAIL_FRACTIONS.items()}


@dataclass(frozen=True)
class CovSource:
    """Where a run's covariance statistics are logged (their keys' prefix), and what they are."""

    prefix: str
    describes: str

    def key(self, sign: str, frac: str) -> str:
        return f"{self.prefix}{sign}_top_{frac}"


#: In order of preference: the trainer's observe-only statistics (every method), then older cw_grpo-only keys.
COV_SOURCES = (
    CovSource("cov/", "cov/*: per prompt group, from the old log-probs, before the update"),
    CovSource("cw/cov_", "cw/cov_*: cw_grpo's trainer-side statistics (older log)"),
    CovSource("actor/cw/cov_", "actor/cw/cov_*: the cw_grpo loss's, per micro-batch (older log)"),
)


def reads(val_pattern: str = VAL_PATTERN) -> Callable[[str], bool]:
    """Which metrics the tables and the figure read (these must be finite numbers in a log)."""
    regex = re.compile(val_pattern)
    prefixes = tuple(s.prefix for s in COV_SOURCES)
    return lambda key: key == ENTROPY_KEY or key.startswith(prefixes) or bool(regex.match(key))


def scores_at(row: dict[str, float], regex: re.Pattern, metric: str) -> dict[str, tuple[float, str, int]]:
    """``{data_source: (value, key, fallback)}`` in one step's metrics; ``fallback`` is 1 where ``metric`` is
    missing and the ``reward`` variable was used; with several ``mean@N`` the largest N wins."""
    found: dict[str, tuple[int, int, float, str]] = {}
    for key, value in row.items():
        match = regex.match(key)
        if not match:
            continue
        groups = match.groupdict()
        var = groups.get("var") or metric
        rank = 0 if var == metric else 1 if var == "reward" else None
        if rank is None:
            continue
        candidate = (rank, -int(groups.get("n") or 0), value, key)
        ds = groups.get("ds", key)
        found[ds] = min(found.get(ds, candidate), candidate)
    return {ds: (v, k, rank) for ds, (rank, _, v, k) in found.items()}


def validation_scores(run: dict, pattern: str = VAL_PATTERN, metric: str = "acc") -> dict[int, dict]:
    """``{step: scores}`` at each step where this run logged validation scores, in order."""
    regex = re.compile(pattern)
    return {s: scores for s in sorted(run) if (scores := scores_at(run[s], regex, metric))}


def column_order(seen: set[str], datasets=None) -> list[str]:
    if datasets:
        return list(datasets)
    known = benchmarks()
    return [ds for ds in known if ds in seen] + sorted(seen - known.keys())


def _accuracy_table(runs: dict, picked: list[tuple], notes: list[str], pattern: str, metric: str, datasets):
    """(rows, benchmark order, notes) of the ``(run, step, scores)`` picked, warning about ``--datasets`` entries
    that no run logged at any step (a typo gives a column of dashes)."""
    if datasets:
        regex = re.compile(pattern)
        seen = {ds for run in runs.values() for row in run.values() for ds in scores_at(row, regex, metric)}
        logged = ", ".join(column_order(seen)) or "none"
        notes += [f"--datasets {ds!r}: no run logs validation metrics for it (logged: {logged}): its column shows —"
                  for ds in datasets if ds not in seen]
    order = column_order({ds for _, _, scores in picked for ds in scores}, datasets)
    return [_accuracy_row(name, s, scores, order) for name, s, scores in picked], order, notes


def _outside(value: float) -> bool:
    return not 0.0 <= value <= 1.0


def _accuracy_row(name: str, step, scores: dict, order: list[str]) -> dict:
    row = {"run": name, "step": step, **{ds: 100.0 * scores[ds][0] if ds in scores else None for ds in order}}
    values = [row[ds] for ds in order]
    row["Avg"] = sum(values) / len(values) if values and all(v is not None for v in values) else None
    row["out_of_range"] = [ds for ds in order if ds in scores and _outside(scores[ds][0])]
    return row


def _score_notes(name: str, step, scores: dict, metric: str) -> list[str]:
    """Warnings for data sources read from the reward variable instead of ``metric``, and for values that cannot be
    an accuracy fraction (a percentage logged as 37.5, a reward of 2)."""
    return [f"run {name!r}, {ds}: no {metric!r} metric, using {key}" for ds, (_, key, rank) in scores.items() if rank] \
        + [f"run {name!r}, {key} at step {step}: {value:g} is outside [0, 1] (verl logs accuracy as a "
           "fraction): shown as logged x 100, marked †" for value, key, _ in scores.values() if _outside(value)]


def table2(runs: dict, base: str | None, pattern=VAL_PATTERN, metric="acc", step="last", datasets=None):
    """(rows, benchmark order, warnings): accuracy (%) at ``step`` (the base run: its last validation)."""
    picked, notes = [], []
    for name, run in runs.items():
        at = "last" if name == base else step
        scored = validation_scores(run, pattern, metric)
        s = max(scored, default=None) if at == "last" else int(at) if int(at) in scored else None
        scores = scored.get(s, {})
        if s is None:
            notes.append(f"run {name!r} has no validation metrics matching {pattern!r} at step {at}: its row shows —")
        notes += _score_notes(name, s, scores, metric)
        picked.append((name, s, scores))
    rows, order, notes = _accuracy_table(runs, picked, notes, pattern, metric, datasets)
    base_row = next((r for r in rows if r["run"] == base), None)
    for row in rows:
        for col in [*order, "Avg"]:
            ok = base_row is not None and row is not base_row and row[col] is not None and base_row[col] is not None
            row[f"Δ {col}"] = row[col] - base_row[col] if ok else None
    return rows, order, notes


def table3(runs: dict, base: str | None, pattern=VAL_PATTERN, metric="acc", checkpoints=None, datasets=None):
    """(rows, benchmark order, warnings): accuracy (%) at each validated step of each run, or at ``checkpoints`` (one
    without validation: a row of dashes and a warning, never a missing row); the base run: its last validation."""
    picked, notes = [], []
    for name, run in runs.items():
        scored = validation_scores(run, pattern, metric)
        have = list(scored)
        steps = have[-1:] if name == base else list(checkpoints) if checkpoints else have
        if not have:
            notes.append(f"run {name!r} has no validation metrics matching {pattern!r}: its Table 3 row shows —")
            steps = steps or [None]
        for s in steps:
            scores = scored.get(s, {})
            if s is not None and have and s not in have:
                shown = ", ".join(map(str, have[:8])) + (", ..." if len(have) > 8 else "")
                notes.append(f"run {name!r} did not validate at step {s} (it did at {shown}): its row shows —")
            notes += _score_notes(name, s, scores, metric)
            picked.append((name, s, scores))
    return _accuracy_table(runs, picked, notes, pattern, metric, datasets)


def settings_differences(rows: list[dict], settings: dict[str, dict]) -> list[str]:
    """Which evaluation settings differ between the rows of a table (each row: a run and a step), one line per
    setting with the rows of each value; a log that recorded none counts as its own value, "not recorded"."""
    values: dict[str, dict[str, list[str]]] = {key: {} for key in COMPARED}
    for row in rows:
        recorded = settings.get(row["run"], {}).get(row["step"])
        for key in COMPARED:
            value = "not recorded" if recorded is None else repr(recorded.get(key))
            values[key].setdefault(value, {})[f"{row['run']} @ {row['step']}"] = None
    return [f"{key}: " + "; ".join(f"{v} ({', '.join(where)})" for v, where in seen.items())
            for key, seen in values.items() if len(seen) > 1]


@dataclass
class TailColumn:
    """One run's Table 1 column: the tail means over its window, where they come from, and its entropy."""

    run: str
    source: CovSource | None
    steps: list[int]
    cells: dict[str, tuple[float | None, float | None]]
    entropy: float | None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def tail_column(name: str, run: dict, tail_steps: int | None = None) -> TailColumn:
    """The covariance tail and entropy of ``run`` over its steps up to ``tail_steps`` (all steps if None)."""
    window = [s for s in sorted(run) if tail_steps is None or s <= tail_steps]
    keys = {k for row in run.values() for k in row}
    source = next((src for src in COV_SOURCES if any(src.key("pos", f) in keys for f in TAIL_FRACTIONS)), None)
    cells, used = {}, set()
    for frac in TAIL_FRACTIONS:
        pair = [source.key(sign, frac) for sign in ("pos", "neg")] if source else [None, None]
        used.update(s for s in window for key in pair if key in run[s])
        cells[frac] = tuple(_mean([run[s][key] for s in window if key in run[s]]) for key in pair)
    entropy = _mean([run[s][ENTROPY_KEY] for s in window if ENTROPY_KEY in run[s]])
    return TailColumn(name, source, sorted(used), cells, entropy)


def table1(runs: dict, base: str | None = None, tail_steps: int | None = None):
    """(columns, warnings): one :class:`TailColumn` per training run (every run but the evaluation-only base)."""
    columns, notes = [], []
    for name, run in runs.items():
        if name == base:
            continue
        column = tail_column(name, run, tail_steps)
        window = f"steps <= {tail_steps}" if tail_steps else "all steps"
        if column.source is None:
            notes.append(f"run {name!r} logs no covariance statistics (cov/*, or cw/cov_* / actor/cw/cov_* of older "
                         "logs): its Table 1 column shows —")
        elif not column.steps:
            notes.append(f"run {name!r} has no {column.source.prefix}* values in {window}: its Table 1 column shows —")
        elif column.source is not COV_SOURCES[0]:
            notes.append(f"run {name!r} has no cov/* statistics (an older log): Table 1 uses its "
                         f"{column.source.describes}")
        if tail_steps and column.steps and len(column.steps) < tail_steps:
            notes.append(f"run {name!r} has covariance statistics at {len(column.steps)} of the first {tail_steps} "
                         "steps only")
        if column.entropy is None:
            notes.append(f"run {name!r} logs no {ENTROPY_KEY} in {window}: its entropy shows —")
        columns.append(column)
    return columns, notes
