"""Data preparation for cwgrpo-verl: Open-RS training parquet, evaluation parquets, decontamination.

CLI entry points::

    python -m data_prep.open_rs --out DIR [--source HUB_ID_OR_PATH] [--no-system-prompt] [--skip-invalid]
                                [--decontaminate-against PARQUET_OR_DIR [--drop-contaminated]]
    python -m data_prep.eval_sets --out DIR [--sets aime24,math500,amc23,minerva,olympiadbench]
                                  [--source-dir DIR] [--prompt paper|none] [--skip-invalid]
    python -m data_prep.decontaminate --train X.parquet --eval DIR_OR_FILES... --report out.csv
                                      [--n 13] [--threshold 0.5] [--drop-contaminated --out CLEAN.parquet]
"""

from data_prep.common import DATA_SOURCES, EVAL_SETS, EVAL_INSTRUCTION, SYSTEM_PROMPT, ground_truth_for

__all__ = ["DATA_SOURCES", "EVAL_SETS", "EVAL_INSTRUCTION", "SYSTEM_PROMPT", "ground_truth_for"]
