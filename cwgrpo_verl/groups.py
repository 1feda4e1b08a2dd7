"""Prompt groups inside verl's batches: whole groups per rank and per micro-batch, and the channel to the loss.

``cwgrpo.scope=group`` takes the CW statistics over each prompt group, with the gradient through the weights, as
the authors' code did (there a micro-batch was exactly one group). In verl the policy loss sees one micro-batch
and no group ids, so the recipe trainer
1. lays out every training batch so that each data-parallel rank and mini-batch gets whole groups, each group
   contiguous, filling up with padding groups where the groups do not split evenly and dropping groups that miss
   responses (:func:`plan_layout`, in place of verl's row-level balancing and padding),
2. makes every micro-batch a run of whole groups (micro-batch sizes that are multiples of ``rollout.n``, or
   verl's ``force_group_size`` with dynamic batch sizes), and
3. installs a loss function on the actor workers that reads the micro-batch's ``uid`` column, checks that it
   holds whole groups only, and hands the group index of every row to the ``cw_grpo`` policy loss through
   :func:`loss_context`.

This module is torch-only; the verl glue is in ``cwgrpo_verl.loss`` and ``recipe/cwgrpo/trainer.py``.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
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
            f"cwgrpo.scope=group: a micro-batch holds {rows} of the {group_size} responses of prompt group {uid!r} "
            f"({len(partial)} partial group(s)); the statistics need whole groups. This should not happen with the "
            "CW-GRPO recipe's trainer: please report it with your actor and rollout batch settings."
        )


class Layout(NamedTuple):
    """A training batch laid out in whole prompt groups over data-parallel ranks and mini-batches.

    ``order`` lists, position by position, the batch row to put there, or None for a row of a padding group
    (``group_size`` consecutive Nones are one group). Rank r receives the r-th of ``num_ranks`` equal consecutive
    slices; each slice is its mini-batches one after the other, each of ``groups_per_rank`` whole groups.
    """

    order: list[Optional[int]]
    padding_groups: int
    dropped: dict  # uid -> rows it had: groups missing responses, left out of the update
    groups_per_rank: int  # whole groups (real or padding) per rank and mini-batch
    real_rows: list[int]  # rows of real groups in each mini-batch


def groups_per_rank(groups_per_mini_batch: int, num_ranks: int, group_size: int, rank_rows_multiple: int = 1) -> int:
    """Whole groups each rank gets of one mini-batch: enough for the mini-batch's groups, and a row count that is a
    multiple of ``rank_rows_multiple`` (fixed micro-batch sizes must divide it)."""
    step = math.lcm(group_size, rank_rows_multiple) // group_size
    return -(-groups_per_mini_batch // (num_ranks * step)) * step


def plan_layout(
    uids: Sequence,
    workloads: Sequence[int],
    group_size: int,
    num_ranks: int,
    groups_per_mini_batch: int,
    partition: Callable[[list[int], int], list[list[int]]],
    padding_workload: int = 0,
    rank_rows_multiple: int = 1,
) -> Layout:
    """Whole groups for every rank and mini-batch, whatever the number of ranks.

    Complete groups go, in order, into mini-batches of ``groups_per_mini_batch``; each mini-batch is filled up with
    padding groups to ``num_ranks x`` :func:`groups_per_rank` groups and split over the ranks by
    ``partition(group_workloads, num_ranks)`` (verl's ``get_seqlen_balanced_partitions(..., equal_size=True)``:
    its own balancing, over groups instead of rows). A group with fewer than ``group_size`` rows (a failed rollout
    session) is dropped: its statistics would cover part of its responses, and GRPO's advantage a biased baseline.
    """
    rows_of: dict = {}
    for row, uid in enumerate(uids):
        rows_of.setdefault(uid, []).append(row)
    oversized = {uid: len(rows) for uid, rows in rows_of.items() if len(rows) > group_size}
    if oversized:
        uid, rows = next(iter(oversized.items()))
        raise ValueError(f"prompt group {uid!r} has {rows} responses, more than rollout.n={group_size}: whole-group "
                         "batching supports one trajectory per session")
    complete = [rows for rows in rows_of.values() if len(rows) == group_size]
    dropped = {uid: len(rows) for uid, rows in rows_of.items() if len(rows) < group_size}
    if not complete:
        raise ValueError(f"no prompt group of this batch is complete ({len(dropped)} groups miss responses): "
                         "every rollout session of some group failed; see the rollout's errors above")
    per_rank = groups_per_rank(groups_per_mini_batch, num_ranks, group_size, rank_rows_multiple)
    slots = per_rank * num_ranks
    rank_rows: list[list[Optional[int]]] = [[] for _ in range(num_ranks)]
    real_rows, padding = [], 0
    for start in range(0, len(complete), groups_per_mini_batch):
        members: list[Optional[list[int]]] = list(complete[start : start + groups_per_mini_batch])
        real_rows.append(len(members) * group_size)
        padding += slots - len(members)
        members += [None] * (slots - len(members))
        loads = [padding_workload * group_size if rows is None else sum(workloads[r] for r in rows) for rows in members]
        for rank, part in enumerate(partition(loads, num_ranks)):
            for index in sorted(part):
                rank_rows[rank].extend(members[index] or [None] * group_size)
    order = [row for rows in rank_rows for row in rows]
    return Layout(order=order, padding_groups=padding, dropped=dropped, groups_per_rank=per_rank, real_rows=real_rows)


class LossContext(NamedTuple):
    """What the recipe's trainer tells the ``cw_grpo`` loss about the micro-batch it computes."""

    groups: Optional[Groups] = None  # each row's prompt group; None: one statistic over the micro-batch
    cov_tails: bool = True  # log Table 1's covariance tails (False: the trainer logs them, once per step)
    uids: Optional[tuple] = None  # the rows' uids as verl carried them, which ``groups`` numbers (for inspection)


_CURRENT: contextvars.ContextVar[LossContext] = contextvars.ContextVar("cwgrpo_loss_context", default=LossContext())


@contextlib.contextmanager
def loss_context(context: LossContext) -> Iterator[None]:
    """Make ``context`` visible to the ``cw_grpo`` policy loss while verl computes this micro-batch's loss (verl
    calls policy losses with a fixed set of tensors, so this is the one way in)."""
    token = _CURRENT.set(context)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_context() -> LossContext:
    return _CURRENT.get()
