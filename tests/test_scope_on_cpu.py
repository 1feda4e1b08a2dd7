"""cw_scope=group|batch and the cw_grpo advantage estimator, through verl's own compute_advantage and DataProto."""

import numpy as np
import pytest
import torch
from verl import DataProto
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.trainer.ppo.ray_trainer import compute_advantage

from cwgrpo_verl.config import RECIPE_ENV
from cwgrpo_verl.core import cw_weights
from cwgrpo_verl.scope import scoped_weights, weight_advantages

from helpers import actor_config, random_batch
from reference import reference_group_advantages, reference_loss

CW = get_policy_loss_fn("cw_grpo")
GROUPS, G, T = 4, 6, 10


@pytest.fixture(autouse=True)
def recipe_env(monkeypatch):
    monkeypatch.setenv(RECIPE_ENV, "1")  # as set by the recipe entry point, so group/batch configs can be built


def make_batch(seed=0, shuffle=False):
    """GROUPS prompt groups of G responses with 0/1 rewards, old log-probs, and uids, as verl's trainer holds them."""
    g = torch.Generator().manual_seed(seed)
    n = GROUPS * G
    lengths = torch.randint(1, T + 1, (n,), generator=g)
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).long()
    scores = torch.randint(0, 2, (n,), generator=g).double()
    scores[:G] = 1.0  # one group with all-equal rewards (advantage 0)
    rewards = torch.zeros(n, T, dtype=torch.float64)
    rewards[torch.arange(n), lengths - 1] = scores
    old = -torch.rand(n, T, generator=g, dtype=torch.float64) * 3
    uids = np.array([f"prompt-{i // G}" for i in range(n)], dtype=object)
    order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards[order], "response_mask": mask[order], "old_log_probs": old[order]},
        non_tensors={"uid": uids[order.numpy()]},
    )
    return data, order


@pytest.mark.parametrize("norm_by_std", [True, False])
def test_estimator_through_verls_compute_advantage(norm_by_std):
    data, _ = make_batch(1)
    config = {"norm_adv_by_std_in_grpo": norm_by_std, "cw_adv_epsilon": 1e-4}
    out = compute_advantage(data, adv_estimator="cw_grpo", config=config)
    scores = data.batch["token_level_rewards"].sum(-1).tolist()
    expected = reference_group_advantages(scores, list(data.non_tensor_batch["uid"]), 1e-4, norm_by_std)
    mask = data.batch["response_mask"].bool()
    for i, value in enumerate(expected):
        row = out.batch["advantages"][i]
        assert torch.allclose(row[mask[i]], torch.full_like(row[mask[i]], value), atol=1e-6)
        assert (row[~mask[i]] == 0).all()


def _advantages(data):
    return compute_advantage(data, adv_estimator="cw_grpo", config={"cw_adv_epsilon": 1e-4}).batch["advantages"]


def _weights(data, scope, **opts):
    adv = _advantages(data)
    weighted, metrics = scoped_weights(
        adv, data.batch["old_log_probs"], data.batch["response_mask"], list(data.non_tensor_batch["uid"]), scope=scope, **opts
    )
    return adv, weighted, metrics


@pytest.mark.parametrize("opts", [{}, {"logp_center": "batch", "normalizer": "valid_tokens"}])
def test_group_scope_equals_micro_batch_scope_on_a_one_group_micro_batch(opts):
    data, _ = make_batch(2)
    adv, weighted, _ = _weights(data, "group", **opts)
    lp, mask = data.batch["old_log_probs"], data.batch["response_mask"]
    for k in range(GROUPS):
        rows = slice(k * G, (k + 1) * G)
        micro = cw_weights(lp[rows], adv[rows], mask[rows], detach=True, **opts).weights
        torch.testing.assert_close(weighted[rows], micro * adv[rows])
        # the same through the policy loss: micro-batch scope, log_prob == old_log_prob, detached weights
        keys = {"logp_center": "cw_logp_center", "normalizer": "cw_normalizer"}
        cfg = actor_config(cw_detach_weights=True, **{keys[k2]: v for k2, v in opts.items()})
        cfg_group = actor_config(cw_scope="group")
        args = dict(old_log_prob=lp[rows], log_prob=lp[rows], response_mask=mask[rows].bool(), loss_agg_mode="token-mean")
        micro_loss, _ = CW(advantages=adv[rows], config=cfg, **args)
        group_loss, _ = CW(advantages=weighted[rows], config=cfg_group, **args)
        torch.testing.assert_close(micro_loss, group_loss)


def test_batch_scope_equals_micro_batch_scope_when_the_micro_batch_is_the_batch():
    data, _ = make_batch(3)
    adv, weighted, metrics = _weights(data, "batch")
    micro = cw_weights(data.batch["old_log_probs"], adv, data.batch["response_mask"], detach=True).weights
    torch.testing.assert_close(weighted, micro * adv)
    assert metrics["cw/num_statistics"] == 1 and metrics["cw/num_groups"] == GROUPS


def test_group_scope_matches_the_loop_reference():
    data, _ = make_batch(4)
    adv, weighted, _ = _weights(data, "group")
    lp, mask = data.batch["old_log_probs"], data.batch["response_mask"].bool()
    uids = list(data.non_tensor_batch["uid"])
    cfg = actor_config(cw_scope="group", loss_agg_mode="seq-mean-token-mean")
    ours, _ = CW(old_log_prob=lp, log_prob=lp, advantages=weighted, response_mask=mask, loss_agg_mode="seq-mean-token-mean", config=cfg)
    ref = reference_loss(lp.tolist(), lp.clone(), adv.tolist(), mask.tolist(), detach=True, groups=uids, agg="seq-mean-token-mean")
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-9, atol=1e-12)


def test_group_weights_do_not_depend_on_row_order():
    data, _ = make_batch(5)
    shuffled, order = make_batch(5, shuffle=True)
    _, weighted, _ = _weights(data, "group")
    _, weighted_shuffled, _ = _weights(shuffled, "group")
    torch.testing.assert_close(weighted_shuffled, weighted[order])


def test_weights_are_applied_once():
    """Scope group: the trainer weights, the loss must not. Weighting twice would give a different loss."""
    data, _ = make_batch(6)
    adv = _advantages(data)
    metrics = weight_advantages(data_with(data, adv), actor_config(cw_scope="group").policy_loss)
    weighted = data.batch["advantages"]
    lp, mask = data.batch["old_log_probs"], data.batch["response_mask"].bool()
    args = dict(old_log_prob=lp, log_prob=lp, response_mask=mask, loss_agg_mode="token-mean")
    loss_group, loss_metrics = CW(advantages=weighted, config=actor_config(cw_scope="group"), **args)
    loss_plain, _ = get_policy_loss_fn("vanilla")(advantages=weighted, config=actor_config("vanilla"), **args)
    loss_twice, _ = CW(advantages=weighted, config=actor_config(cw_detach_weights=True), **args)
    torch.testing.assert_close(loss_group, loss_plain)
    assert not torch.allclose(loss_group, loss_twice)
    assert not torch.allclose(weighted, adv)
    assert loss_metrics["actor/cw/scope"] == 1.0 and "actor/cw/weight_mean" not in loss_metrics
    assert metrics["cw/scope"] == 1.0 and metrics["cw/num_statistics"] == GROUPS
    assert metrics["cw/responses_per_statistic"] == G and metrics["cw/num_groups"] == GROUPS


def data_with(data, advantages):
    data.batch["advantages"] = advantages
    return data


def test_all_equal_reward_group_keeps_weight_one():
    data, _ = make_batch(7)
    adv, weighted, _ = _weights(data, "group", normalizer="valid_tokens")
    torch.testing.assert_close(weighted[:G], adv[:G])  # group 0: advantage 0, weights 1 (and 0 * 1 = 0)
