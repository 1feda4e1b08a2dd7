"""What a row means: set names, prompts, gold answers, validation and the verl row schema.

Everything that turns ONE source row into ONE verl RL parquet row lives here, with no I/O:

* per-set prompt field and gold answer (:func:`problem_for`, :func:`ground_truth_for`);
* prompts (the paper's training system prompt, the lighteval evaluation prompt);
* row validation that raises :class:`RowError` naming the field (the caller adds file and row).

Reading sources is :mod:`data_prep.sources`, writing files :mod:`data_prep.output`, the pass from one to the
other :mod:`data_prep.convert`.  Output rows share ONE fixed parquet schema (:data:`PARQUET_SCHEMA`) for every
set, so verl can concatenate several validation files (``data.val_files=[...]``) into one ``RLHFDataset``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from cwgrpo_verl import data_sets
from cwgrpo_verl.boxed import last_boxed

logger = logging.getLogger("data_prep")

# --------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------

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


class DataPrepError(RuntimeError):
    """A failure the user can fix, as one line; ``details`` are further one-line messages (e.g. row errors)."""

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = list(details or [])


class RowError(Exception):
    """A problem with one field of one source row."""

    def __init__(self, fieldname: str, problem: str):
        super().__init__(f"field '{fieldname}': {problem}")
        self.field = fieldname
        self.problem = problem


def check_text(fieldname: str, text: str) -> str:
    """``text`` unchanged if parquet can store it; a JSON ``"\\ud800"`` escape gives a lone surrogate, which it cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RowError(fieldname, f"not valid Unicode (lone surrogate {text[e.start]!r} at character {e.start})") from None
    return text


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
    first = data_sets.get(set_name).problem_field
    order = (first, "problem" if first == "question" else "question")
    for key in order:
        if key in row and row[key] is not None:
            return _require_str(row, key), key
    raise RowError(order[0], "missing")


def ground_truth_for(set_name: str, row: Mapping[str, Any]) -> tuple[str, str, str]:
    """Gold for one source row: ``(ground_truth, answer, gold_field)``.

    ``ground_truth`` (stored in ``reward_model.ground_truth``) is the string the paper's scorer parsed as
    gold -- lighteval's gold field for the evaluation sets, the ``solution`` text for Open-RS (the authors'
    accuracy reward) -- so ``cwgrpo_verl.reward.compute_score`` reproduces the paper's extraction, including
    lighteval's raw-string fallback when no gold can be extracted.  The rule is the set's ``gold`` in
    :mod:`cwgrpo_verl.data_sets` (the one registry of the sets, their sources and names).  ``answer`` (stored in
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
    gold = data_sets.get(set_name).gold
    if gold in ("solution", "boxed_solution", "boxed_solution_or_answer"):
        sol = row.get("solution")
        if sol is not None and not isinstance(sol, str):
            raise RowError("solution", f"expected a string, got {type(sol).__name__}")
        boxed = last_boxed(sol) if sol else None
        if boxed is not None:
            return sol, boxed, "solution"
        if gold == "boxed_solution":  # only a box is an answer
            if sol is None:
                raise RowError("solution", "missing")
            if not sol.strip():
                raise RowError("solution", "empty string")
            raise RowError("solution", "no \\boxed{} answer in solution")
        ans = row.get("answer")
        if gold == "solution" and sol and sol.strip():
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

    if gold == "answer":
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
            if re.fullmatch(r"[+-]?\d+\.0+", s):  # "27.0" as a string (AMC's floats)
                s = str(int(float(s)))
            return s, normalise_integer_string(s), "answer"
        raise RowError("answer", f"expected a number or string, got {type(ans).__name__}")

    if gold == "final_answer":
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
    problem, problem_field = problem_for(set_name, row)
    check_text(problem_field, problem)
    gt, answer, gold_field = ground_truth_for(set_name, row)
    if not gt.strip():
        raise RowError(gold_field, "empty ground truth")
    check_text(gold_field, gt)
    check_text(gold_field, answer)
    extra = {k: "" for k in EXTRA_INFO_KEYS}
    for k in META_COLUMNS:
        if k in row:
            extra[k] = _meta_str(k, row[k])
    if "idx" in row and not extra["id"]:
        extra["id"] = _meta_str("idx", row["idx"])
    extra.update(
        split=split,
        index=int(index),
        dataset=set_name,
        problem=problem,
        answer=answer,
        gold_field=gold_field,
    )
    return {
        "data_source": data_sets.get(set_name).data_source,
        "prompt": messages_fn(problem),
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": gt},
        "extra_info": extra,
    }


def _meta_str(key: str, value: Any) -> str:
    try:
        return check_text(key, _opt_str(value))
    except (ValueError, TypeError, RecursionError) as e:  # e.g. a list nested too deeply for json.dumps
        raise RowError(key, f"cannot be stored as text ({type(e).__name__}: {e})") from None
