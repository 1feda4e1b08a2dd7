"""Prompt groups inside verl's batches: whole groups per rank and per micro-batch, and the channel to the loss.

``cw_scope=group`` takes the CW statistics over each prompt group, with the gradient through the weights, as
the authors' code did (there a micro-batch was exactly one group). In verl the policy loss sees one micro-batch
and no group ids, so the recipe trainer
1. orders every training batch so that each data-parallel rank gets whole groups, each group contiguous
   (:func:`whole_group_order`, in place of verl's row-level balancing),
2. makes every micro-batch a run of whole groups (micro-batch sizes that are multiples of ``rollout.n``, or
   verl's ``force_group_size`` with dynamic batch sizes), and
3. installs a loss function on the actor workers that reads the micro-batch's ``uid`` column, checks that it
   holds whole groups only, and hands the group index of every row to the ``cw_grpo`` policy loss through
   :func:`micro_batch_groups` (verl calls policy losses with a fixed set of tensors, so this is the one way in).

This module is torch-only; the verl glue is in ``cwgrpo_verl.loss`` and ``recipe/cwgrpo/trainer.py``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import Counter
from typing import Callable, Iterator, NamedTuple, Optional, Sequence

import torch


class Groups(NamedTuple):
    """The prompt group of every row of a micro-batch: indices ``0..count-1`` in order of first appearance."""

    ids: torch.Tensor  # (B,) int64
    count: int


def group_ids(uids: Sequence, device=None) -> Groups:
    """Number the distinct ``uids`` in order of first appearance; statistics do not depend on the numbering."""
    codes: dict = {}
    ids = [codes.setdefault(u, len(codes)) for u in uids]
    return Groups(torch.tensor(ids, dtype=torch.long, device=device), len(codes))


def check_whole_groups(uids: Sequence, group_size: int) -> None:
    """Raise unless every group in ``uids`` has exactly ``group_size`` rows (a partial group would silently get
    statistics over part of its responses)."""
    partial = {u: n for u, n in Counter(uids).items() if n != group_size}
    if partial:
        uid, rows = next(iter(partial.items()))
        raise ValueError(
            f"cw_scope=group: a micro-batch holds {rows} of the {group_size} responses of prompt group {uid!r} "
            f"({len(partial)} partial group(s)); the statistics need whole groups. This should not happen with the "
            "CW-GRPO recipe's trainer: please report it with your actor and rollout batch settings."
        )


def whole_group_order(
    uids: Sequence,
    workloads: Sequence[int],
    num_ranks: int,
    partition: Callable[[list[int], int], list[list[int]]],
) -> list[int]:
    """A row order that gives each of ``num_ranks`` consecutive, equal slices whole groups, each contiguous.

    ``partition(group_workloads, num_ranks)`` splits the groups into equal-count parts with balanced workloads
    (verl's ``get_seqlen_balanced_partitions(..., equal_size=True)``): verl's own balancing, over groups
    instead of rows.
    """
    rows_of: dict = {}
    for row, uid in enumerate(uids):
        rows_of.setdefault(uid, []).append(row)
    groups = list(rows_of.values())
    if len(groups) % num_ranks:
        raise ValueError(
            f"cw_scope=group: {len(groups)} prompt groups cannot be split evenly over {num_ranks} data-parallel "
            "ranks; make data.train_batch_size a multiple of the data-parallel size"
        )
    sizes = {len(rows) for rows in groups}
    if len(sizes) > 1:
        raise ValueError(f"cw_scope=group: prompt groups of different sizes {sorted(sizes)} in one batch")
    group_load = [sum(workloads[row] for row in rows) for rows in groups]
    parts = partition(group_load, num_ranks)
    return [row for part in parts for group in sorted(part) for row in groups[group]]


_CURRENT: contextvars.ContextVar[Optional[Groups]] = contextvars.ContextVar("cwgrpo_micro_batch_groups", default=None)


@contextlib.contextmanager
def micro_batch_groups(groups: Groups) -> Iterator[None]:
    """Make ``groups`` visible to the ``cw_grpo`` policy loss while verl computes this micro-batch's loss."""
    token = _CURRENT.set(groups)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_groups() -> Optional[Groups]:
    return _CURRENT.get()
