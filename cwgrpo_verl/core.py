"""The CW-GRPO math, free of verl so it runs (and can be timed) anywhere torch runs.

For token t of response i:

    cov_it = (logp_it - mu_logp) * (A_it - mu_A)
    sigma  = population std of cov over the valid tokens of the scope (+ 1e-8)
    w_it   = exp(-cov_it^2 / (2 h^2)),  h = bandwidth_scale * sigma
    w~_it  = N * w_it / sum(w)          (N: see ``normalizer``)

and the token's advantage becomes ``w~_it * A_it``. Statistics are taken per *segment*: the whole input
(a micro-batch, or a whole training batch) or each prompt group, given by ``segment_ids``.

Defaults reproduce the authors' released code (github.com/WangCheng0116/CW-GRPO at 4259d83,
``src/open_r1/trl/trainer/grpo_trainer.py``, ``compute_loss`` with ``use_ours: true``):
``logp_center="sequence"`` (mu_logp is the response's own mean log-prob), ``normalizer="padded"``
(N = rows x longest response, so the mean weight over valid tokens is >= 1), and weights not detached.
mu_A is the mean advantage over the responses (rows with at least one valid token) of the segment.

All-equal rewards give cov = 0 and sigma = 0: every kernel value is 1 and the weights are N / (valid tokens),
exactly 1 with ``normalizer="valid_tokens"`` and above 1 with ``"padded"`` when the responses differ in length
(as in the authors' code).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

LOGP_CENTERS = ("sequence", "batch")
NORMALIZERS = ("padded", "valid_tokens")
SIGMA_EPS = 1e-8  # added to the std, as in the authors' code: keeps the kernel defined when sigma = 0
LOGP_FLOOR = -1e4  # -inf log-probs would turn every statistic into NaN; e^-10000 is 0 in any dtype


class CWWeights(NamedTuple):
    """Normalised weights and the per-token covariance they came from (both 0 on padding)."""

    weights: torch.Tensor  # (B, T) float32 (float64 for float64 input), carries grad unless detached
    cov: torch.Tensor  # (B, T), same dtype


def _segment_sum(values: torch.Tensor, segment_ids: Optional[torch.Tensor], num_segments: int) -> torch.Tensor:
    """Sum a per-row vector into segments; one segment means a plain sum (keeps autograd, no sync)."""
    if segment_ids is None:
        return values.sum().reshape(1)
    return torch.zeros(num_segments, dtype=values.dtype, device=values.device).index_add(0, segment_ids, values)


def _per_row(seg_values: torch.Tensor, segment_ids: Optional[torch.Tensor]) -> torch.Tensor:
    """Broadcast a per-segment vector back to rows, shape (B, 1)."""
    if segment_ids is None:
        return seg_values.reshape(1, 1)
    return seg_values[segment_ids].unsqueeze(-1)


def token_covariance(
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    logp_center: str = "sequence",
    segment_ids: Optional[torch.Tensor] = None,
    num_segments: Optional[int] = None,
) -> torch.Tensor:
    """cov_it = (logp_it - mu_logp) * (A_it - mu_A) per valid token, 0 on padding; (B, T), float32 or wider.

    mu_logp is the response's own mean log-prob (``"sequence"``) or the mean over the segment's tokens
    (``"batch"``); mu_A is the mean advantage over the segment's responses. The gradient flows through
    ``log_prob`` (detach it for weights without one); the advantage is data.
    """
    if logp_center not in LOGP_CENTERS:
        raise ValueError(f"logp_center must be one of {LOGP_CENTERS}, got {logp_center!r}")
    if segment_ids is not None and num_segments is None:
        raise ValueError("num_segments is required with segment_ids")
    num_segments = 1 if segment_ids is None else int(num_segments)
    dtype = torch.promote_types(log_prob.dtype, torch.float32)  # bf16/fp16 statistics in float32
    mask = response_mask.bool()
    logp = torch.where(mask, log_prob.to(dtype), 0.0).clamp_min(LOGP_FLOOR)
    row_tokens = mask.to(dtype).sum(-1)
    row_tokens_safe = row_tokens.clamp_min(1.0)
    row_logp_sum = logp.sum(-1)
    if logp_center == "sequence":
        mu_logp = (row_logp_sum / row_tokens_safe).unsqueeze(-1)
    else:
        seg_tokens = _segment_sum(row_tokens, segment_ids, num_segments).clamp_min(1.0)
        mu_logp = _per_row(_segment_sum(row_logp_sum, segment_ids, num_segments) / seg_tokens, segment_ids)
    with torch.no_grad():  # the advantage is data: no gradient, and these passes stay out of the backward
        adv = torch.where(mask, advantages.to(dtype), 0.0)
        row_valid = (row_tokens > 0).to(dtype)
        row_adv = adv.sum(-1) / row_tokens_safe
        seg_rows = _segment_sum(row_valid, segment_ids, num_segments).clamp_min(1.0)
        mu_adv = _per_row(_segment_sum(row_adv * row_valid, segment_ids, num_segments) / seg_rows, segment_ids)
        adv_centred = torch.where(mask, adv - mu_adv, 0.0)
    return (logp - mu_logp) * adv_centred  # 0 on padding, where adv_centred is 0


def cw_weights(
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    logp_center: str = "sequence",
    normalizer: str = "padded",
    bandwidth_scale: float = 1.0,
    detach: bool = False,
    segment_ids: Optional[torch.Tensor] = None,
    num_segments: Optional[int] = None,
) -> CWWeights:
    """Gaussian-kernel covariance weights for a padded batch of responses.

    Args:
        log_prob: (B, T) log-probabilities of the sampled tokens (any float dtype; computed in float32).
        advantages: (B, T) token-level advantages (GRPO: the response's advantage on every valid token).
        response_mask: (B, T) bool/0-1 mask of valid response tokens.
        logp_center: "sequence" (per-response mean, authors' code) or "batch" (mean over the segment's tokens).
        normalizer: "padded" (N = responses x longest response of the segment, authors' code; rows without a
            valid token, such as padding, are no response) or "valid_tokens".
        bandwidth_scale: multiplies sigma; 1.0 is the paper's hyperparameter-free setting.
        detach: compute the weights from ``log_prob.detach()`` (no gradient through w).
        segment_ids: optional (B,) int64 segment (group) index per row in ``[0, num_segments)``; None = one segment.
        num_segments: number of segments when ``segment_ids`` is given (host int: avoids a device sync).
    """
    if normalizer not in NORMALIZERS:
        raise ValueError(f"normalizer must be one of {NORMALIZERS}, got {normalizer!r}")
    cov = token_covariance(
        log_prob.detach() if detach else log_prob, advantages, response_mask,
        logp_center=logp_center, segment_ids=segment_ids, num_segments=num_segments,
    )
    num_segments = 1 if segment_ids is None else int(num_segments)
    maskf = response_mask.bool().to(cov.dtype)
    row_tokens = maskf.sum(-1)
    seg_tokens = _segment_sum(row_tokens, segment_ids, num_segments)
    seg_tokens_safe = seg_tokens.clamp_min(1.0)

    cov_sq = cov.square()
    cov_mean = _segment_sum(cov.sum(-1), segment_ids, num_segments) / seg_tokens_safe
    var = _segment_sum(cov_sq.sum(-1), segment_ids, num_segments) / seg_tokens_safe - cov_mean.square()
    # clamp before sqrt: d sqrt(x)/dx is infinite at 0 (all-equal rewards) and would poison the gradient
    sigma = var.clamp_min(1e-30).sqrt()
    bandwidth = bandwidth_scale * (sigma + SIGMA_EPS)

    kernel = torch.exp(cov_sq * _per_row(-0.5 / bandwidth.square(), segment_ids)) * maskf

    if normalizer == "padded":
        if segment_ids is None:
            longest = row_tokens.max().reshape(1) if row_tokens.numel() else row_tokens.new_zeros(1)
        else:
            longest = row_tokens.new_zeros(num_segments).scatter_reduce(
                0, segment_ids, row_tokens, reduce="amax", include_self=True
            )
        seg_rows = _segment_sum((row_tokens > 0).to(row_tokens.dtype), segment_ids, num_segments)
        total = seg_rows * longest  # rows with a response: a padding row (no valid token) is not one
    else:
        total = seg_tokens
    kernel_sum = _segment_sum(kernel.sum(-1), segment_ids, num_segments)
    scale = torch.where(kernel_sum > 0, total / kernel_sum.clamp_min(1e-30), torch.ones_like(kernel_sum))
    weights = kernel * _per_row(scale, segment_ids)
    return CWWeights(weights=weights, cov=cov)


def ppo_clip_token_losses(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    clip_ratio_low: float,
    clip_ratio_high: float,
    clip_ratio_c: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token PPO clipped (and dual-clipped) loss, with verl's ``vanilla`` semantics.

    Returns the (B, T) loss matrix and 0-d tensor statistics (no ``.item()``: the caller transfers once).
    Gradient flows through ``advantages`` too when it carries one (non-detached CW weights).
    """
    if clip_ratio_c <= 1.0:
        raise ValueError(f"clip_ratio_c (dual-clip lower bound) must be > 1.0, got {clip_ratio_c}")
    mask = response_mask.bool()
    maskf = mask.float()
    denom = maskf.sum().clamp_min(1.0)
    # masked first: -inf - -inf on padding would be NaN, and NaN * 0 still poisons the gradient
    log_ratio = torch.where(mask, torch.clamp(log_prob - old_log_prob, min=-20.0, max=20.0), 0.0)
    ratio = torch.exp(log_ratio)
    loss_unclipped = -advantages * ratio
    loss_clipped = -advantages * torch.clamp(ratio, 1.0 - clip_ratio_low, 1.0 + clip_ratio_high)
    loss_ppo = torch.maximum(loss_unclipped, loss_clipped)
    loss_dual = -advantages * clip_ratio_c
    negative = advantages < 0
    loss_mat = torch.where(negative, torch.minimum(loss_dual, loss_ppo), loss_ppo)
    with torch.no_grad():
        stats = {
            "pg_clipfrac": ((loss_clipped > loss_unclipped).float() * maskf).sum() / denom,
            "ppo_kl": (-log_ratio * maskf).sum() / denom,
            "pg_clipfrac_lower": ((loss_ppo > loss_dual) & negative).float().mul(maskf).sum() / denom,
        }
    return loss_mat, stats
