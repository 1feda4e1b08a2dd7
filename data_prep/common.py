"""What one source row means, with no I/O: prompts, gold answers, validation and the verl row, whose one parquet
schema (:data:`PARQUET_SCHEMA`) every set shares so that verl can concatenate several validation files; and how
the command lines report a failure."""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from cwgrpo_verl import data_sets
from cwgrpo_verl.boxed import last_boxed

#: The paper's training system prompt as the authors' model saw it (recipes/gaussian_1.5b.yaml at 4259d83):
#: its "boxed" instruction has doubled braces that no ``.format`` ever undoes, so the model saw them as written.
SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer, and put your final answer within \\boxed{{}} . The reasoning process and answer are enclosed within "
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
    system = [{"role": "system", "content": SYSTEM_PROMPT}] if system_prompt else []
    return [*system, {"role": "user", "content": problem}]


def eval_messages(problem: str, style: str = "paper") -> list[dict[str, str]]:
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; expected one of {PROMPT_STYLES}")
    return [{"role": "user", "content": f"{EVAL_INSTRUCTION}\n\n{problem}" if style == "paper" else problem}]


def format_number(value: float) -> str:
    """27.0 -> "27", 0.5 -> "0.5" (callers rule out bools and non-finite numbers)."""
    return str(int(value)) if isinstance(value, int) or value.is_integer() else repr(float(value))


class DataPrepError(RuntimeError):
    """A failure the user can fix, as one line; ``details`` are further one-line messages (e.g. row errors)."""

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = list(details or [])


class RowError(Exception):
    """A problem with one field of one source row (the caller adds file and row)."""

    def __init__(self, fieldname: str, problem: str):
        super().__init__(f"field '{fieldname}': {problem}")
        self.field, self.problem = fieldname, problem


def check_text(fieldname: str, text: str) -> str:
    """``text`` if parquet can store it: a JSON ``"\\ud800"`` escape gives a lone surrogate, which it cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        problem = f"not valid Unicode (lone surrogate {text[e.start]!r} at character {e.start})"
        raise RowError(fieldname, problem) from None
    return text


def _text(fieldname: str, v: Any, where: str = "") -> str:
    if not isinstance(v, str):
        raise RowError(fieldname, f"{where}expected a string, got {type(v).__name__}")
    if not v.strip():
        raise RowError(fieldname, f"{where}empty string")
    return v


def _answer(v: Any, empty: str = "empty string") -> str:
    """An ``answer`` value as stripped text: a finite number (27.0 -> "27") or a non-blank string."""
    if isinstance(v, float) and not math.isfinite(v):
        raise RowError("answer", f"non-finite number {v!r}")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return format_number(v)
    if not isinstance(v, str):
        raise RowError("answer", f"expected a number or string, got {type(v).__name__}")
    if not v.strip():
        raise RowError("answer", empty)
    return v.strip()


def _without_dollars(text: str) -> str:
    """A final answer without its math delimiters, nor a full stop after them ("$x$." -> "x")."""
    text = text.strip()
    if text.endswith("$."):
        text = text[:-1]
    return text.replace("$", "").strip()


def problem_for(set_name: str, row: Mapping[str, Any]) -> tuple[str, str]:
    """(problem text, field name): the set's field, else the other of problem/question (schema variants)."""
    first = data_sets.get(set_name).problem_field
    for key in (first, "problem" if first == "question" else "question"):
        if row.get(key) is not None:
            return _text(key, row[key]), key
    raise RowError(first, "missing")


def ground_truth_for(set_name: str, row: Mapping[str, Any]) -> tuple[str, str, str]:
    """Gold for one source row by the set's ``gold`` rule (:mod:`cwgrpo_verl.data_sets`): the string the paper's
    scorer parsed as gold (``reward_model.ground_truth``, so the reward reproduces its extraction), the bare final
    answer (``extra_info.answer``: no ``$``, no ``\\boxed``; "025" -> "25", 27.0 -> "27") and the source field."""
    gold = data_sets.get(set_name).gold
    if gold in ("solution", "boxed_solution", "boxed_solution_or_answer"):
        sol = row.get("solution")
        if sol is not None and not isinstance(sol, str):
            raise RowError("solution", f"expected a string, got {type(sol).__name__}")
        boxed = last_boxed(sol) if sol else None
        if boxed is not None:
            return sol, boxed, "solution"
        text = bool(sol and sol.strip())
        if gold == "boxed_solution":  # only a box is an answer
            raise RowError("solution", "missing" if sol is None else "no \\boxed{} answer in solution" if text
                           else "empty string")
        if gold == "solution" and text:  # the authors' reward parses the solution whatever it contains
            try:
                return sol, _answer(row.get("answer")), "solution"
            except RowError:
                raise RowError("solution", "no \\boxed{} answer in solution and no usable 'answer' column") from None
        if row.get("answer") is None:
            raise RowError("solution", "no \\boxed{} answer in solution and no 'answer' column" if text
                           else "missing (and no 'answer' column)")
        s = _answer(row["answer"], "empty string (and no \\boxed{} in solution)")
        return f"\\boxed{{{s}}}", s, "answer"
    if gold == "answer":
        if row.get("answer") is None:
            raise RowError("answer", "missing")
        s = _answer(row["answer"])
        if re.fullmatch(r"[+-]?\d+\.0+", s):  # "27.0" as a string (AMC's floats)
            s = str(int(float(s)))
        return s, str(int(s)) if re.fullmatch(r"[+-]?\d+", s) else s, "answer"  # "025" -> "25"
    if gold == "final_answer":
        fa = row.get("final_answer")
        if fa is None:
            if row.get("answer") is None:
                raise RowError("final_answer", "missing (and no 'answer' column)")
            ans = _text("answer", row["answer"])
            return ans, _without_dollars(ans), "answer"
        fa = [fa] if isinstance(fa, str) else fa
        if not isinstance(fa, (list, tuple)):
            raise RowError("final_answer", f"expected a list of strings, got {type(fa).__name__}")
        if not fa:
            raise RowError("final_answer", "empty list")
        first = _text("final_answer", fa[0], "element 0: ")
        return first, _without_dollars(first), "final_answer[0]"
    raise ValueError(f"unknown set {set_name!r}")


#: source columns copied (as strings) into extra_info when present
META_COLUMNS = ("id", "unique_id", "level", "subject", "type", "subfield", "answer_type", "unit", "is_multiple_answer",
                "url", "year", "source")
#: extra_info keys; every value is a string except ``index`` (int64).  Missing -> "".
EXTRA_INFO_KEYS = ("split", "index", "dataset", "problem", "answer", "gold_field", *META_COLUMNS)
PARQUET_SCHEMA = pa.schema([
    ("data_source", pa.string()), ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    ("ability", pa.string()), ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
    ("extra_info", pa.struct([(k, pa.int64() if k == "index" else pa.string()) for k in EXTRA_INFO_KEYS])),
])


def _meta_str(key: str, v: Any) -> str:
    """A metadata value as text ('' for None), so the parquet schema is the same for every set."""
    try:
        if isinstance(v, (list, tuple)):
            text = json.dumps(list(v), ensure_ascii=False)
        elif isinstance(v, float) and math.isfinite(v):
            text = format_number(v)
        else:
            text = "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        return check_text(key, text)
    except (ValueError, TypeError, RecursionError) as e:  # e.g. a list nested too deeply for json.dumps
        raise RowError(key, f"cannot be stored as text ({type(e).__name__}: {e})") from None


def build_row(set_name: str, row: Mapping[str, Any], index: int, split: str,
              messages_fn: Callable[[str], list[dict[str, str]]]) -> dict[str, Any]:
    """Validate one source row and build the verl row.  Raises RowError."""
    problem, problem_field = problem_for(set_name, row)
    check_text(problem_field, problem)
    gt, answer, gold_field = ground_truth_for(set_name, row)
    check_text(gold_field, gt)
    check_text(gold_field, answer)
    extra = {k: "" for k in EXTRA_INFO_KEYS}
    extra.update({k: _meta_str(k, row[k]) for k in META_COLUMNS if k in row})
    if "idx" in row and not extra["id"]:
        extra["id"] = _meta_str("idx", row["idx"])
    extra.update(split=split, index=int(index), dataset=set_name, problem=problem, answer=answer, gold_field=gold_field)
    return {"data_source": data_sets.get(set_name).data_source, "prompt": messages_fn(problem), "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": gt}, "extra_info": extra}


def parse_args(ap: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``ap``'s arguments plus ``-v``, with logging to stderr (DEBUG with ``-v``, else INFO)."""
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return args


def run(fn: Callable[..., Any], *args: Any) -> int:
    """``fn(*args)``; exit status 0, or 1 after ``error: <one line>`` (its details first, one per line).

    Bugs still show a traceback: only failures the user can act on are caught here."""
    try:
        fn(*args)
    except DataPrepError as e:
        for line in e.details:
            print(f"  {line}", file=sys.stderr)
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; earlier outputs are unchanged", file=sys.stderr)
        return 130
    except OSError as e:  # the data_prep modules name the flag; this is the last net (e.g. a disk that fails)
        print(f"error: {f'{e.filename}: ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 1
    return 0
