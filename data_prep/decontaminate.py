"""Word n-gram overlap between training problems and evaluation problems.

Texts are normalised (lowercase; LaTeX spacing, ``\\left``/``\\right``, ``$`` and punctuation removed; ``\\dfrac``/
``\\tfrac`` -> ``frac``, ``\\dbinom`` -> ``binom``) and split into words, then into the set of their word n-grams (a
text of fewer than n words: one gram of the whole text).  A (train, eval) pair scores shared n-grams / min(#train
n-grams, #eval n-grams), 1.0 when one problem contains the other; a score >= threshold is "contaminated", and the
report lists every pair scoring >= --min-score.  Evaluation n-grams are indexed once and the training rows stream
past it, so the cost is linear and memory holds only the evaluation side.

Inputs: data_prep's verl parquet (``extra_info.problem``, else the last user message) or raw jsonl/json/parquet with a
``problem``/``question`` column.  A folder means its ``*.parquet``/``*.jsonl``/``*.json`` files except hidden files,
data_prep's side files, the ``--train`` file and training sets (``extra_info.split == 'train'`` or the Open-RS
``data_source``), so ``--eval data/`` may hold the previous ``open_rs.parquet``; naming such a file is an error.
No output may be an input or another output, and a run that would drop every training row writes nothing.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cwgrpo_verl import argtypes, data_sets
from data_prep.common import DataPrepError, parse_args, run
from data_prep.output import CONTAMINATED_SUFFIX, SIDE_FILE_SUFFIXES, Outputs, output_file
from data_prep.sources import iter_source_rows, parquet_file

logger = logging.getLogger("data_prep.decontaminate")

DEFAULT_N = 13
DEFAULT_THRESHOLD = 0.5
SCORE = argtypes.real(high=1, low_open=False)  #: a score on the command line: a number in [0, 1]
REPORT_HEADER = ["train_position", "train_index", "eval_set", "eval_index", "score", "shared_ngrams", "train_ngrams",
                 "eval_ngrams", "contaminated", "train_problem", "eval_problem"]

_LATEX_DROP = re.compile(
    r"\\(left|right|big|Big|bigg|Bigg|quad|qquad|displaystyle|textstyle|mathrm|text|mbox)\b|\\[,;:! ]")
_LATEX_RENAME = ((re.compile(r"\\[dt]frac\b"), " frac "), (re.compile(r"\\dbinom\b"), " binom "))
_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> list[str]:
    """Lowercased word tokens with LaTeX spacing/markup and punctuation removed."""
    for pat, rep in _LATEX_RENAME:
        text = pat.sub(rep, text)
    return _NON_WORD.sub(" ", _LATEX_DROP.sub(" ", text).lower()).split()


def ngram_set(tokens: Sequence[str], n: int) -> set[int]:
    """Hashes of the word n-grams (one gram of the whole text if it is shorter than n; empty if no words)."""
    if len(tokens) < n:
        return {hash(tuple(tokens))} if tokens else set()
    return {hash(tuple(tokens[i : i + n])) for i in range(len(tokens) - n + 1)}


@dataclass(frozen=True)
class Text:
    dataset: str  # eval: extra_info.dataset, else the file's stem; "train"
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


def _row_text(row: dict[str, Any], position: int, source: str, where: str, dataset: str | None = None) -> Text:
    """A verl row's ``extra_info.problem`` (else its last user message), or a raw row's problem/question."""
    ei = row["extra_info"] if isinstance(row.get("extra_info"), dict) else {}
    prompt = row["prompt"] if isinstance(row.get("prompt"), list) else []
    users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    if isinstance(ei.get("problem"), str) and ei["problem"].strip():
        text = ei["problem"]
    elif users and isinstance(users[-1], str):
        text = users[-1]
    else:
        text = next((row[k] for k in ("problem", "question") if isinstance(row.get(k), str) and row[k].strip()), None)
    if text is None:
        raise DataPrepError(f"{where}: field 'problem': no problem text (extra_info.problem, prompt, problem or "
                            "question)")
    index = ei.get("index")
    index = index if isinstance(index, int) and not isinstance(index, bool) else position
    return Text(dataset or str(ei.get("dataset") or Path(source).stem), index, position, text, source)


def training_set_reason(path: Path, own: Collection[Path] = ()) -> str | None:
    """Why ``path`` holds training rows rather than evaluation rows, or None: it is one of ``own`` (this run's
    input and outputs, resolved), or its first row group says so."""
    if path.resolve() in own:
        return "this run's own input or output"
    if path.suffix.lower() != ".parquet":
        return None
    try:
        pf = pq.ParquetFile(path)
        columns = [c for c in ("data_source", "extra_info") if c in pf.schema_arrow.names]
        rows = pf.read_row_group(0, columns=columns).to_pylist() if columns and pf.metadata.num_row_groups else []
    except (pa.ArrowException, OSError):
        return None  # unreadable: reading it as evaluation data will say why
    if any(r.get("data_source") == data_sets.TRAINING.data_source for r in rows):
        return f"data_source {data_sets.TRAINING.data_source!r}"
    if any(isinstance(r.get("extra_info"), dict) and r["extra_info"].get("split") == "train" for r in rows):
        return "extra_info.split 'train'"
    return None


def expand_paths(items: Iterable[str | Path], exclude: Iterable[str | Path] = (), flag: str = "--eval") -> list[Path]:
    """The evaluation files named by ``items`` (files or folders), without training data (see the module docstring)."""
    own = {Path(e).resolve() for e in exclude}
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir() and not ((p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists()):
            for f in sorted(p.iterdir()):
                if f.name.startswith(".") or f.suffix not in (".parquet", ".jsonl", ".json") \
                        or f.name.endswith(SIDE_FILE_SUFFIXES):
                    continue
                if reason := training_set_reason(f, own):
                    logger.info("decontamination: skipping %s (%s: not evaluation data)", f, reason)
                else:
                    paths.append(f)
        elif not p.exists():
            raise DataPrepError(f"{flag} {p}: no such file or folder")
        elif reason := training_set_reason(p, own):
            raise DataPrepError(f"{flag} {p}: holds training rows ({reason}), not evaluation rows")
        else:
            paths.append(p)
    return paths


def load_eval_texts(items: Iterable[str | Path], exclude: Iterable[str | Path] = (), flag: str = "--eval",
                    paths: Sequence[Path] | None = None) -> list[Text]:
    """The problem texts of the evaluation files named by ``items`` (``paths``: those files, when already expanded)."""
    items = list(items)
    texts: list[Text] = []
    for p in expand_paths(items, exclude, flag) if paths is None else paths:
        for sr in iter_source_rows(p, hint="evaluation file"):
            if sr.data is None:
                raise DataPrepError(f"{p}:row {sr.rownum}: {sr.error}")
            texts.append(_row_text(sr.data, sr.position, str(p), f"{p}:row {sr.rownum}"))
    if not texts:
        raise DataPrepError(f"{flag} {' '.join(map(str, items))}: no evaluation rows found "
                            "(write them first with python -m data_prep.eval_sets)")
    return texts


class EvalIndex:
    """Evaluation n-grams -> the evaluation texts holding them."""

    def __init__(self, evals: Sequence[Text], n: int = DEFAULT_N):
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
        counts = Counter(j for g in grams for j in self._index.get(g, ()))
        pairs = (Overlap(train, self.evals[j], counts[j], len(grams), self._sizes[j]) for j in sorted(counts))
        return [o for o in pairs if o.score >= min_score]


def find_overlaps(train: Sequence[Text], evals: Sequence[Text], n: int = DEFAULT_N,
                  min_score: float = 0.0) -> list[Overlap]:
    """All (train, eval) pairs sharing at least one n-gram with score >= min_score, by train then eval order."""
    index = EvalIndex(evals, n)
    return [o for t in train for o in index.overlaps(t, min_score)]


def contaminated_positions(overlaps: Sequence[Overlap], threshold: float) -> dict[int, Overlap]:
    """train position -> its highest-scoring contaminated overlap (the first one on ties)."""
    best: dict[int, Overlap] = {}
    for o in overlaps:
        if o.score >= threshold and (o.train.position not in best or o.score > best[o.train.position].score):
            best[o.train.position] = o
    return best


def _snippet(s: str, k: int = 160) -> str:
    s = " ".join(s.split())
    return s if len(s) <= k else s[: k - 3] + "..."


class Screen:
    """Checks training rows against an :class:`EvalIndex` as they stream: :meth:`keep` is False for a row that
    overlaps an evaluation problem when ``drop`` is set.  Writes each pair to ``report_rows`` and each dropped row
    to ``dropped_rows`` (output targets, set by the caller).  A row's position is the number of rows before it."""

    def __init__(self, index: EvalIndex, threshold: float = DEFAULT_THRESHOLD, drop: bool = False,
                 min_score: float = 0.0, label: str = "train", eval_flag: str = "--eval"):
        self.index, self.threshold, self.drop, self.min_score, self.label = index, threshold, drop, min_score, label
        self.pairs = self.flagged = self.dropped = self.rows = 0
        self.report_rows = self.dropped_rows = None
        #: the evaluation files read, as ``(flag, path)``: no output may overwrite them
        self.inputs = [(eval_flag, Path(p)) for p in dict.fromkeys(e.source for e in index.evals)]

    def keep(self, row: dict[str, Any]) -> bool:
        position = self.rows
        train = _row_text(row, position, self.label, f"{self.label}:row {position + 1}", "train")
        self.rows += 1
        overlaps = self.index.overlaps(train, self.min_score)
        self.pairs += len(overlaps)
        for o in overlaps:
            self.report_rows.write_csv([o.train.position, o.train.index, o.eval.dataset, o.eval.index,
                                        f"{o.score:.4f}", o.shared, o.train_ngrams, o.eval_ngrams,
                                        str(o.score >= self.threshold).lower(), _snippet(o.train.text),
                                        _snippet(o.eval.text)])
        best = contaminated_positions(overlaps, self.threshold).get(position)
        self.flagged += best is not None
        if best is None or not self.drop:
            return True
        self.dropped += 1
        self.dropped_rows.write({"position": position, "index": best.train.index, "score": round(best.score, 4),
                                 "eval_set": best.eval.dataset, "eval_index": best.eval.index,
                                 "problem": best.train.text, "eval_problem": best.eval.text})
        return False

    def summary(self) -> str:
        return (f"{self.pairs} overlapping pair(s); {self.flagged} of {self.rows} training rows with score >= "
                f"{self.threshold} (n={self.index.n}, {len(self.index.evals)} evaluation rows)")


def decontaminate(args: argparse.Namespace) -> None:
    train = Path(args.train)
    if not train.exists():
        raise DataPrepError(f"--train {train}: no such file or folder")
    out = dropped = None
    if args.drop_contaminated:
        out = output_file(args.out, "--out")
        kind = train.suffix.lower()
        if kind not in (".parquet", ".jsonl") or out.suffix.lower() != kind:
            raise DataPrepError(f"--out {out}: must be a file of the same type as --train ({train.name}: .parquet "
                                "or .jsonl)")
        dropped = out.with_name(out.stem + CONTAMINATED_SUFFIX)
    report = output_file(args.report, "--report")
    eval_files = expand_paths(args.eval, exclude=[train])
    with Outputs([("--train", train), *(("--eval", p) for p in eval_files)]) as outputs:
        # every output is checked against every input and the other outputs before the evaluation sets are read
        report_rows = outputs.open(report, "--report", header=REPORT_HEADER)
        kept = dropped_rows = None
        if out is not None:
            kept, dropped_rows = outputs.open(out, "--out"), outputs.open(dropped, "--out", optional=True)
        evals = load_eval_texts(args.eval, paths=eval_files)
        screen = Screen(EvalIndex(evals, args.n), args.threshold, args.drop_contaminated, args.min_score, str(train))
        screen.report_rows, screen.dropped_rows = report_rows, dropped_rows
        if kept is not None and train.suffix.lower() == ".parquet":  # parquet -> parquet, batch by batch
            pf = parquet_file(train, "--train")
            kept.write_table(pf.schema_arrow.empty_table())
            for batch in pf.iter_batches(batch_size=1024):
                mask = [screen.keep(r) for r in batch.to_pylist()]
                kept.write_table(pa.Table.from_batches([batch]).filter(pa.array(mask, pa.bool_())))
        else:  # a jsonl file's kept lines are copied byte for byte
            for sr in iter_source_rows(train, hint="--train"):
                if sr.data is None:
                    raise DataPrepError(f"{train}:row {sr.rownum}: {sr.error}")
                if screen.keep(sr.data) and kept is not None:
                    kept.write_raw(sr.raw)
        if out is not None and screen.rows and screen.dropped == screen.rows:
            raise DataPrepError(f"--out {out}: all {screen.rows} training rows overlap evaluation problems (score >= "
                                f"{args.threshold}); nothing written (without --drop-contaminated only the --report "
                                "is written)")
        outputs.commit()
    print(screen.summary())
    print(f"report: {report}")
    if out is not None:
        print(f"dropped {screen.dropped} row(s) (listed in {dropped}); wrote {screen.rows - screen.dropped} rows to "
              f"{out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_prep.decontaminate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True, help="training parquet (data_prep output) or raw jsonl/parquet")
    ap.add_argument("--eval", required=True, nargs="+", help="evaluation parquet/jsonl files or folders")
    ap.add_argument("--report", required=True, help="CSV report of overlapping pairs")
    ap.add_argument("--n", type=argtypes.integer(), default=DEFAULT_N, help="word n-gram size (default 13)")
    ap.add_argument("--threshold", type=SCORE, default=DEFAULT_THRESHOLD, help="score >= this is contaminated")
    ap.add_argument("--min-score", type=SCORE, default=0.0, help="only report pairs with score >= this")
    ap.add_argument("--drop-contaminated", action="store_true",
                    help="write the training rows without contaminated ones")
    ap.add_argument("--out", default=None, help="cleaned file, same type as --train (with --drop-contaminated)")
    args = parse_args(ap, argv)
    if args.drop_contaminated and not args.out:
        ap.error("--drop-contaminated needs --out CLEAN.parquet")
    if args.out and not args.drop_contaminated:
        ap.error("--out needs --drop-contaminated (without it no row is removed and only --report is written)")
    return run(decontaminate, args)


if __name__ == "__main__":
    sys.exit(main())
