"""Word n-gram overlap between training problems and evaluation problems.

    python -m data_prep.decontaminate --train X.parquet --eval DIR_OR_FILES... --report out.csv
                                      [--n 13] [--threshold 0.5] [--min-score 0]
                                      [--drop-contaminated --out CLEAN.parquet]

Texts are normalised (lowercase; LaTeX spacing commands, ``\\left``/``\\right``, ``$`` and all punctuation
removed; ``\\dfrac``/``\\tfrac`` -> ``frac``, ``\\dbinom`` -> ``binom``) and split into words.  Each text
becomes the set of its word n-grams (a text with fewer than n words becomes one "n-gram": the whole
text, so short problems only match texts with the same words).  Evaluation n-grams go into an inverted
index (:class:`EvalIndex`); each training text is looked up gram by gram as the rows stream past, so the
cost is linear in the total number of n-grams (no all-pairs string comparison) and memory holds only the
evaluation side.

Score of a (train, eval) pair = shared n-grams / min(#train n-grams, #eval n-grams) (overlap
coefficient): 1.0 when one problem is contained in the other.  Pairs with score >= threshold are
"contaminated".  The report lists every pair with score >= --min-score (default: any shared n-gram).

Inputs: verl parquet files written by data_prep (problem text from ``extra_info.problem``, else the
last user message), or raw jsonl/json/parquet files with a ``problem``/``question`` column
(e.g. shared/data).  A folder means every ``*.parquet``/``*.jsonl``/``*.json`` in it (sorted by name), except
what is not evaluation data: hidden files, data_prep's side files (``*.rejects.jsonl``, ``*.duplicates.jsonl``,
``*.contaminated.jsonl``), the ``--train`` file, and training sets (a verl parquet whose rows have
``extra_info.split == 'train'`` or the Open-RS ``data_source``).  So ``--eval data/`` may hold the previous
``open_rs.parquet``: re-running gives the same result.  Naming such a file explicitly is an error.

Outputs never overwrite inputs: ``--report``, ``--out`` and its ``.contaminated.jsonl`` list must each be another
file than ``--train``, every evaluation file read and each other (a one-line error naming both, before anything is
written).  ``--out`` needs ``--drop-contaminated``, and a run that would drop every training row writes nothing.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cwgrpo_verl import argtypes, data_sets
from data_prep.cli import run, setup_logging
from data_prep.common import DataPrepError
from data_prep.output import (
    CONTAMINATED_SUFFIX,
    CONTAMINATION_REPORT_SUFFIX,
    SIDE_FILE_SUFFIXES,
    Outputs,
    output_file,
    same_file,
)
from data_prep.sources import iter_source_rows

logger = logging.getLogger("data_prep.decontaminate")

DEFAULT_N = 13
DEFAULT_THRESHOLD = 0.5
REPORT_SUFFIX = CONTAMINATION_REPORT_SUFFIX

_LATEX_DROP = re.compile(r"\\(left|right|big|Big|bigg|Bigg|quad|qquad|displaystyle|textstyle|mathrm|text|mbox)\b|\\[,;:! ]")
_LATEX_RENAME = ((re.compile(r"\\[dt]frac\b"), " frac "), (re.compile(r"\\dbinom\b"), " binom "))
_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> list[str]:
    """Lowercased word tokens with LaTeX spacing/markup and punctuation removed."""
    t = text
    for pat, rep in _LATEX_RENAME:
        t = pat.sub(rep, t)
    t = _LATEX_DROP.sub(" ", t)
    t = t.lower()
    t = _NON_WORD.sub(" ", t)
    return t.split()


def ngram_set(tokens: Sequence[str], n: int) -> set[int]:
    """Hashes of the word n-grams (one gram of the whole text if it is shorter than n; empty if no words)."""
    if not tokens:
        return set()
    if len(tokens) < n:
        return {hash(tuple(tokens))}
    return {hash(tuple(tokens[i : i + n])) for i in range(len(tokens) - n + 1)}


@dataclass(frozen=True)
class Text:
    dataset: str  # set name (eval) or "train"
    index: int  # extra_info.index for verl parquet, else 0-based row position
    position: int  # 0-based row position in its file
    text: str
    source: str  # file it came from


@dataclass(frozen=True)
class Overlap:
    train: Text
    eval: Text
    shared: int
    train_ngrams: int
    eval_ngrams: int

    @property
    def score(self) -> float:
        return self.shared / max(1, min(self.train_ngrams, self.eval_ngrams))


def _text_of(row: dict[str, Any]) -> str | None:
    ei = row.get("extra_info")
    if isinstance(ei, dict) and isinstance(ei.get("problem"), str) and ei["problem"].strip():
        return ei["problem"]
    prompt = row.get("prompt")
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    for key in ("problem", "question"):
        if isinstance(row.get(key), str) and row[key].strip():
            return row[key]
    return None


def _index_of(row: dict[str, Any], position: int) -> int:
    ei = row.get("extra_info")
    index = ei.get("index") if isinstance(ei, dict) else None
    return index if isinstance(index, int) and not isinstance(index, bool) else position


def _no_text(where: str) -> DataPrepError:
    return DataPrepError(f"{where}: field 'problem': no problem text (extra_info.problem, prompt, problem or question)")


# --------------------------------------------------------------------------------------
# Which files are evaluation data
# --------------------------------------------------------------------------------------


def training_set_reason(path: Path) -> str | None:
    """Why ``path`` holds training rows rather than evaluation rows, or None (judged from its first row group)."""
    if path.suffix.lower() != ".parquet":
        return None
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        columns = [c for c in ("data_source",) if c in schema.names]
        if "extra_info" in schema.names:
            info = schema.field("extra_info").type
            if pa.types.is_struct(info) and info.get_field_index("split") >= 0:
                columns.append("extra_info.split")
        if not columns or pf.metadata.num_row_groups == 0:
            return None
        table = pf.read_row_group(0, columns=columns)
    except (pa.ArrowException, OSError):
        return None  # unreadable: reading it as evaluation data will say why
    if "data_source" in table.column_names and data_sets.TRAINING.data_source in table.column("data_source").to_pylist():
        return f"data_source {data_sets.TRAINING.data_source!r}"
    if "extra_info" in table.column_names:
        if any(isinstance(x, dict) and x.get("split") == "train" for x in table.column("extra_info").to_pylist()):
            return "extra_info.split 'train'"
    return None


def _is_saved_dataset(p: Path) -> bool:
    return (p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists()


def expand_paths(items: Iterable[str | Path], exclude: Iterable[str | Path] = (), flag: str = "--eval") -> list[Path]:
    """The evaluation files named by ``items`` (files or folders), without training data (see the module docstring)."""
    own = {Path(e).resolve() for e in exclude if e}
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir() and not _is_saved_dataset(p):
            for f in sorted(p.iterdir()):
                if f.name.startswith(".") or f.suffix not in (".parquet", ".jsonl", ".json") or f.name.endswith(SIDE_FILE_SUFFIXES):
                    continue
                reason = "this run's own input or output" if f.resolve() in own else training_set_reason(f)
                if reason:
                    logger.info("decontamination: skipping %s (%s: not evaluation data)", f, reason)
                    continue
                paths.append(f)
        elif p.exists():
            reason = "this run's own input or output" if p.resolve() in own else training_set_reason(p)
            if reason:
                raise DataPrepError(f"{flag} {p}: holds training rows ({reason}), not evaluation rows")
            paths.append(p)
        else:
            raise DataPrepError(f"{flag} {p}: no such file or folder")
    return paths


def load_texts(path: str | Path, default_name: str | None = None) -> list[Text]:
    """Problem texts of one evaluation file (verl parquet or raw rows)."""
    p = Path(path)
    name = default_name or p.stem
    out = []
    for sr in iter_source_rows(p, hint="evaluation file"):
        if sr.data is None:
            raise DataPrepError(f"{p}:row {sr.rownum}: {sr.error}")
        row = sr.data
        text = _text_of(row)
        if text is None:
            raise _no_text(f"{p}:row {sr.rownum}")
        ei = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
        dataset = ei.get("dataset") or name
        out.append(Text(str(dataset), _index_of(row, sr.position), sr.position, text, str(p)))
    return out


def load_eval_texts(items: Iterable[str | Path], exclude: Iterable[str | Path] = (), flag: str = "--eval",
                    paths: Sequence[Path] | None = None) -> list[Text]:
    """The problem texts of the evaluation files named by ``items`` (``paths``: those files, when already expanded)."""
    items = list(items)
    texts: list[Text] = []
    for p in expand_paths(items, exclude, flag) if paths is None else paths:
        texts.extend(load_texts(p))
    if not texts:
        raise DataPrepError(
            f"{flag} {' '.join(map(str, items))}: no evaluation rows found (write them first with python -m data_prep.eval_sets)"
        )
    return texts


# --------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------


class EvalIndex:
    """Evaluation n-grams -> the evaluation texts holding them."""

    def __init__(self, evals: Sequence[Text], n: int = DEFAULT_N):
        if n < 1:
            raise DataPrepError(f"n-gram size {n}: must be >= 1")
        self.evals, self.n = list(evals), n
        self._index: dict[int, list[int]] = defaultdict(list)
        self._sizes: list[int] = []
        for j, e in enumerate(self.evals):
            grams = ngram_set(normalise(e.text), n)
            self._sizes.append(len(grams))
            for g in grams:
                self._index[g].append(j)

    def overlaps(self, train: Text, min_score: float = 0.0) -> list[Overlap]:
        """Pairs of ``train`` with every evaluation text sharing an n-gram and scoring >= min_score, in eval order."""
        grams = ngram_set(normalise(train.text), self.n)
        counts: dict[int, int] = defaultdict(int)
        for g in grams:
            for j in self._index.get(g, ()):
                counts[j] += 1
        out = []
        for j in sorted(counts):
            ov = Overlap(train=train, eval=self.evals[j], shared=counts[j], train_ngrams=len(grams), eval_ngrams=self._sizes[j])
            if ov.score >= min_score:
                out.append(ov)
        return out


def find_overlaps(train: Sequence[Text], evals: Sequence[Text], n: int = DEFAULT_N, min_score: float = 0.0) -> list[Overlap]:
    """All (train, eval) pairs sharing at least one n-gram with score >= min_score, by train then eval order."""
    index = EvalIndex(evals, n)
    return [o for t in train for o in index.overlaps(t, min_score)]


def contaminated_positions(overlaps: Sequence[Overlap], threshold: float) -> dict[int, Overlap]:
    """train position -> its highest-scoring contaminated overlap (the first one on ties)."""
    best: dict[int, Overlap] = {}
    for o in overlaps:
        if o.score >= threshold:
            cur = best.get(o.train.position)
            if cur is None or o.score > cur.score:
                best[o.train.position] = o
    return best


REPORT_HEADER = [
    "train_position",
    "train_index",
    "eval_set",
    "eval_index",
    "score",
    "shared_ngrams",
    "train_ngrams",
    "eval_ngrams",
    "contaminated",
    "train_problem",
    "eval_problem",
]


def _snippet(s: str, k: int = 160) -> str:
    s = " ".join(s.split())
    return s if len(s) <= k else s[: k - 3] + "..."


class Screen:
    """Checks training rows against an :class:`EvalIndex` as they stream; writes the report and the dropped rows.

    The conversion (:func:`data_prep.convert.convert`) calls :meth:`open` with its outputs, then :meth:`keep`
    for every valid row: False means the row overlaps an evaluation problem and ``drop`` is set.
    """

    def __init__(self, index: EvalIndex, threshold: float = DEFAULT_THRESHOLD, drop: bool = False,
                 min_score: float = 0.0, label: str = "train", eval_flag: str = "--eval"):
        self.index, self.threshold, self.drop, self.min_score, self.label = index, threshold, drop, min_score, label
        self.eval_flag = eval_flag
        self.pairs = self.flagged = self.dropped = self.rows = 0
        self._report = self._dropped = None

    def inputs(self) -> list[tuple[str, Path]]:
        """The evaluation files this screen read, as ``(flag, path)``: no output may overwrite them."""
        return [(self.eval_flag, Path(p)) for p in dict.fromkeys(e.source for e in self.index.evals)]

    def open(self, outputs: Outputs, out_dir: Path, name: str, flag: str = "--out") -> None:
        self.open_files(outputs, out_dir / f"{name}{REPORT_SUFFIX}", out_dir / f"{name}{CONTAMINATED_SUFFIX}", flag, flag)

    def open_files(self, outputs: Outputs, report: Path, dropped: Path | None, report_flag: str, dropped_flag: str) -> None:
        self.report_path, self.dropped_path = report, dropped
        self._report = outputs.csv(report, report_flag, REPORT_HEADER)
        self._dropped = outputs.jsonl(dropped, dropped_flag) if dropped is not None else None

    def keep(self, position: int, row: dict[str, Any]) -> bool:
        text = _text_of(row)
        if text is None:
            raise _no_text(f"{self.label}:row {position + 1}")
        self.rows += 1
        overlaps = self.index.overlaps(Text("train", _index_of(row, position), position, text, self.label), self.min_score)
        for o in overlaps:
            self.pairs += 1
            self._report.write([o.train.position, o.train.index, o.eval.dataset, o.eval.index, f"{o.score:.4f}", o.shared,
                                o.train_ngrams, o.eval_ngrams, "true" if o.score >= self.threshold else "false",
                                _snippet(o.train.text), _snippet(o.eval.text)])
        best = contaminated_positions(overlaps, self.threshold).get(position)
        if best is None:
            return True
        self.flagged += 1
        if not self.drop:
            return True
        self.dropped += 1
        self._dropped.write({"position": position, "index": best.train.index, "score": round(best.score, 4),
                             "eval_set": best.eval.dataset, "eval_index": best.eval.index,
                             "problem": best.train.text, "eval_problem": best.eval.text})
        return False

    def summary(self) -> str:
        return (f"{self.pairs} overlapping pair(s); {self.flagged} of {self.rows} training rows with score >= {self.threshold}"
                f" (n={self.index.n}, {len(self.index.evals)} evaluation rows)")


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _screen_file(train: Path, screen: Screen, outputs: Outputs, out: Path | None) -> None:
    """Stream ``train`` through ``screen``; with ``out``, write the rows it keeps (parquet -> parquet, jsonl -> jsonl)."""
    if out is not None and train.suffix.lower() == ".parquet":
        try:
            pf = pq.ParquetFile(train)
        except (pa.ArrowException, OSError) as e:
            raise DataPrepError(f"--train {train}: not a readable parquet file ({str(e).splitlines()[0]})") from None
        sink = outputs.parquet(out, "--out", pf.schema_arrow)
        position = 0
        for batch in pf.iter_batches(batch_size=1024):
            mask = [screen.keep(position + i, r) for i, r in enumerate(batch.to_pylist())]
            position += batch.num_rows
            sink.write_table(pa.Table.from_batches([batch]).filter(pa.array(mask, pa.bool_())))
        return
    sink = outputs.jsonl(out, "--out", optional=False) if out is not None else None
    for sr in iter_source_rows(train, hint="--train"):
        if sr.data is None:
            raise DataPrepError(f"{train}:row {sr.rownum}: {sr.error}")
        if screen.keep(sr.position, sr.data) and sink is not None:
            sink.write_raw(sr.raw)


def decontaminate(args: argparse.Namespace) -> None:
    train = Path(args.train)
    if not train.exists():
        raise DataPrepError(f"--train {train}: no such file or folder")
    out = None
    if args.drop_contaminated:
        out = output_file(args.out, "--out")
        kind = train.suffix.lower()
        if kind not in (".parquet", ".jsonl") or out.suffix.lower() != kind:
            raise DataPrepError(f"--out {out}: must be a file of the same type as --train ({train.name}: .parquet or .jsonl)")
    report = output_file(args.report, "--report")
    dropped = out.with_name(out.stem + CONTAMINATED_SUFFIX) if out is not None else None
    eval_files = expand_paths(args.eval, exclude=[train], flag="--eval")
    with Outputs([("--train", train), *(("--eval", p) for p in eval_files)]) as outputs:
        # every output is checked against every input and the other outputs before the evaluation sets are read
        planned = [(flag, path) for flag, path in (("--report", report), ("--out", out), ("--out", dropped)) if path]
        for i, (flag, path) in enumerate(planned):
            outputs.check(path, flag)
            for other_flag, other in planned[:i]:
                if same_file(path, other):
                    raise DataPrepError(f"{flag} {path}: same file as {other_flag} {other}, also written by this run: "
                                        "give another path")
        evals = load_eval_texts(args.eval, flag="--eval", paths=eval_files)
        screen = Screen(EvalIndex(evals, args.n), args.threshold, args.drop_contaminated, args.min_score, label=str(train))
        screen.open_files(outputs, report, dropped, "--report", "--out")
        _screen_file(train, screen, outputs, out)
        if out is not None and screen.rows and screen.dropped == screen.rows:
            raise DataPrepError(
                f"--out {out}: all {screen.rows} training rows overlap evaluation problems (score >= {args.threshold}); "
                "nothing written (without --drop-contaminated only the --report is written)")
        outputs.commit()
    print(screen.summary())
    print(f"report: {report}")
    if out is not None:
        print(f"dropped {screen.dropped} row(s) (listed in {dropped}); wrote {screen.rows - screen.dropped} rows to {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_prep.decontaminate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True, help="training parquet (data_prep output) or raw jsonl/parquet")
    ap.add_argument("--eval", required=True, nargs="+", help="evaluation parquet/jsonl files or folders")
    ap.add_argument("--report", required=True, help="CSV report of overlapping pairs")
    ap.add_argument("--n", type=argtypes.integer(), default=DEFAULT_N, help="word n-gram size (default 13)")
    ap.add_argument("--threshold", type=argtypes.real(high=1, low_open=False), default=DEFAULT_THRESHOLD, help="score >= this is contaminated")
    ap.add_argument("--min-score", type=argtypes.real(high=1, low_open=False), default=0.0, help="only report pairs with score >= this")
    ap.add_argument("--drop-contaminated", action="store_true", help="write the training rows without contaminated ones")
    ap.add_argument("--out", default=None, help="cleaned file, same type as --train (with --drop-contaminated)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    if args.drop_contaminated and not args.out:
        ap.error("--drop-contaminated needs --out CLEAN.parquet")
    if args.out and not args.drop_contaminated:
        ap.error("--out needs --drop-contaminated (without it no row is removed and only --report is written)")
    return run(decontaminate, args)


if __name__ == "__main__":
    sys.exit(main())
