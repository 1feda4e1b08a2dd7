"""Word n-gram overlap between training problems and evaluation problems.

    python -m data_prep.decontaminate --train X.parquet --eval DIR_OR_FILES... --report out.csv
                                      [--n 13] [--threshold 0.5] [--min-score 0]
                                      [--drop-contaminated --out CLEAN.parquet]

Texts are normalised (lowercase; LaTeX spacing commands, ``\\left``/``\\right``, ``$`` and all punctuation
removed; ``\\dfrac``/``\\tfrac`` -> ``frac``, ``\\dbinom`` -> ``binom``) and split into words.  Each text
becomes the set of its word n-grams (a text with fewer than n words becomes one "n-gram": the whole
text, so short problems only match texts with the same words).  Evaluation n-grams go into an inverted
index; each training text is looked up gram by gram, so the cost is linear in the total number of
n-grams (no all-pairs string comparison).

Score of a (train, eval) pair = shared n-grams / min(#train n-grams, #eval n-grams) (overlap
coefficient): 1.0 when one problem is contained in the other.  Pairs with score >= threshold are
"contaminated".  The report lists every pair with score >= --min-score (default: any shared n-gram).

Inputs: verl parquet files written by data_prep (problem text from ``extra_info.problem``, else the
last user message), or raw jsonl/json/parquet files with a ``problem``/``question`` column
(e.g. shared/data).  A folder means every ``*.parquet``/``*.jsonl``/``*.json`` in it (sorted by name,
``*.rejects.jsonl``/``*.contaminated.jsonl`` excluded).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_prep.common import (
    iter_source_rows,
    read_parquet_rows,
    setup_logging,
    write_csv_atomic,
    write_jsonl_atomic,
    write_parquet_atomic,
)

logger = logging.getLogger("data_prep.decontaminate")

DEFAULT_N = 13
DEFAULT_THRESHOLD = 0.5

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


def load_texts(path: str | Path, default_name: str | None = None) -> list[Text]:
    """Problem texts of one file (verl parquet or raw rows).  Rows without text raise ValueError."""
    p = Path(path)
    name = default_name or p.stem
    out = []
    for sr in iter_source_rows(p):
        if sr.data is None:
            raise ValueError(f"{p}:row {sr.rownum}: {sr.error}")
        row = sr.data
        text = _text_of(row)
        if text is None:
            raise ValueError(f"{p}:row {sr.rownum}: field 'problem': no problem text (extra_info.problem, prompt, problem, question)")
        ei = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
        index = ei.get("index") if isinstance(ei.get("index"), int) else sr.rownum - 1
        dataset = ei.get("dataset") or name
        out.append(Text(dataset=str(dataset), index=int(index), position=sr.rownum - 1, text=text, source=str(p)))
    return out


def expand_paths(items: Iterable[str | Path]) -> list[Path]:
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir() and not (p / "dataset_info.json").exists() and not (p / "dataset_dict.json").exists():
            for f in sorted(p.iterdir()):
                if f.suffix in (".parquet", ".jsonl", ".json") and not f.name.endswith(
                    (".rejects.jsonl", ".contaminated.jsonl")
                ) and not f.name.startswith("."):
                    paths.append(f)
        elif p.exists():
            paths.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return paths


def load_eval_texts(items: Iterable[str | Path]) -> list[Text]:
    texts: list[Text] = []
    for p in expand_paths(items):
        texts.extend(load_texts(p))
    return texts


def find_overlaps(train: Sequence[Text], evals: Sequence[Text], n: int = DEFAULT_N, min_score: float = 0.0) -> list[Overlap]:
    """All (train, eval) pairs sharing at least one n-gram with score >= min_score.

    Deterministic order: by train position, then eval position in ``evals``."""
    if n < 1:
        raise ValueError("n must be >= 1")
    index: dict[int, list[int]] = defaultdict(list)
    eval_sizes = []
    for j, e in enumerate(evals):
        grams = ngram_set(normalise(e.text), n)
        eval_sizes.append(len(grams))
        for g in grams:
            index[g].append(j)
    out: list[Overlap] = []
    for t in train:
        grams = ngram_set(normalise(t.text), n)
        counts: dict[int, int] = defaultdict(int)
        for g in grams:
            hits = index.get(g)
            if hits:
                for j in hits:
                    counts[j] += 1
        for j in sorted(counts):
            ov = Overlap(train=t, eval=evals[j], shared=counts[j], train_ngrams=len(grams), eval_ngrams=eval_sizes[j])
            if ov.score >= min_score:
                out.append(ov)
    return out


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


def write_report(path: str | Path, overlaps: Sequence[Overlap], threshold: float) -> None:
    write_csv_atomic(
        Path(path),
        REPORT_HEADER,
        (
            [
                o.train.position,
                o.train.index,
                o.eval.dataset,
                o.eval.index,
                f"{o.score:.4f}",
                o.shared,
                o.train_ngrams,
                o.eval_ngrams,
                "true" if o.score >= threshold else "false",
                _snippet(o.train.text),
                _snippet(o.eval.text),
            ]
            for o in overlaps
        ),
    )


def contaminated_positions(overlaps: Sequence[Overlap], threshold: float) -> dict[int, Overlap]:
    """train position -> its highest-scoring contaminated overlap."""
    best: dict[int, Overlap] = {}
    for o in overlaps:
        if o.score >= threshold:
            cur = best.get(o.train.position)
            if cur is None or o.score > cur.score:
                best[o.train.position] = o
    return best


def decontaminate_rows(
    rows: list[dict[str, Any]],
    eval_items: Iterable[str | Path],
    n: int = DEFAULT_N,
    threshold: float = DEFAULT_THRESHOLD,
    min_score: float = 0.0,
    source_label: str = "train",
) -> tuple[list[Overlap], dict[int, Overlap]]:
    """Overlaps of verl ``rows`` (positions = list positions) against evaluation files."""
    train = []
    for i, r in enumerate(rows):
        text = _text_of(r)
        if text is None:
            raise ValueError(f"{source_label}:row {i + 1}: field 'problem': no problem text")
        ei = r.get("extra_info") or {}
        train.append(Text("train", int(ei.get("index", i)), i, text, source_label))
    evals = load_eval_texts(eval_items)
    if not evals:
        raise ValueError(f"no evaluation rows found in {list(map(str, eval_items))}")
    t0 = time.perf_counter()
    overlaps = find_overlaps(train, evals, n=n, min_score=min_score)
    bad = contaminated_positions(overlaps, threshold)
    logger.info(
        "decontamination: %d train x %d eval rows, n=%d: %d overlapping pair(s), %d train row(s) with score >= %.2f (%.2fs)",
        len(train),
        len(evals),
        n,
        len(overlaps),
        len(bad),
        threshold,
        time.perf_counter() - t0,
    )
    return overlaps, bad


def dropped_records(rows: list[dict[str, Any]], bad: dict[int, Overlap]) -> list[dict[str, Any]]:
    return [
        {
            "position": pos,
            "index": o.train.index,
            "score": round(o.score, 4),
            "eval_set": o.eval.dataset,
            "eval_index": o.eval.index,
            "problem": o.train.text,
            "eval_problem": o.eval.text,
        }
        for pos, o in sorted(bad.items())
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_prep.decontaminate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True, help="training parquet (data_prep output) or raw jsonl/parquet")
    ap.add_argument("--eval", required=True, nargs="+", help="evaluation parquet/jsonl files or folders")
    ap.add_argument("--report", required=True, help="CSV report of overlapping pairs")
    ap.add_argument("--n", type=int, default=DEFAULT_N, help="word n-gram size (default 13)")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="score >= this is contaminated")
    ap.add_argument("--min-score", type=float, default=0.0, help="only report pairs with score >= this")
    ap.add_argument("--drop-contaminated", action="store_true", help="write the training rows without contaminated ones")
    ap.add_argument("--out", default=None, help="cleaned parquet (with --drop-contaminated)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    if args.drop_contaminated and not args.out:
        ap.error("--drop-contaminated needs --out CLEAN.parquet")

    train_path = Path(args.train)
    try:
        if train_path.suffix == ".parquet":
            rows = read_parquet_rows(train_path)
        else:
            rows = []
            for sr in iter_source_rows(train_path):
                if sr.data is None:
                    raise ValueError(f"{train_path}:row {sr.rownum}: {sr.error}")
                rows.append(sr.data)
        overlaps, bad = decontaminate_rows(
            rows, args.eval, n=args.n, threshold=args.threshold, min_score=args.min_score, source_label=str(train_path)
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    write_report(args.report, overlaps, args.threshold)
    print(f"{len(overlaps)} overlapping pair(s); {len(bad)} of {len(rows)} training rows with score >= {args.threshold}")
    print(f"report: {args.report}")
    if args.drop_contaminated:
        out = Path(args.out)
        if out.suffix != ".parquet":
            print("error: --out must be a .parquet file", file=sys.stderr)
            return 1
        kept = [r for i, r in enumerate(rows) if i not in bad]
        if "data_source" in (rows[0] if rows else {}):
            write_parquet_atomic(out, kept)
        else:  # raw rows: keep their own schema
            import pyarrow as pa
            import pyarrow.parquet as pq
            import io

            buf = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(kept), buf)
            from data_prep.common import _atomic_write_bytes

            _atomic_write_bytes(out, buf.getvalue())
        dropped = out.with_name(out.stem + ".contaminated.jsonl")
        write_jsonl_atomic(dropped, dropped_records(rows, bad))
        print(f"dropped {len(bad)} row(s) (listed in {dropped}); wrote {len(kept)} rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
