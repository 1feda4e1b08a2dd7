"""What the recipe trainer computes over the whole batch before the update: the observe-only covariance
statistics of every method (cov/*) and the weights of cwgrpo.scope=batch."""

import math

import pytest
import torch
from helpers import actor_config, random_batch
from reference import reference_covariances, reference_weights
from verl.trainer.ppo.core_algos import get_policy_loss_fn

from cwgrpo_verl.metrics import COV_KEYS, TAIL_FRACTIONS
from cwgrpo_verl.scope import batch_scope_weights, covariance_metrics, group_covariance

CW = get_policy_loss_fn("cw_grpo")
VANILLA = get_policy_loss_fn("vanilla")


def loop_covariances(lp, adv, mask, uids):
    return sorted(reference_covariances(lp, adv, mask, uids).values())


def test_covariance_metrics_match_a_loop_reference():
    old, _, adv, mask = random_batch(3, batch=12, length=9, group_size=4)
    adv = adv + 0.3 * mask  # groups whose mean advantage is not 0
    uids = [f"g{i // 4}" for i in range(12)]
    metrics = covariance_metrics(group_covariance(old, adv, mask, uids), mask)
    assert set(metrics) == {f"cov/{k}" for k in COV_KEYS}
    covs = loop_covariances(old, adv, mask, uids)
    n = len(covs)
    mean = sum(covs) / n
    assert metrics["cov/num_tokens"] == n
    assert metrics["cov/mean"] == pytest.approx(mean, abs=1e-6)
    assert metrics["cov/std"] == pytest.approx(math.sqrt(sum((c - mean) ** 2 for c in covs) / n), rel=1e-5)
    for name, q in TAIL_FRACTIONS.items():
        k = max(1, math.ceil(n * q))
        assert metrics[f"cov/pos_top_{name}"] == pytest.approx(sum(covs[-k:]) / k, rel=1e-5, abs=1e-7)
        assert metrics[f"cov/neg_top_{name}"] == pytest.approx(sum(covs[:k]) / k, rel=1e-5, abs=1e-7)


def test_batch_scope_weights_equal_the_float64_reference_over_the_whole_batch():
    """One statistic over the whole batch (the paper text's "all N tokens"), detached: the weights equal the loop
    re-derivation over every row, and the actor's plain PPO clip on them (what the recipe runs for cwgrpo.scope=batch)
    equals the cw_grpo loss whose one micro-batch is that batch."""
    old, _, adv, mask = random_batch(4, batch=12, length=9, group_size=4, off_policy=False)
    weighted, metrics = batch_scope_weights(adv, old, mask)
    reference = reference_weights(old.double(), adv.tolist(), mask.tolist(), list(range(12)), center="sequence",
                                  normalizer="padded", scale=1.0, detach=True)
    expected = torch.zeros_like(adv, dtype=torch.float64)
    for (i, t), w in reference.items():
        expected[i, t] = float(w) * float(adv[i, t])
    torch.testing.assert_close(weighted.double(), expected, rtol=1e-5, atol=1e-7)
    assert metrics["cw/num_responses"] == 12 and "cw/cov_pos_top_1pct" not in metrics  # the tails are cov/*'s
    args = dict(old_log_prob=old, log_prob=old.clone(), response_mask=mask, loss_agg_mode="token-mean")
    batch_loss, _ = VANILLA(advantages=weighted, config=actor_config("vanilla"), **args)
    micro_loss, _ = CW(advantages=adv, config=actor_config(cw_detach_weights=True), **args)
    torch.testing.assert_close(batch_loss, micro_loss)
