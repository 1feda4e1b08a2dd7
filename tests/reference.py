"""An independent float64 re-derivation of CW-GRPO with plain Python loops, from the formulas in the notes.

Slow on purpose: every quantity is a 0-d float64 tensor built token by token, so autograd gives the
reference gradient. Shares no code with ``cwgrpo_verl``.
"""

import math

import torch


def _valid(mask, i, t):
    return bool(mask[i][t])


def reference_weights(lp, adv, mask, rows, *, center, normalizer, scale, detach):
    """Weights w~[i][t] (0-d tensors) for the rows listed in ``rows`` (one statistics scope)."""
    T = len(mask[0])
    src = lp.detach() if detach else lp
    logp = {(i, t): torch.clamp(src[i, t].double(), min=-1e4) for i in rows for t in range(T) if _valid(mask, i, t)}
    n_row = {i: sum(1 for t in range(T) if _valid(mask, i, t)) for i in rows}
    tokens = list(logp)
    if not tokens:
        return {}
    if center == "sequence":
        mu = {i: sum(logp[(i, t)] for t in range(T) if (i, t) in logp) / n_row[i] for i in rows if n_row[i] > 0}
    else:
        batch_mean = sum(logp.values()) / len(tokens)
        mu = {i: batch_mean for i in rows}
    a_row = {i: sum(float(adv[i][t]) for t in range(T) if _valid(mask, i, t)) / n_row[i] for i in rows if n_row[i]}
    mu_a = sum(a_row.values()) / len(a_row)
    cov = {(i, t): (logp[(i, t)] - mu[i]) * (float(adv[i][t]) - mu_a) for (i, t) in tokens}
    mean_c = sum(cov.values()) / len(tokens)
    var = sum((c - mean_c) ** 2 for c in cov.values()) / len(tokens)
    sigma = torch.sqrt(var) if float(var.detach()) > 0 else var * 0.0
    h = scale * (sigma + 1e-8)
    w = {k: torch.exp(-(c**2) / (2 * h**2)) for k, c in cov.items()}
    if normalizer == "padded":
        big_n = sum(1 for i in rows if n_row[i] > 0) * max(n_row.values())  # padding rows are no response
    else:
        big_n = len(tokens)
    total = sum(w.values())
    return {k: big_n * v / total for k, v in w.items()}


def reference_loss(
    old_lp,
    lp,
    adv,
    mask,
    *,
    center="sequence",
    normalizer="padded",
    scale=1.0,
    detach=False,
    groups=None,
    weighted=True,
    agg="token-mean",
    clip_low=0.2,
    clip_high=0.2,
    clip_c=3.0,
):
    """PPO clip / dual-clip loss on A~ = w~ * A, aggregated as verl's agg_loss does with dp_size 1."""
    B, T = len(mask), len(mask[0])
    scopes = [list(range(B))] if groups is None else [[i for i in range(B) if groups[i] == g] for g in sorted(set(groups))]
    w = {}
    if weighted:
        for rows in scopes:
            w.update(reference_weights(lp, adv, mask, rows, center=center, normalizer=normalizer, scale=scale, detach=detach))
    loss = {}
    for i in range(B):
        for t in range(T):
            if not _valid(mask, i, t):
                continue
            a = w.get((i, t), 1.0) * float(adv[i][t])
            ratio = torch.exp(torch.clamp(lp[i, t].double() - float(old_lp[i][t]), -20.0, 20.0))
            l1 = -a * ratio
            l2 = -a * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
            l_ppo = torch.maximum(l1, l2)
            if float(a.detach() if torch.is_tensor(a) else a) < 0:
                l_ppo = torch.minimum(l_ppo, -a * clip_c * torch.ones((), dtype=torch.float64))
            loss[(i, t)] = l_ppo
    if not loss:
        return lp.sum() * 0.0
    rows_tokens = {i: [loss[(i, t)] for t in range(T) if (i, t) in loss] for i in range(B)}
    rows_tokens = {i: v for i, v in rows_tokens.items() if v}
    if agg == "token-mean":
        return sum(loss.values()) / len(loss)
    if agg == "token-sum":
        return sum(loss.values())
    if agg == "seq-mean-token-mean":
        return sum(sum(v) / len(v) for v in rows_tokens.values()) / len(rows_tokens)
    if agg == "seq-mean-token-sum":
        return sum(sum(v) for v in rows_tokens.values()) / len(rows_tokens)
    if agg == "seq-mean-token-sum-norm":
        return sum(sum(v) for v in rows_tokens.values()) / len(rows_tokens) / T
    raise ValueError(agg)


def reference_group_advantages(scores, uids, epsilon=1e-4, norm_by_std=True):
    """(r - mean_g) / (unbiased std_g + eps) with plain Python; a one-response group gets mean 0, std 1 (verl)."""
    out = []
    for i, s in enumerate(scores):
        members = [scores[j] for j in range(len(scores)) if uids[j] == uids[i]]
        if len(members) == 1:
            mean, std = 0.0, 1.0
        else:
            mean = sum(members) / len(members)
            std = math.sqrt(sum((m - mean) ** 2 for m in members) / (len(members) - 1))
        out.append((s - mean) / (std + epsilon) if norm_by_std else s - mean)
    return out


def reference_covariances(lp, adv, mask, uids):
    """``{(row, t): cov}``: (logp_it - mean_t logp_i) * (A_i - mean over the prompt group's responses of A_i), with
    A_i a response's mean advantage, token by token (the statistic of ``cov/*`` and the token log)."""
    out = {}
    T = len(mask[0])
    a_row = {i: sum(float(adv[i][t]) for t in range(T) if _valid(mask, i, t)) / sum(1 for t in range(T) if _valid(mask, i, t))
             for i in range(len(uids)) if any(_valid(mask, i, t) for t in range(T))}
    for i in a_row:
        tokens = [t for t in range(T) if _valid(mask, i, t)]
        mu = sum(float(lp[i][t]) for t in tokens) / len(tokens)
        members = [j for j in a_row if uids[j] == uids[i]]
        mu_a = sum(a_row[j] for j in members) / len(members)
        for t in tokens:
            out[(i, t)] = (float(lp[i][t]) - mu) * (float(adv[i][t]) - mu_a)
    return out
