"""The cw_grpo advantage estimator through verl's own compute_advantage and DataProto."""

import numpy as np
import pytest
import torch
from reference import reference_group_advantages
from verl import DataProto
from verl.trainer.ppo.ray_trainer import compute_advantage

GROUPS, G, T = 4, 6, 10


def make_batch(seed=0):
    """GROUPS prompt groups of G responses with 0/1 rewards and uids, one group with all-equal rewards."""
    g = torch.Generator().manual_seed(seed)
    n = GROUPS * G
    lengths = torch.randint(1, T + 1, (n,), generator=g)
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).long()
    scores = torch.randint(0, 2, (n,), generator=g).double()
    scores[:G] = 1.0
    rewards = torch.zeros(n, T, dtype=torch.float64)
    rewards[torch.arange(n), lengths - 1] = scores
    uids = np.array([f"prompt-{i // G}" for i in range(n)], dtype=object)
    return DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask}, non_tensors={"uid": uids})


@pytest.mark.parametrize("norm_by_std", [True, False])
def test_estimator_through_verls_compute_advantage(norm_by_std):
    data = make_batch(1)
    config = {"norm_adv_by_std_in_grpo": norm_by_std, "cw_adv_epsilon": 1e-4}
    out = compute_advantage(data, adv_estimator="cw_grpo", config=config)
    scores = data.batch["token_level_rewards"].sum(-1).tolist()
    expected = reference_group_advantages(scores, list(data.non_tensor_batch["uid"]), 1e-4, norm_by_std)
    mask = data.batch["response_mask"].bool()
    for i, value in enumerate(expected):
        row = out.batch["advantages"][i]
        assert torch.allclose(row[mask[i]], torch.full_like(row[mask[i]], value), atol=1e-6)
        assert (row[~mask[i]] == 0).all()


def test_zero_epsilon_is_refused_when_dividing_by_the_std():
    """A group of equal rewards has std 0: epsilon 0 would give 0/0 = NaN advantages for it."""
    with pytest.raises(ValueError, match="cw_adv_epsilon=0 with algorithm.norm_adv_by_std_in_grpo=true"):
        compute_advantage(make_batch(2), adv_estimator="cw_grpo", config={"cw_adv_epsilon": 0.0})
    out = compute_advantage(make_batch(2), adv_estimator="cw_grpo",
                            config={"cw_adv_epsilon": 0.0, "norm_adv_by_std_in_grpo": False})
    assert torch.isfinite(out.batch["advantages"]).all()
