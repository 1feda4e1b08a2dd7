"""Data preparation for cwgrpo-verl: Open-RS training parquet, evaluation parquets, decontamination.

CLI entry points (``python -m data_prep NAME ...`` runs ``python -m data_prep.NAME ...``)::

    python -m data_prep.open_rs --out DIR [--source HUB_ID_OR_PATH] [--no-system-prompt] [--skip-invalid]
                                [--duplicates keep|drop|error]
                                [--decontaminate-against PARQUET_OR_DIR [--drop-contaminated]]
    python -m data_prep.eval_sets --out DIR [--sets aime24,math500,amc23,minerva,olympiadbench]
                                  [--source-dir DIR] [--prompt paper|none] [--skip-invalid]
                                  [--duplicates error|drop|keep]
    python -m data_prep.decontaminate --train X.parquet --eval DIR_OR_FILES... --report out.csv
                                      [--n 13] [--threshold 0.5] [--drop-contaminated --out CLEAN.parquet]

Every output is all-or-nothing and re-runnable: a file changes only when the pass that writes it succeeds
(``eval_sets`` writes the sets that succeed and reports the others), re-running over the same folder gives the
same bytes, and every failure is one line naming the file, row and field, or the flag to use.
Modules: ``common`` (what a row means, how a command fails), ``sources`` (reading, local or hub), ``convert``
(the pass), ``output`` (writing), ``decontaminate``.
"""

from data_prep.common import EVAL_INSTRUCTION, SYSTEM_PROMPT, ground_truth_for

__all__ = ["EVAL_INSTRUCTION", "SYSTEM_PROMPT", "ground_truth_for"]
