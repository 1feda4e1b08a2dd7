"""The paper's tables (1: covariance tail and entropy, 2: accuracy, 3: accuracy per checkpoint) and its entropy
figure from verl's logs: ``python -m cwgrpo_verl.report`` (``cli.py``; how-to in ``docs/report.md``).

``logs`` reads verl's loggers, ``tables`` computes the rows, ``write`` renders them.
"""

from cwgrpo_verl.report.cli import main
from cwgrpo_verl.report.logs import LogError, load_run, read_segments, select, split_selector
from cwgrpo_verl.report.tables import COV_SOURCES, table1, table2, table3, tail_column

__all__ = ["main", "LogError", "load_run", "read_segments", "select", "split_selector", "COV_SOURCES",
           "table1", "table2", "table3", "tail_column"]
