"""The cw_grpo policy loss against an independent loop reference, through verl's own ppo_loss, and vs vanilla."""

import logging
import math

import pytest
import torch
from helpers import AGG_MODES, OPTION_GRID, engine_micro_batch, random_batch
from helpers import actor_config as build_actor_config
from reference import reference_loss, reference_weights
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.workers.utils.losses import ppo_loss

from cwgrpo_verl import loss as cw_loss
from cwgrpo_verl.core import cw_weights
from cwgrpo_verl.metrics import WEIGHT_KEYS

CW = get_policy_loss_fn("cw_grpo")
VANILLA = get_policy_loss_fn("vanilla")


def _ours(old, lp, adv, mask, agg="token-mean", global_batch_info=None, **opts):
    lp = lp.clone().requires_grad_(True)
    cfg = actor_config(agg, **opts)
    cfg.global_batch_info.update(global_batch_info or {})
    loss, metrics = CW(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask, loss_agg_mode=agg, config=cfg)
    loss.backward()
    return loss.detach(), lp.grad, metrics


def _reference(old, lp, adv, mask, agg="token-mean", **opts):
    lp = lp.clone().requires_grad_(True)
    value = reference_loss(
        old.tolist(),
        lp,
        adv.tolist(),
        mask.tolist(),
        center=opts.get("cw_logp_center", "sequence"),
        normalizer=opts.get("cw_normalizer", "padded"),
        scale=opts.get("cw_bandwidth_scale", 1.0),
        detach=opts.get("cw_detach_weights", False),
        agg=agg,
    )
    value.backward()
    return value.detach(), lp.grad


def actor_config(agg="token-mean", **opts):
    return build_actor_config("cw_grpo", loss_agg_mode=agg, **opts)


@pytest.mark.parametrize("opts", OPTION_GRID, ids=lambda o: "-".join(str(v) for v in o.values()))
@pytest.mark.parametrize("scale", [1.0, 0.5, 3.0])
@pytest.mark.parametrize("seed", range(3))
def test_loss_and_gradient_match_loop_reference(opts, scale, seed):
    old, lp, adv, mask = random_batch(seed, batch=4 + seed, length=6 + 2 * seed)
    agg = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"][seed]
    ours, grad, _ = _ours(old, lp, adv, mask, agg, cw_bandwidth_scale=scale, **opts)
    ref, ref_grad = _reference(old, lp, adv, mask, agg, cw_bandwidth_scale=scale, **opts)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("agg", AGG_MODES)
def test_every_aggregation_mode_matches_reference(agg):
    old, lp, adv, mask = random_batch(11, batch=5, length=8)
    ours, grad, _ = _ours(old, lp, adv, mask, agg)
    ref, ref_grad = _reference(old, lp, adv, mask, agg)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-7, atol=1e-10)


def test_gradient_flows_through_weights_only_when_not_detached():
    old, lp, adv, mask = random_batch(3, off_policy=False)
    _, grad_live, _ = _ours(old, lp, adv, mask, cw_detach_weights=False)
    _, grad_detached, _ = _ours(old, lp, adv, mask, cw_detach_weights=True)
    assert not torch.allclose(grad_live, grad_detached)
    # detached: d loss / d logp = -(w~ A) / n_tokens on policy (ratio 1), token-mean, w~ from the loop reference
    ref = reference_weights(lp.double(), adv.double(), mask.tolist(), range(lp.shape[0]), center="sequence",
                            normalizer="padded", scale=1.0, detach=True)
    w = torch.zeros_like(lp)
    for (i, t), value in ref.items():
        w[i, t] = float(value)
    expected = -(w * adv) * mask / mask.sum()
    torch.testing.assert_close(grad_detached, expected)


def test_weights_normalise_as_documented():
    old, lp, adv, mask = random_batch(5, batch=6, length=10)
    valid = cw_weights(lp, adv, mask, normalizer="valid_tokens").weights
    assert valid[mask].mean().item() == pytest.approx(1.0, abs=1e-12)
    padded = cw_weights(lp, adv, mask, normalizer="padded").weights
    longest = mask.sum(-1).max().item()
    assert padded[mask].sum().item() == pytest.approx(mask.shape[0] * longest, rel=1e-12)
    assert (padded[~mask] == 0).all() and (valid[~mask] == 0).all()


@pytest.mark.parametrize("agg", AGG_MODES)
def test_equals_vanilla_when_every_weight_is_one(agg):
    """All-equal rewards give cov 0 and weight 1 (valid_tokens normaliser): the loss is exactly verl's vanilla."""
    old, lp, _, mask = random_batch(7, dtype=torch.float32)
    adv = torch.zeros_like(lp)  # equal rewards -> zero advantages -> sigma 0 -> weights 1
    adv_const = torch.full_like(lp, 0.7) * mask  # a constant advantage: centred A is 0 as well
    for a in (adv, adv_const):
        cfg_cw = actor_config(agg, cw_normalizer="valid_tokens")
        cfg_v = actor_config(agg)
        cw_value, cw_metrics = CW(old_log_prob=old, log_prob=lp, advantages=a, response_mask=mask, loss_agg_mode=agg, config=cfg_cw)
        v_value, v_metrics = VANILLA(old_log_prob=old, log_prob=lp, advantages=a, response_mask=mask, loss_agg_mode=agg, config=cfg_v)
        torch.testing.assert_close(cw_value, v_value)
        for key, value in v_metrics.items():
            assert cw_metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
        assert cw_metrics["actor/cw/weight_min"] == pytest.approx(1.0) and cw_metrics["actor/cw/weight_max"] == pytest.approx(1.0)


def test_equals_vanilla_with_weights_multiplied_in():
    """Detached weights: cw_grpo == vanilla(A * w~), for clipped, dual-clipped and unclipped tokens alike."""
    old, lp, adv, mask = random_batch(9, batch=8, length=12, dtype=torch.float32)
    old = old + torch.randn_like(old)  # push ratios far outside the clip range
    w = cw_weights(lp, adv, mask, detach=True).weights
    cfg = actor_config("seq-mean-token-mean", cw_detach_weights=True)
    ours, metrics = CW(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask, loss_agg_mode=cfg.loss_agg_mode, config=cfg)
    theirs, v_metrics = VANILLA(
        old_log_prob=old, log_prob=lp, advantages=adv * w, response_mask=mask, loss_agg_mode=cfg.loss_agg_mode, config=cfg
    )
    torch.testing.assert_close(ours, theirs)
    assert v_metrics["actor/pg_clipfrac"] > 0 and v_metrics["actor/pg_clipfrac_lower"] > 0
    for key, value in v_metrics.items():
        assert metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


def test_rollout_is_weights_multiply_the_token_losses():
    old, lp, adv, mask = random_batch(2, dtype=torch.float32)
    is_w = torch.rand_like(lp)
    cfg = actor_config(cw_detach_weights=True)
    base = dict(old_log_prob=old, log_prob=lp, response_mask=mask, loss_agg_mode="token-sum", config=cfg)
    with_is, _ = CW(advantages=adv, rollout_is_weights=is_w, **base)
    w = cw_weights(lp, adv, mask, detach=True).weights
    expected, _ = VANILLA(advantages=adv * w, rollout_is_weights=is_w, **base)
    torch.testing.assert_close(with_is, expected)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_through_verls_ppo_loss(agg):
    old, lp, adv, mask = random_batch(13, batch=5, length=7)
    n_tokens, n_rows = int(mask.sum()), mask.shape[0]
    data, out = engine_micro_batch(old, lp, adv, mask, batch_num_tokens=n_tokens, global_batch_size=n_rows)
    cfg = actor_config(agg)
    cfg_ref = actor_config(agg)
    total, metrics = ppo_loss(cfg, out, data)
    total.backward()
    ref_lp = lp.clone().requires_grad_(True)
    width = int(mask.sum(-1).max())  # verl pads the micro-batch to its longest response
    ref = reference_loss(old[:, :width].tolist(), ref_lp[:, :width], adv[:, :width].tolist(), mask[:, :width].tolist(), agg=agg)
    ref.backward()
    torch.testing.assert_close(total.detach(), ref.detach(), rtol=1e-9, atol=1e-11)
    grad = torch.zeros_like(lp)
    for i, n in enumerate(mask.sum(-1).tolist()):
        start = sum(3 + m for m in mask.sum(-1).tolist()[:i]) + 2
        grad[i, :n] = out["log_probs"].grad[start : start + n]
    torch.testing.assert_close(grad, ref_lp.grad, rtol=1e-7, atol=1e-10)
    assert {f"actor/cw/{k}" for k in WEIGHT_KEYS} <= set(metrics)
    assert cfg_ref.global_batch_info == {}


def test_global_batch_info_scales_like_vanilla():
    """With dp_size 2 and global counts, cw_grpo and vanilla normalise identically (weights 1 here)."""
    old, lp, _, mask = random_batch(4, dtype=torch.float32)
    adv = torch.zeros_like(lp)
    info = dict(dp_size=2, batch_num_tokens=100, global_batch_size=12, loss_scale_factor=None)
    for agg in AGG_MODES:
        cfg_cw, cfg_v = actor_config(agg, cw_normalizer="valid_tokens"), actor_config(agg)
        cfg_cw.global_batch_info.update(info)
        cfg_v.global_batch_info.update(info)
        a, _ = CW(old_log_prob=old, log_prob=lp, advantages=adv + 0.5 * mask, response_mask=mask, loss_agg_mode=agg, config=cfg_cw)
        b, _ = VANILLA(old_log_prob=old, log_prob=lp, advantages=adv + 0.5 * mask, response_mask=mask, loss_agg_mode=agg, config=cfg_v)
        torch.testing.assert_close(a, b)


def test_same_metric_keys_on_every_call():
    keys = None
    for seed, (b, t) in enumerate([(6, 9), (1, 4), (3, 1), (2, 12)]):
        old, lp, adv, mask = random_batch(seed, batch=b, length=t)
        _, _, metrics = _ours(old, lp, adv, mask)
        keys = keys or set(metrics)
        assert set(metrics) == keys
        assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())


DEGENERATE = {
    "all_equal_rewards": lambda old, lp, adv, mask: (old, lp, torch.zeros_like(adv), mask),
    "one_valid_token": lambda old, lp, adv, mask: (old, lp, adv, torch.zeros_like(mask).index_put_((torch.tensor([0]), torch.tensor([0])), torch.tensor(True))),
    "all_padding_row": lambda old, lp, adv, mask: (old, lp, adv * mask.index_fill(0, torch.tensor([1]), False), mask.index_fill(0, torch.tensor([1]), False)),
    "empty_mask": lambda old, lp, adv, mask: (old, lp, adv, torch.zeros_like(mask)),
    "one_response": lambda old, lp, adv, mask: (old[:1], lp[:1], adv[:1] + 1.0 * mask[:1], mask[:1]),
    "very_negative_logp": lambda old, lp, adv, mask: (old - 1e3, lp - 1e3, adv, mask),
    "minus_inf_on_padding": lambda old, lp, adv, mask: (old.masked_fill(~mask, -math.inf), lp.masked_fill(~mask, -math.inf), adv, mask),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
@pytest.mark.parametrize("opts", OPTION_GRID[::3], ids=str)
def test_degenerate_inputs_stay_finite(case, opts):
    old, lp, adv, mask = DEGENERATE[case](*random_batch(21, batch=4, length=6, dtype=torch.float32))
    # as in the engine: token and sequence counts of the global mini-batch (an empty micro-batch is still 0/N)
    info = dict(dp_size=1, batch_num_tokens=24, global_batch_size=4, loss_scale_factor=None)
    loss, grad, metrics = _ours(old, lp, adv, mask, global_batch_info=info, **opts)
    assert torch.isfinite(loss) and torch.isfinite(grad).all(), case
    assert all(math.isfinite(v) for v in metrics.values()), case
    if case in ("all_equal_rewards", "one_response", "one_valid_token"):
        w = cw_weights(lp, adv, mask, normalizer="valid_tokens").weights
        torch.testing.assert_close(w[mask], torch.ones_like(w[mask]))


# 100 float32 ulps: float32 arithmetic on these sums is ~2e-7 off float64; bf16's resolution is 7.8e-3
FLOAT32_TOLERANCE = 100 * torch.finfo(torch.float32).eps


@pytest.mark.parametrize("seed", range(3))
def test_bf16_inputs_compute_statistics_in_float32(seed):
    """bf16 log-probs and advantages are weighted in float32: on the same bf16-rounded inputs the covariances and
    weights equal a float64 computation to float32 precision. Mutation tried: computing the statistics in the input
    dtype (``dtype = log_prob.dtype`` in core.token_covariance) puts them 5e-3 (relative) off, 400x the tolerance:
    fails."""
    old, lp, adv, mask = random_batch(8 + seed, dtype=torch.float32)
    lp16, adv16 = lp.bfloat16(), adv.bfloat16()
    got, exact = cw_weights(lp16, adv16, mask), cw_weights(lp16.double(), adv16.double(), mask)
    assert got.weights.dtype == torch.float32
    for ours, reference in ((got.cov, exact.cov), (got.weights, exact.weights)):
        scale = reference.abs().max()
        torch.testing.assert_close(ours.double(), reference, rtol=0, atol=FLOAT32_TOLERANCE * scale)
    _, grad, _ = _ours(old.bfloat16(), lp16, adv16, mask)
    assert torch.isfinite(grad).all() and grad.dtype == torch.bfloat16


def test_warns_once_when_a_micro_batch_holds_one_response(caplog):
    cw_loss._warned.clear()
    old, lp, adv, mask = random_batch(1, batch=1)
    with caplog.at_level(logging.WARNING, logger="cwgrpo_verl.loss"):
        _ours(old, lp, adv, mask)
        _ours(old, lp, adv, mask)
    hits = [r for r in caplog.records if "single response" in r.getMessage()]
    assert len(hits) == 1


def test_warns_when_micro_batch_is_smaller_than_a_group(caplog):
    cw_loss._warned.clear()
    old, lp, adv, mask = random_batch(1, batch=3)
    with caplog.at_level(logging.WARNING, logger="cwgrpo_verl.loss"):
        cfg = build_actor_config("cw_grpo", rollout_n=8)
        CW(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask, loss_agg_mode="token-mean", config=cfg)
    assert any("fewer than one group" in r.getMessage() for r in caplog.records)


def test_loss_benchmark_runs_and_reports_ratios():
    import subprocess
    import sys

    from helpers import REPO

    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_loss.py"), "--batch", "12", "--length", "64",
                          "--iters", "2"], capture_output=True, text=True, check=True, timeout=300).stdout
    assert "main_ppo: cw_grpo, micro-batch" in out and "recipe: per group of 12, no tails" in out and "ratio" in out and "verl vanilla" in out


def test_a_micro_batch_of_padding_only_leaves_the_weight_statistics_as_they_are():
    """verl averages each metric over every micro-batch; one holding only padding (no valid token) reports 0 and
    has_tokens 0, and the recipe's trainer turns the mean back into the mean over micro-batches with tokens."""
    from cwgrpo_verl.metrics import mean_over_micro_batches_with_tokens

    old, lp, adv, mask = random_batch(5, batch=4, length=6, dtype=torch.float32)
    _, _, real = _ours(old, lp, adv, mask)
    _, _, padding = _ours(old, lp, adv, torch.zeros_like(mask))
    assert padding["actor/cw/has_tokens"] == 0.0 and real["actor/cw/has_tokens"] == 1.0
    assert all(v == 0.0 for k, v in padding.items() if k.startswith("actor/cw/") and k != "actor/cw/scope")
    verl_mean = {k: (real[k] + padding[k]) / 2 for k in real}  # what verl logs for the two micro-batches
    mean_over_micro_batches_with_tokens(verl_mean, prefix="actor/cw/")
    for key, value in real.items():
        if key.startswith("actor/cw/") and key != "actor/cw/has_tokens":
            assert verl_mean[key] == pytest.approx(value), key
