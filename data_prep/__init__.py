"""Data preparation for cwgrpo-verl: Open-RS training parquet, evaluation parquets, decontamination.

CLI entry points (``python -m data_prep NAME ...`` runs ``python -m data_prep.NAME ...``; each takes ``--help``)::

    python -m data_prep.open_rs --out DIR              # the Open-RS training parquet
    python -m data_prep.eval_sets --out DIR            # the five evaluation parquets
    python -m data_prep.decontaminate --train X.parquet --eval DIR_OR_FILES... --report out.csv

Every output is all-or-nothing and re-runnable: a file changes only when the pass that writes it succeeds
(``eval_sets`` writes the sets that succeed and reports the others), re-running over the same folder gives the
same bytes, and every failure is one line naming the file, row and field, or the flag to use.
"""
