"""Shared helpers for the data preparation scripts.

Everything that turns a source row (Hugging Face hub, local jsonl/json/parquet file or a
``Dataset.save_to_disk`` folder) into a verl RL parquet row lives here:

* loading (:func:`iter_source_rows`), keeping the source order and the source's own value types;
* per-set prompt field and gold answer (:func:`problem_for`, :func:`ground_truth_for`);
* prompts (the paper's training system prompt, the lighteval evaluation prompt);
* row validation with ``FILE:row N: field 'X': problem`` messages (N is 1-based: the line of a jsonl file);
* atomic, deterministic parquet / jsonl / csv writing.

Output rows share ONE fixed parquet schema (:data:`PARQUET_SCHEMA`) for every set, so verl can
concatenate several validation files (``data.val_files=[...]``) into one ``RLHFDataset``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger("data_prep")

# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------

#: set name -> verl ``data_source``.  The reward module (cwgrpo_verl/reward.py) is expected to export
#: the same mapping as ``DATA_SOURCES``; these strings are the contract between the two.
DATA_SOURCES: dict[str, str] = {
    "open_rs": "cwgrpo/open_rs",
    "aime24": "cwgrpo/aime24",
    "math500": "cwgrpo/math500",
    "amc23": "cwgrpo/amc23",
    "minerva": "cwgrpo/minerva",
    "olympiadbench": "cwgrpo/olympiadbench",
}

EVAL_SETS: tuple[str, ...] = ("aime24", "math500", "amc23", "minerva", "olympiadbench")

#: default hub sources: set name -> (repo id, split)
HUB_SOURCES: dict[str, tuple[str, str]] = {
    "open_rs": ("knoveleng/open-rs", "train"),
    "aime24": ("HuggingFaceH4/aime_2024", "train"),
    "math500": ("HuggingFaceH4/MATH-500", "test"),
    "amc23": ("knoveleng/AMC-23", "train"),
    "minerva": ("knoveleng/Minerva-Math", "train"),
    "olympiadbench": ("knoveleng/OlympiadBench", "train"),
}

#: file stems used in a ``--source-dir`` (the names of /work/shared/data)
LOCAL_FILE_STEMS: dict[str, str] = {
    "aime24": "aime24",
    "math500": "math500",
    "amc23": "amc23",
    "minerva": "minerva_math",
    "olympiadbench": "olympiadbench",
}

# --------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------

#: The paper's training system prompt (authors' recipes), verbatim.
SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer, and put your final answer within \\boxed{} . The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> "
    "<answer> answer here </answer>. Note that respond by English, NOT use other languages."
)

#: The evaluation query of the authors' lighteval custom tasks (src/open_r1/evaluate.py, MATH_QUERY_TEMPLATE,
#: used for all five math sets): the instruction comes first, then a blank line, then the problem.
#: Chat template on, no system prompt.  Note the two spaces after "clearly.".
EVAL_INSTRUCTION = (
    "Solve the following math problem efficiently and clearly.  The last line of your response should be of "
    "the following format: 'Therefore, the final answer is: $\\boxed{ANSWER}$. I hope it is correct' "
    "(without quotes) where ANSWER is just the final number or expression that solves the problem. "
    "Think step by step before answering."
)

PROMPT_STYLES = ("paper", "none")


def train_messages(problem: str, system_prompt: bool = True) -> list[dict[str, str]]:
    msgs = []
    if system_prompt:
        msgs.append({"role": "system", "content": SYSTEM_PROMPT})
    msgs.append({"role": "user", "content": problem})
    return msgs


def eval_messages(problem: str, style: str = "paper") -> list[dict[str, str]]:
    if style == "paper":
        return [{"role": "user", "content": f"{EVAL_INSTRUCTION}\n\n{problem}"}]
    if style == "none":
        return [{"role": "user", "content": problem}]
    raise ValueError(f"unknown prompt style {style!r}; expected one of {PROMPT_STYLES}")


# --------------------------------------------------------------------------------------
# Answer helpers
# --------------------------------------------------------------------------------------

_BOXED_RE = re.compile(r"\\(boxed|fbox|framebox)\s*")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox``/``\\framebox``, or ``\\boxed 5``) in ``text``.

    Braces are matched with nesting.  Returns None when there is none or it is unbalanced.
    """
    if not isinstance(text, str):
        return None
    matches = list(_BOXED_RE.finditer(text))
    for m in reversed(matches):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                c = text[j]
                if c == "\\":
                    continue
                if c == "{" and (j == 0 or text[j - 1] != "\\"):
                    depth += 1
                elif c == "}" and text[j - 1] != "\\":
                    depth -= 1
                    if depth == 0:
                        content = text[i + 1 : j].strip()
                        return content if content else None
            continue  # unbalanced: try an earlier one
        if m.group(1) == "boxed" and m.group(0).endswith(" "):
            # "\boxed 5" form
            rest = re.match(r"[^\s$.,;]+", text[i:])
            if rest:
                return rest.group(0)
    return None


def format_number(value: float | int) -> str:
    """27.0 -> "27", -1.0 -> "-1", 0.5 -> "0.5" (shortest round-trip repr otherwise)."""
    if isinstance(value, bool):
        raise TypeError("bool is not a number here")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"non-finite number {value!r}")
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


_INT_RE = re.compile(r"^[+-]?\d+$")


def normalise_integer_string(s: str) -> str:
    """"025" -> "25", "-007" -> "-7"; anything that is not a plain integer is returned stripped."""
    s = s.strip()
    if _INT_RE.match(s):
        return str(int(s))
    return s


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


class RowError(Exception):
    """A problem with one field of one source row."""

    def __init__(self, fieldname: str, problem: str):
        super().__init__(f"field '{fieldname}': {problem}")
        self.field = fieldname
        self.problem = problem


def _require_str(row: Mapping[str, Any], key: str) -> str:
    if key not in row or row[key] is None:
        raise RowError(key, "missing")
    v = row[key]
    if not isinstance(v, str):
        raise RowError(key, f"expected a string, got {type(v).__name__}")
    if not v.strip():
        raise RowError(key, "empty string")
    return v


def _opt_str(v: Any) -> str:
    """Metadata value -> string ('' for missing/None), so the parquet schema is the same for every set."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format_number(v) if math.isfinite(v) else repr(v)
    if isinstance(v, (list, tuple)):
        return json.dumps(list(v), ensure_ascii=False)
    return str(v)


def problem_for(set_name: str, row: Mapping[str, Any]) -> tuple[str, str]:
    """(problem text, field name).  OlympiadBench uses ``question``; the others ``problem``
    (falling back to ``question`` for schema variants that only have that)."""
    order = ("question", "problem") if set_name == "olympiadbench" else ("problem", "question")
    for key in order:
        if key in row and row[key] is not None:
            return _require_str(row, key), key
    raise RowError(order[0], "missing")


def ground_truth_for(set_name: str, row: Mapping[str, Any]) -> tuple[str, str, str]:
    """Gold for one source row: ``(ground_truth, answer, gold_field)``.

    ``ground_truth`` (stored in ``reward_model.ground_truth``) is the string the paper's scorer parsed as
    gold -- lighteval's gold field for the evaluation sets, the ``solution`` text for Open-RS (the authors'
    accuracy reward) -- so ``cwgrpo_verl.reward.compute_score`` reproduces the paper's extraction, including
    lighteval's raw-string fallback when no gold can be extracted.  It equals
    ``cwgrpo_verl.reward.gold_from_row`` except for AMC23 (see below).  ``answer`` (stored in
    ``extra_info.answer``) is the bare final answer (no ``$``, no ``\\boxed``) for humans, ``maj@k`` checks and
    self-tests; ``gold_field`` names the source field ``ground_truth`` came from.

    * open_rs: ``solution`` (full text; the authors parsed it with math-verify, first match); answer = its last
      ``\\boxed{}``, else the ``answer`` column.  With an empty/missing solution the ``answer`` column is used
      as ``\\boxed{answer}``; neither -> error.
    * math500, minerva: ``solution`` (lighteval LaTeX gold: its ``\\boxed{}`` is what gets extracted); it must
      contain a ``\\boxed{}``.  MATH-500 without a box falls back to ``\\boxed{answer column}`` (the column
      equals the boxed answer on all 500 real rows).
    * aime24: ``str(answer)`` as given ("025" stays; expression extraction reads 25); answer = "25".
    * amc23: ``answer`` (float 27.0 in the Qwen/knoveleng files) formatted as "27" (0.5 -> "0.5").  lighteval saw
      27.0; under expression extraction with 5-decimal rounding "27" and "27.0" verify identically.
    * olympiadbench: ``final_answer[0]`` as given (often ``$...$``-wrapped, some plain numbers: lighteval kept
      those as raw strings); falls back to the hub-only ``answer`` column, which the authors' task read and
      which mirrors ``final_answer[0]``.  answer = the same without ``$``.
    """
    if set_name in ("open_rs", "math500", "minerva"):
        sol = row.get("solution")
        if sol is not None and not isinstance(sol, str):
            raise RowError("solution", f"expected a string, got {type(sol).__name__}")
        boxed = last_boxed(sol) if sol else None
        if boxed is not None:
            return sol, boxed, "solution"
        if set_name == "minerva":
            if sol is None:
                raise RowError("solution", "missing")
            if not sol.strip():
                raise RowError("solution", "empty string")
            raise RowError("solution", "no \\boxed{} answer in solution")
        ans = row.get("answer")
        if set_name == "open_rs" and sol and sol.strip():
            # the authors' reward parses the solution whatever it contains
            if isinstance(ans, str) and ans.strip():
                return sol, ans.strip(), "solution"
            if isinstance(ans, (int, float)) and not isinstance(ans, bool) and math.isfinite(ans):
                return sol, format_number(ans), "solution"
            raise RowError("solution", "no \\boxed{} answer in solution and no usable 'answer' column")
        if ans is None:
            if sol is None or not str(sol).strip():
                raise RowError("solution", "missing (and no 'answer' column)")
            raise RowError("solution", "no \\boxed{} answer in solution and no 'answer' column")
        if isinstance(ans, (int, float)) and not isinstance(ans, bool):
            if not math.isfinite(ans):
                raise RowError("answer", f"non-finite number {ans!r}")
            s = format_number(ans)
        elif isinstance(ans, str):
            if not ans.strip():
                raise RowError("answer", "empty string (and no \\boxed{} in solution)")
            s = ans.strip()
        else:
            raise RowError("answer", f"expected a string or number, got {type(ans).__name__}")
        return f"\\boxed{{{s}}}", s, "answer"

    if set_name in ("aime24", "amc23"):
        if "answer" not in row or row["answer"] is None:
            raise RowError("answer", "missing")
        ans = row["answer"]
        if isinstance(ans, bool):
            raise RowError("answer", "expected a number or string, got bool")
        if isinstance(ans, (int, float)):
            if isinstance(ans, float) and not math.isfinite(ans):
                raise RowError("answer", f"non-finite number {ans!r}")
            s = format_number(ans)
            return s, normalise_integer_string(s), "answer"
        if isinstance(ans, str):
            if not ans.strip():
                raise RowError("answer", "empty string")
            s = ans.strip()
            if set_name == "amc23" and re.fullmatch(r"[+-]?\d+\.0+", s):  # "27.0" as a string
                s = str(int(float(s)))
            return s, normalise_integer_string(s), "answer"
        raise RowError("answer", f"expected a number or string, got {type(ans).__name__}")

    if set_name == "olympiadbench":
        fa = row.get("final_answer")
        if fa is not None:
            if isinstance(fa, str):
                fa = [fa]
            if not isinstance(fa, (list, tuple)):
                raise RowError("final_answer", f"expected a list of strings, got {type(fa).__name__}")
            if len(fa) == 0:
                raise RowError("final_answer", "empty list")
            first = fa[0]
            if not isinstance(first, str):
                raise RowError("final_answer", f"element 0: expected a string, got {type(first).__name__}")
            if not first.strip():
                raise RowError("final_answer", "element 0: empty string")
            return first, strip_dollars(first), "final_answer[0]"
        ans = row.get("answer")
        if ans is None:
            raise RowError("final_answer", "missing (and no 'answer' column)")
        if not isinstance(ans, str):
            raise RowError("answer", f"expected a string, got {type(ans).__name__}")
        if not ans.strip():
            raise RowError("answer", "empty string")
        return ans, strip_dollars(ans), "answer"

    raise ValueError(f"unknown set {set_name!r}")


def strip_dollars(s: str) -> str:
    """'$2n$' -> '2n'; '$69$,$84$' -> '69,84'; unwrapped strings only stripped."""
    return s.replace("$", "").strip()


# --------------------------------------------------------------------------------------
# Output schema
# --------------------------------------------------------------------------------------

#: source columns copied (as strings) into extra_info when present
META_COLUMNS: tuple[str, ...] = (
    "id",
    "unique_id",
    "level",
    "subject",
    "type",
    "subfield",
    "answer_type",
    "unit",
    "is_multiple_answer",
    "url",
    "year",
    "source",
)

#: extra_info keys; every value is a string except ``index`` (int64).  Missing -> "".
EXTRA_INFO_KEYS: tuple[str, ...] = (
    "split",
    "index",
    "dataset",
    "problem",
    "answer",
    "gold_field",
    *META_COLUMNS,
)

PARQUET_SCHEMA = pa.schema(
    [
        pa.field("data_source", pa.string()),
        pa.field(
            "prompt",
            pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])),
        ),
        pa.field("ability", pa.string()),
        pa.field("reward_model", pa.struct([pa.field("style", pa.string()), pa.field("ground_truth", pa.string())])),
        pa.field(
            "extra_info",
            pa.struct([pa.field(k, pa.int64() if k == "index" else pa.string()) for k in EXTRA_INFO_KEYS]),
        ),
    ]
)


def build_row(
    set_name: str,
    row: Mapping[str, Any],
    index: int,
    split: str,
    messages_fn,
) -> dict[str, Any]:
    """Validate one source row and build the verl row.  Raises RowError."""
    if not isinstance(row, Mapping):
        raise RowError("*", f"row is not an object (got {type(row).__name__})")
    problem, _ = problem_for(set_name, row)
    gt, answer, gold_field = ground_truth_for(set_name, row)
    if not gt.strip():
        raise RowError(gold_field, "empty ground truth")
    extra = {k: "" for k in EXTRA_INFO_KEYS}
    for k in META_COLUMNS:
        if k in row:
            v = row[k]
            extra[k] = _opt_str(v)
    if "idx" in row and not extra["id"]:
        extra["id"] = _opt_str(row["idx"])
    extra.update(
        split=split,
        index=int(index),
        dataset=set_name,
        problem=problem,
        answer=answer,
        gold_field=gold_field,
    )
    return {
        "data_source": DATA_SOURCES[set_name],
        "prompt": messages_fn(problem),
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": gt},
        "extra_info": extra,
    }


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


@dataclass
class SourceRow:
    """One source row, or the reason it could not even be read (bad JSON line)."""

    rownum: int  # 1-based
    data: dict[str, Any] | None
    error: RowError | None = None


def _is_local(source: str | os.PathLike) -> bool:
    return Path(source).exists()


def describe_source(source: str | os.PathLike) -> str:
    return str(source)


def iter_source_rows(source: str | os.PathLike, split: str | None = None) -> Iterator[SourceRow]:
    """Rows of a local jsonl/json/parquet file, a ``save_to_disk`` folder, or a hub dataset id.

    Local jsonl is read line by line with ``json`` so a malformed line becomes a reported row error
    (``datasets`` would abort the whole load) and values keep their JSON types.
    """
    p = Path(source)
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix in (".jsonl", ".ndjson") or (suffix == ".json" and _looks_like_jsonl(p)):
            with p.open("r", encoding="utf-8") as f:
                n = 0
                for line in f:
                    n += 1
                    if not line.strip():
                        yield SourceRow(n, None, RowError("*", "empty line"))
                        continue
                    try:
                        obj = json.loads(line.rstrip("\r\n"))
                    except json.JSONDecodeError as e:
                        yield SourceRow(n, None, RowError("*", f"invalid JSON ({e.msg} at column {e.colno})"))
                        continue
                    if not isinstance(obj, dict):
                        yield SourceRow(n, None, RowError("*", f"row is not an object (got {type(obj).__name__})"))
                        continue
                    yield SourceRow(n, obj)
            return
        if suffix == ".json":
            obj = json.loads(p.read_text(encoding="utf-8"))
            if isinstance(obj, dict):  # {"data": [...]} / column-oriented are not supported
                for key in ("data", "rows", split or "train"):
                    if isinstance(obj.get(key), list):
                        obj = obj[key]
                        break
            if not isinstance(obj, list):
                raise ValueError(f"{p}: expected a JSON list of objects or JSON lines")
            for i, r in enumerate(obj, 1):
                if isinstance(r, dict):
                    yield SourceRow(i, r)
                else:
                    yield SourceRow(i, None, RowError("*", f"row is not an object (got {type(r).__name__})"))
            return
        if suffix == ".parquet":
            table = pq.read_table(p)
            for i, r in enumerate(table.to_pylist(), 1):
                yield SourceRow(i, r)
            return
        raise ValueError(f"{p}: unsupported file type {suffix!r} (use .jsonl, .json, .parquet or a save_to_disk folder)")
    if p.is_dir():
        import datasets

        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            if split is None or split not in ds:
                if len(ds) == 1:
                    ds = next(iter(ds.values()))
                else:
                    raise ValueError(f"{p}: DatasetDict with splits {list(ds)}; requested split {split!r} not found")
            else:
                ds = ds[split]
        for i, r in enumerate(ds, 1):
            yield SourceRow(i, dict(r))
        return
    # not a local path: Hugging Face hub id
    if str(source).startswith((".", "/", "~")) or str(source).endswith((".jsonl", ".json", ".parquet")):
        raise FileNotFoundError(f"{source}: no such file or directory")
    import datasets

    ds = datasets.load_dataset(str(source), split=split or "train")
    for i, r in enumerate(ds, 1):
        yield SourceRow(i, dict(r))


def _looks_like_jsonl(p: Path) -> bool:
    with p.open("r", encoding="utf-8") as f:
        head = f.read(1)
        while head and head.isspace():
            head = f.read(1)
    return head == "{"


# --------------------------------------------------------------------------------------
# Conversion driver
# --------------------------------------------------------------------------------------


@dataclass
class ConversionResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)  # {"row", "field", "problem", "message", "data"}
    total: int = 0

    @property
    def errors(self) -> list[str]:
        return [r["message"] for r in self.rejects]


def convert(
    set_name: str,
    source: str | os.PathLike,
    split_label: str,
    messages_fn,
    hub_split: str | None = None,
) -> ConversionResult:
    """Convert every row of ``source``; invalid rows go to ``result.rejects`` (nothing dropped silently).

    ``extra_info.index`` is the 0-based position in the source (so indices stay stable when rows are
    rejected); error messages use the 1-based row number.
    """
    res = ConversionResult()
    label = describe_source(source)
    for sr in iter_source_rows(source, split=hub_split):
        res.total += 1
        err = sr.error
        if err is None:
            try:
                res.rows.append(build_row(set_name, sr.data, sr.rownum - 1, split_label, messages_fn))
                continue
            except RowError as e:
                err = e
        res.rejects.append(
            {
                "row": sr.rownum,
                "field": err.field,
                "problem": err.problem,
                "message": f"{label}:row {sr.rownum}: field '{err.field}': {err.problem}",
                "data": _jsonable(sr.data),
            }
        )
    return res


def _jsonable(obj: Any) -> Any:
    try:
        json.dumps(obj, ensure_ascii=False)
        return obj
    except (TypeError, ValueError):
        return repr(obj)


class DataPrepError(RuntimeError):
    pass


def finish_conversion(
    name: str,
    res: ConversionResult,
    out_dir: Path,
    skip_invalid: bool,
    max_errors: int = 20,
) -> Path:
    """Write ``<out>/<name>.parquet`` (and ``<name>.rejects.jsonl`` with --skip-invalid) or raise."""
    out_dir = Path(out_dir)
    if res.rejects and not skip_invalid:
        lines = res.errors[:max_errors]
        more = len(res.rejects) - len(lines)
        msg = f"{name}: {len(res.rejects)} invalid row(s) of {res.total}:\n  " + "\n  ".join(lines)
        if more > 0:
            msg += f"\n  ... and {more} more"
        msg += "\n(re-run with --skip-invalid to write the valid rows and <out>/%s.rejects.jsonl)" % name
        raise DataPrepError(msg)
    if not res.rows:
        raise DataPrepError(f"{name}: no valid rows (of {res.total})")
    out_dir.mkdir(parents=True, exist_ok=True)
    rejects_path = out_dir / f"{name}.rejects.jsonl"
    if res.rejects:
        write_jsonl_atomic(rejects_path, res.rejects)
        logger.warning(
            "%s: skipped %d invalid row(s) of %d; reasons in %s", name, len(res.rejects), res.total, rejects_path
        )
        for m in res.errors[:5]:
            logger.warning("  %s", m)
    elif rejects_path.exists():
        rejects_path.unlink()  # stale file from an earlier run
    path = out_dir / f"{name}.parquet"
    write_parquet_atomic(path, res.rows)
    logger.info("%s: wrote %d rows to %s", name, len(res.rows), path)
    return path


# --------------------------------------------------------------------------------------
# Atomic, deterministic writing
# --------------------------------------------------------------------------------------


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA)


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    """Serialise rows with the fixed schema: no pandas metadata, fixed compression, row order as given.

    The bytes depend only on the rows (and the pyarrow version, recorded in ``created_by``)."""
    table = rows_to_table(rows)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy", use_dictionary=True, write_statistics=True)
    return buf.getvalue()


def write_parquet_atomic(path: Path, rows: list[dict[str, Any]]) -> None:
    _atomic_write_bytes(Path(path), parquet_bytes(rows))


def write_jsonl_atomic(path: Path, records: Iterable[Any]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records)
    _atomic_write_bytes(Path(path), text.encode("utf-8"))


def write_csv_atomic(path: Path, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(r)
    _atomic_write_bytes(Path(path), buf.getvalue().encode("utf-8"))


def read_parquet_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
