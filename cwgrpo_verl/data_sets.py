"""The paper's data sets, in one place that every consumer reads (the standard library only). Adding an evaluation
set is one :class:`DataSet` in :data:`EVALUATION` (plus its gold rule in ``data_prep.common.ground_truth_for`` if
none below fits): ``tests/test_data_sets.py`` shows every consumer seeing it. ``python -m cwgrpo_verl.data_sets
val-files DIR`` prints the Hydra list of the evaluation files that the training scripts pass to verl."""

from __future__ import annotations

import sys
from dataclasses import dataclass

PREFIX = "cwgrpo/"  # data_source = PREFIX + key


@dataclass(frozen=True)
class DataSet:
    """One data set: where it comes from, what its gold is, and the names it goes by.

    ``gold``: what the paper's scorer parsed as gold (``data_prep.common.ground_truth_for`` applies the rule):
    ``"solution"`` (the solution text, whatever it holds: the authors' training reward), ``"boxed_solution"`` (a
    solution with a ``\\boxed{}`` answer), ``"boxed_solution_or_answer"`` (the same, or the boxed ``answer`` column
    where the solution has no box), ``"answer"`` (a bare answer) or ``"final_answer"`` (the first of a list).
    ``gold_kind``: how the reward's evaluation mode extracts that gold, as lighteval did (``"expr"`` or
    ``"latex"``); None for the training set, which the authors' training reward scores.
    """

    key: str  # command-line name, and data_prep's output file <key>.parquet
    title: str  # the report's column
    hub_id: str  # the default source
    hub_split: str
    local_stem: str  # <local_stem>.jsonl in a folder of the Qwen2.5-Math evaluation files (LOCAL_EVAL_DIR)
    problem_field: str  # the field holding the problem (the other of problem/question is the fallback)
    gold: str
    gold_kind: str | None
    aliases: tuple[str, ...] = ()  # other spellings people give as a set name or data_source

    @property
    def data_source(self) -> str:
        return PREFIX + self.key


TRAINING = DataSet("open_rs", "Open-RS", "knoveleng/open-rs", "train", "open_rs", "problem", "solution", None,
                   aliases=("knoveleng/open-rs", "open-rs"))

#: The evaluation sets, in the paper's column order.
EVALUATION: tuple[DataSet, ...] = (
    DataSet("aime24", "AIME24", "HuggingFaceH4/aime_2024", "train", "aime24", "problem", "answer", "expr",
            aliases=("huggingfaceh4/aime_2024", "aime_2024", "aime")),
    DataSet("math500", "MATH-500", "HuggingFaceH4/MATH-500", "test", "math500", "problem", "boxed_solution_or_answer",
            "latex", aliases=("huggingfaceh4/math-500", "math-500", "math_500")),
    DataSet("amc23", "AMC23", "knoveleng/AMC-23", "train", "amc23", "problem", "answer", "expr",
            aliases=("knoveleng/amc-23", "amc")),
    DataSet("minerva", "Minerva", "knoveleng/Minerva-Math", "train", "minerva_math", "problem", "boxed_solution",
            "latex", aliases=("knoveleng/minerva-math", "minerva_math")),
    DataSet("olympiadbench", "OlympiadBench", "knoveleng/OlympiadBench", "train", "olympiadbench", "question",
            "final_answer", "latex", aliases=("knoveleng/olympiadbench",)),
)


def all_sets() -> tuple[DataSet, ...]:
    return (TRAINING, *EVALUATION)


def evaluation_keys() -> tuple[str, ...]:
    return tuple(d.key for d in EVALUATION)


def get(key: str) -> DataSet:
    """The set named ``key`` (or one of its aliases); KeyError naming the known sets otherwise."""
    if (found := resolve(key)) is None:
        raise KeyError(f"unknown data set {key!r}; known: {', '.join(d.key for d in all_sets())}")
    return found


def resolve(name) -> DataSet | None:
    """The set a key, an alias or a ``data_source`` names (case-insensitive), or None."""
    text = str(name).strip().lower()
    text = text.removeprefix(PREFIX)
    return next((d for d in all_sets() if text == d.key or text in d.aliases), None)


def val_files(data_dir: str) -> str:
    """The Hydra list of the evaluation files data preparation writes into ``data_dir``."""
    return "[" + ",".join(f"{data_dir.rstrip('/')}/{key}.parquet" for key in evaluation_keys()) + "]"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "val-files":
        print("usage: python -m cwgrpo_verl.data_sets val-files DATA_DIR", file=sys.stderr)
        return 2
    print(val_files(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
