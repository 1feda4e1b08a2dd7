"""Which data set a row comes from, and which string of the row is its gold answer.

These names are the contract between data preparation (``data_prep``) and the reward: ``data_source`` of a row
selects training or evaluation scoring, and :func:`gold_from_row` gives the ``ground_truth`` the paper's scorers
parsed. Import them from here rather than repeating them.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = [
    "DATA_SOURCES",
    "EVAL_FILES",
    "EVAL_GOLD_KIND",
    "answer_from_row",
    "gold_from_row",
    "last_boxed",
    "resolve_data_source",
]

#: Stable ``data_source`` names, by set.
DATA_SOURCES: dict[str, str] = {
    "open_rs": "cwgrpo/open_rs",
    "aime24": "cwgrpo/aime24",
    "amc23": "cwgrpo/amc23",
    "math500": "cwgrpo/math500",
    "minerva": "cwgrpo/minerva",
    "olympiadbench": "cwgrpo/olympiadbench",
}

#: Evaluation sources and how lighteval extracted their gold: "expr" (an expression) or "latex".
EVAL_GOLD_KIND: dict[str, str] = {
    DATA_SOURCES["aime24"]: "expr",
    DATA_SOURCES["amc23"]: "expr",
    DATA_SOURCES["math500"]: "latex",
    DATA_SOURCES["minerva"]: "latex",
    DATA_SOURCES["olympiadbench"]: "latex",
}

#: File names of the evaluation sets in ``shared/data`` (Qwen2.5-Math / HF schemas).
EVAL_FILES: dict[str, str] = {
    "aime24": "aime24.jsonl",
    "amc23": "amc23.jsonl",
    "math500": "math500.jsonl",
    "minerva": "minerva_math.jsonl",
    "olympiadbench": "olympiadbench.jsonl",
}

# Other spellings people put in data_source (HF paths, lighteval task names).
_ALIASES: dict[str, str] = {
    "knoveleng/open-rs": "open_rs",
    "open-rs": "open_rs",
    "huggingfaceh4/aime_2024": "aime24",
    "aime_2024": "aime24",
    "knoveleng/amc-23": "amc23",
    "amc": "amc23",
    "huggingfaceh4/math-500": "math500",
    "math-500": "math500",
    "math_500": "math500",
    "knoveleng/minerva-math": "minerva",
    "minerva_math": "minerva",
    "knoveleng/olympiadbench": "olympiadbench",
}


def resolve_data_source(name: Any) -> str:
    """Map a set key (``"math500"``), an alias (``"HuggingFaceH4/MATH-500"``) or a stable name to the stable name;
    anything else is returned unchanged."""
    key = str(name).strip()
    if key in DATA_SOURCES.values():
        return key
    low = key.lower()
    low = _ALIASES.get(low, low)
    if low.startswith("cwgrpo/"):
        low = low[len("cwgrpo/") :]
    return DATA_SOURCES.get(low, key)


def gold_from_row(dataset_name: str, row: Mapping[str, Any]) -> str:
    """The ``ground_truth`` to store for one row: what lighteval / the authors parsed.

    * open_rs, math500, minerva: the full ``solution`` (its ``\\boxed{}`` is extracted);
    * aime24, amc23: ``str(answer)``, e.g. ``"27.0"`` for AMC's floats (``27`` still verifies);
    * olympiadbench: ``final_answer[0]`` (the knoveleng ``answer`` column), often plain text, which lighteval
      then compares as a raw string.
    """
    src = resolve_data_source(dataset_name)
    if src in (DATA_SOURCES["open_rs"], DATA_SOURCES["math500"], DATA_SOURCES["minerva"]):
        return str(row["solution"])
    if src in (DATA_SOURCES["aime24"], DATA_SOURCES["amc23"]):
        answer = row["answer"]
        return answer if isinstance(answer, str) else str(answer)
    if src == DATA_SOURCES["olympiadbench"]:
        final = row.get("final_answer")
        if final is None:
            return str(row["answer"])
        return final if isinstance(final, str) else str(list(final)[0])
    raise KeyError(f"unknown dataset {dataset_name!r}; known: {sorted(DATA_SOURCES)}")


def answer_from_row(dataset_name: str, row: Mapping[str, Any]) -> str:
    """The bare final answer of a row (what a correct model would box); used by the self-check."""
    src = resolve_data_source(dataset_name)
    if src == DATA_SOURCES["math500"] and row.get("answer") is not None:
        return str(row["answer"])
    if src in (DATA_SOURCES["open_rs"], DATA_SOURCES["math500"], DATA_SOURCES["minerva"]):
        boxed = last_boxed(str(row["solution"]))
        if boxed is None:
            raise ValueError(f"{dataset_name}: solution has no \\boxed{{}}")
        return boxed
    gold = gold_from_row(src, row).strip()
    if gold.startswith("$") and gold.rstrip(".").endswith("$"):  # OlympiadBench: "$...$" or "$...$."
        gold = gold.rstrip(".").strip("$").strip()
    return gold


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` (balanced braces), or None."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    depth = 0
    for j in range(text.index("{", start), len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[text.index("{", start) + 1 : j]
    return None
