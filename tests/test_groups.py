"""cw_scope=group: statistics per prompt group inside a micro-batch, with the gradient through the weights, through
the loss function the recipe installs on the actor workers (verl's ppo_loss plus the micro-batch's uid column)."""

import pytest
import torch
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.utils.seqlen_balancing import get_seqlen_balanced_partitions

from cwgrpo_verl.config import RECIPE_ENV
from cwgrpo_verl.groups import check_whole_groups, group_ids, micro_batch_groups, whole_group_order
from cwgrpo_verl.loss import group_scope_ppo_loss

from helpers import OPTION_GRID, actor_config, engine_micro_batch, flat_grad_to_padded, random_batch
from reference import reference_loss

CW = get_policy_loss_fn("cw_grpo")


@pytest.fixture(autouse=True)
def recipe_env(monkeypatch):
    monkeypatch.setenv(RECIPE_ENV, "1")  # as the recipe entry point sets it: group-scope configs can be built


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
    config = actor_config("cw_grpo", loss_agg_mode=agg, rollout_n=uids.count(uids[0]), cw_scope="group", **opts)
    loss, metrics = group_scope_ppo_loss(config, out, data)
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
    assert metrics["actor/cw/scope"].aggregate() == 1.0


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum"])
def test_other_aggregations_match_the_loop_reference(agg):
    batch = grouped_batch(5, groups=2, group_size=5)
    ours, grad, _ = through_the_actor_loss(*batch, agg=agg)
    ref, ref_grad = reference(*batch, agg=agg)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-7, atol=1e-10)


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


def test_group_scope_without_the_recipes_groups_is_an_error():
    old, lp, adv, mask = random_batch(0)
    config = actor_config("cw_grpo", cw_scope="group")
    with pytest.raises(RuntimeError, match="only the CW-GRPO recipe's trainer hands to the loss"):
        CW(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask, loss_agg_mode="token-mean", config=config)


def test_group_numbering_does_not_matter():
    old, lp, adv, mask, uids = grouped_batch(4)
    config = actor_config("cw_grpo", cw_scope="group")
    ids = group_ids(uids)
    renumbered = ids._replace(ids=ids.count - 1 - ids.ids)  # the same groups, numbered backwards
    values = []
    for groups in (ids, renumbered):
        with micro_batch_groups(groups):
            values.append(CW(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask,
                             loss_agg_mode="token-mean", config=config)[0])
    torch.testing.assert_close(values[0], values[1], rtol=1e-12, atol=1e-12)


def balanced(workloads, ranks):
    return get_seqlen_balanced_partitions(workloads, k_partitions=ranks, equal_size=True)


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_whole_group_order_gives_every_rank_whole_contiguous_groups(ranks):
    g = torch.Generator().manual_seed(ranks)
    group_size, groups = 3, 8
    uids = [f"u{i // group_size}" for i in torch.randperm(groups * group_size, generator=g).tolist()]  # shuffled
    workloads = torch.randint(1, 1000, (len(uids),), generator=g).tolist()
    order = whole_group_order(uids, workloads, ranks, balanced)
    assert sorted(order) == list(range(len(uids)))
    ordered = [uids[i] for i in order]
    per_rank = len(order) // ranks
    for r in range(ranks):
        chunk = ordered[r * per_rank : (r + 1) * per_rank]
        for start in range(0, per_rank, group_size):  # every run of group_size rows is one whole group
            assert len(set(chunk[start : start + group_size])) == 1
        check_whole_groups(chunk, group_size)
    loads = [sum(workloads[i] for i in order[r * per_rank : (r + 1) * per_rank]) for r in range(ranks)]
    assert max(loads) - min(loads) <= max(workloads) * group_size  # balanced to within about one group


def test_whole_group_order_refuses_what_cannot_be_split():
    with pytest.raises(ValueError, match="3 prompt groups cannot be split evenly over 2"):
        whole_group_order(["a", "a", "b", "b", "c", "c"], [1] * 6, 2, balanced)
    with pytest.raises(ValueError, match="different sizes"):
        whole_group_order(["a", "a", "b"], [1] * 3, 1, balanced)
