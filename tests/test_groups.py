"""cwgrpo.scope=group: statistics per prompt group inside a micro-batch, with the gradient through the weights, through
the loss function the recipe installs on the actor workers (verl's ppo_loss plus the micro-batch's uid column)."""

import pytest
import torch
from helpers import OPTION_GRID, actor_config, engine_micro_batch, flat_grad_to_padded, random_batch
from reference import reference_loss
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.utils.seqlen_balancing import get_seqlen_balanced_partitions

from cwgrpo_verl.groups import LossContext, check_whole_groups, group_ids, groups_per_rank, loss_context, plan_layout
from cwgrpo_verl.loss import UPDATE_ROWS_KEY, recipe_ppo_loss

CW = get_policy_loss_fn("cw_grpo")


def grouped_batch(seed, groups=3, group_size=4, length=9, interleave=False):
    """``groups`` prompt groups of GRPO advantages (zero-mean per group), rows contiguous or interleaved."""
    old, lp, adv, mask = random_batch(seed, batch=groups * group_size, length=length, group_size=group_size)
    uids = [f"prompt-{i // group_size}" for i in range(groups * group_size)]
    if interleave:
        order = torch.randperm(len(uids), generator=torch.Generator().manual_seed(seed))
        old, lp, adv, mask = old[order], lp[order], adv[order], mask[order]
        uids = [uids[i] for i in order.tolist()]
    return old, lp, adv, mask, uids


def through_the_actor_loss(old, lp, adv, mask, uids, agg="seq-mean-token-mean", **opts):
    """Loss and per-token gradient as the actor worker computes them with the recipe's loss function."""
    data, out = engine_micro_batch(old, lp, adv, mask, batch_num_tokens=int(mask.sum()),
                                   global_batch_size=mask.shape[0], uids=uids)
    config = actor_config("cw_grpo", loss_agg_mode=agg, rollout_n=uids.count(uids[0]), **opts)
    loss, metrics = recipe_ppo_loss(config, out, data, group_scope=True)
    loss.backward()
    return loss.detach(), flat_grad_to_padded(out["log_probs"].grad, mask), metrics


def reference(old, lp, adv, mask, uids, agg="seq-mean-token-mean", **opts):
    width = int(mask.sum(-1).max())  # verl pads a micro-batch to its longest response
    lp = lp[:, :width].clone().requires_grad_(True)
    value = reference_loss(
        old[:, :width].tolist(), lp, adv[:, :width].tolist(), mask[:, :width].tolist(), groups=uids, agg=agg,
        center=opts.get("cw_logp_center", "sequence"), normalizer=opts.get("cw_normalizer", "padded"),
        detach=opts.get("cw_detach_weights", False), scale=opts.get("cw_bandwidth_scale", 1.0),
    )
    value.backward()
    grad = torch.zeros(mask.shape, dtype=torch.float64)
    grad[:, :width] = lp.grad
    return value.detach(), grad


@pytest.mark.parametrize("opts", OPTION_GRID, ids=lambda o: "-".join(str(v) for v in o.values()))
@pytest.mark.parametrize("interleave", [False, True])
def test_per_group_loss_and_gradient_match_the_loop_reference(opts, interleave):
    """Value and gradient equal the float64 loop re-derivation of the authors' formula, one statistic per group."""
    batch = grouped_batch(3, interleave=interleave)
    ours, grad, metrics = through_the_actor_loss(*batch, **opts)
    ref, ref_grad = reference(*batch, **opts)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-7, atol=1e-10)
    assert metrics["actor/cw/groups_per_micro_batch"].aggregate() == 3.0
    assert "actor/cw/cov_pos_top_1pct" not in metrics  # the recipe's trainer logs the tails (cov/*), once per step


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum"])
def test_other_aggregations_match_the_loop_reference(agg):
    batch = grouped_batch(5, groups=2, group_size=5)
    ours, grad, _ = through_the_actor_loss(*batch, agg=agg)
    ref, ref_grad = reference(*batch, agg=agg)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-7, atol=1e-10)


def with_padding_group(old, lp, adv, mask, uids, rows=4):
    """The micro-batch plus a padding group as verl writes it: rows without a valid token, advantage 0."""
    g = torch.Generator().manual_seed(rows)
    pad = lambda t, fill: torch.cat([t, fill((rows, t.shape[1]))])  # noqa: E731
    return (pad(old, lambda s: -torch.rand(s, generator=g, dtype=old.dtype)),
            pad(lp, lambda s: -torch.rand(s, generator=g, dtype=lp.dtype)),
            pad(adv, lambda s: torch.zeros(s, dtype=adv.dtype)), pad(mask, lambda s: torch.zeros(s, dtype=torch.bool)),
            uids + ["pad0"] * rows)


@pytest.mark.parametrize("scope", ["group", "micro_batch"])
@pytest.mark.parametrize("opts", OPTION_GRID[:4], ids=lambda o: "-".join(str(v) for v in o.values()))
def test_a_padding_group_changes_neither_the_loss_nor_the_gradient(opts, scope):
    """Two real groups and a padding group in one micro-batch, normalised by the real rows as the recipe's trainer
    asks (``UPDATE_ROWS_KEY``), equal the float64 reference on the real groups alone; verl's own normaliser (the
    mini-batch's configured rows, padding included) would scale the update by 8/12."""
    batch = grouped_batch(11, groups=2)
    old, lp, adv, mask, uids = with_padding_group(*batch)
    config = actor_config("cw_grpo", loss_agg_mode="seq-mean-token-mean", rollout_n=4, **opts)
    ref, ref_grad = reference(*batch[:4], batch[4] if scope == "group" else ["one"] * 8, **opts)
    for update_rows, expected in ((8, ref), (None, ref * 8 / 12)):
        extra = {} if update_rows is None else {UPDATE_ROWS_KEY: update_rows}
        data, out = engine_micro_batch(old, lp, adv, mask, batch_num_tokens=int(mask.sum()), global_batch_size=12,
                                       uids=uids, **extra)
        loss, metrics = recipe_ppo_loss(config, out, data, group_scope=scope == "group")
        loss.backward()
        grad = flat_grad_to_padded(out["log_probs"].grad, mask)
        torch.testing.assert_close(loss.detach(), expected, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(grad[:8], ref_grad * expected / ref, rtol=1e-7, atol=1e-10)
        assert not grad[8:].any()
        if scope == "group":
            assert metrics["actor/cw/groups_per_micro_batch"].aggregate() == 2.0  # the padding group is no group


def test_differs_from_one_statistic_over_the_micro_batch():
    """The point of the scope: per-group sigma and normaliser differ from pooled micro-batch statistics."""
    old, lp, adv, mask, uids = grouped_batch(7)
    grouped, _, _ = through_the_actor_loss(old, lp, adv, mask, uids)
    pooled, _ = reference(old, lp, adv, mask, ["one"] * len(uids))
    assert not torch.allclose(grouped, pooled)


def test_gradient_through_the_weights_only_when_not_detached():
    batch = grouped_batch(2)
    _, live, _ = through_the_actor_loss(*batch, cw_detach_weights=False)
    _, detached, _ = through_the_actor_loss(*batch, cw_detach_weights=True)
    assert not torch.allclose(live, detached)


def test_a_partial_group_is_refused():
    old, lp, adv, mask, uids = grouped_batch(1)
    with pytest.raises(ValueError, match="holds 3 of the 4 responses of prompt group 'prompt-2'"):
        through_the_actor_loss(old[:-1], lp[:-1], adv[:-1], mask[:-1], uids[:-1])
    check_whole_groups(uids, 4)


def test_without_groups_the_statistics_cover_the_micro_batch():
    """Plain main_ppo hands no groups: one statistic over the micro-batch, as the reference pooled over all rows."""
    old, lp, adv, mask, uids = grouped_batch(6)
    lp = lp.clone().requires_grad_(True)
    loss, metrics = CW(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask,
                       loss_agg_mode="seq-mean-token-mean", config=actor_config("cw_grpo"))
    pooled, _ = reference(old, lp.detach(), adv, mask, ["one"] * len(uids))
    torch.testing.assert_close(loss, pooled, rtol=1e-9, atol=1e-11)
    assert "actor/cw/groups_per_micro_batch" not in metrics and "actor/cw/cov_pos_top_1pct" in metrics


def test_group_numbering_does_not_matter():
    old, lp, adv, mask, uids = grouped_batch(4)
    config = actor_config("cw_grpo")
    ids = group_ids(uids)
    renumbered = ids._replace(ids=ids.count - 1 - ids.ids)  # the same groups, numbered backwards
    values = []
    for groups in (ids, renumbered):
        with loss_context(LossContext(groups=groups)):
            values.append(CW(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask,
                             loss_agg_mode="token-mean", config=config)[0])
    torch.testing.assert_close(values[0], values[1], rtol=1e-12, atol=1e-12)


def balanced(workloads, ranks):
    return get_seqlen_balanced_partitions(workloads, k_partitions=ranks, equal_size=True)


def laid_out(uids, layout, group_size, ranks):
    """The uid of every position (None: padding), cut into the ranks' slices and their mini-batches."""
    ordered = [None if row is None else uids[row] for row in layout.order]
    per_rank = len(ordered) // ranks
    slices = [ordered[r * per_rank : (r + 1) * per_rank] for r in range(ranks)]
    rows = layout.groups_per_rank * group_size
    return [[s[m : m + rows] for m in range(0, per_rank, rows)] for s in slices]


def assert_whole_contiguous_groups(chunk, group_size):
    for start in range(0, len(chunk), group_size):  # every run of group_size rows is one whole group (or padding)
        assert len(set(chunk[start : start + group_size])) == 1, chunk


@pytest.mark.parametrize("ranks", range(1, 17))
def test_twelve_groups_lay_out_whole_over_any_number_of_ranks(ranks):
    """The paper's 12 prompts x 12 responses on 1-16 data-parallel ranks: every rank gets the same number of whole
    groups, every real row exactly once, and padding only where 12 does not split evenly."""
    g = torch.Generator().manual_seed(ranks)
    group_size, groups = 12, 12
    uids = [f"u{i // group_size}" for i in torch.randperm(groups * group_size, generator=g).tolist()]  # shuffled
    workloads = torch.randint(1, 1000, (len(uids),), generator=g).tolist()
    layout = plan_layout(uids, workloads, group_size, ranks, groups, balanced)
    assert sorted(row for row in layout.order if row is not None) == list(range(len(uids)))
    assert layout.groups_per_rank == -(-groups // ranks)
    assert layout.padding_groups == layout.groups_per_rank * ranks - groups and layout.real_rows == [144]
    for mini_batches in laid_out(uids, layout, group_size, ranks):
        for chunk in mini_batches:
            assert_whole_contiguous_groups(chunk, group_size)
            check_whole_groups([u for u in chunk if u is not None], group_size)


def test_groups_are_balanced_over_the_ranks_by_workload():
    g = torch.Generator().manual_seed(0)
    uids = [f"u{i // 3}" for i in range(24)]
    workloads = torch.randint(1, 1000, (24,), generator=g).tolist()
    layout = plan_layout(uids, workloads, 3, 4, 8, balanced)
    per_rank = len(layout.order) // 4
    loads = [sum(workloads[i] for i in layout.order[r * per_rank : (r + 1) * per_rank]) for r in range(4)]
    assert max(loads) - min(loads) <= max(workloads) * 3  # balanced to within about one group


def test_an_odd_number_of_groups_over_two_ranks_gets_one_padding_group():
    uids = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    layout = plan_layout(uids, [10] * 12, 4, 2, 3, balanced)
    assert (layout.padding_groups, layout.groups_per_rank, layout.real_rows) == (1, 2, [12])
    assert layout.order.count(None) == 4 and len(layout.order) == 16


def test_a_group_missing_responses_is_dropped_and_its_slot_padded():
    """A failed rollout session leaves its group short: the group leaves the update, a padding group takes its place."""
    uids = ["a"] * 4 + ["b"] * 3 + ["c"] * 4 + ["d"] * 4
    layout = plan_layout(uids, [1] * len(uids), 4, 2, 4, balanced)
    assert layout.dropped == {"b": 3}
    assert not {4, 5, 6} & set(layout.order)  # b's rows are gone
    assert (layout.padding_groups, layout.real_rows) == (1, [12])


def test_mini_batches_each_get_whole_groups_and_the_same_slots():
    uids = [f"u{i // 2}" for i in range(12)]  # 6 groups of 2
    layout = plan_layout(uids, [1] * 12, 2, 2, 3, balanced)  # 2 mini-batches of 3 groups over 2 ranks
    assert (layout.groups_per_rank, layout.padding_groups, layout.real_rows) == (2, 2, [6, 6])
    for mini_batches in laid_out(uids, layout, 2, 2):
        assert len(mini_batches) == 2
    first = {u for rank in laid_out(uids, layout, 2, 2) for u in rank[0] if u}
    assert first == {"u0", "u1", "u2"}  # mini-batch 1 holds the first three groups, on both ranks


def test_a_rank_share_is_a_multiple_of_the_micro_batch():
    """Fixed micro-batch sizes must divide each rank's rows (verl asserts it): 12 groups of 4 over 8 ranks with
    micro-batches of 8 rows need 2 groups per rank, not 1.5."""
    assert groups_per_rank(12, 8, 4) == 2 and groups_per_rank(12, 8, 4, rank_rows_multiple=8) == 2
    assert groups_per_rank(12, 5, 12, rank_rows_multiple=24) == 4  # ceil(12/5) = 3 groups, made even for 24-row micro-batches
    assert groups_per_rank(12, 16, 12, rank_rows_multiple=8) == 2  # 12 rows per rank are not a multiple of 8


def test_layouts_that_cannot_be_made_are_refused():
    with pytest.raises(ValueError, match="more than rollout.n=2"):
        plan_layout(["a", "a", "a"], [1] * 3, 2, 1, 1, balanced)
    with pytest.raises(ValueError, match="no prompt group of this batch is complete"):
        plan_layout(["a", "b"], [1] * 2, 2, 1, 2, balanced)
