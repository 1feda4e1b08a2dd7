"""``trainer.v1.trainer_mode=cwgrpo``: verl's synchronous trainer plus group/batch-scope CW weights.

With ``policy_loss.cw_scope`` = ``group`` or ``batch`` the weights are computed right after the advantages,
over the whole training batch and its prompt groups (``uid``), from the old log-probs, and written back into
the advantages that the actor trains on. The ``cw_grpo`` loss then does not weight again.
"""

from __future__ import annotations

import numpy as np
import transfer_queue as tq
from tensordict import TensorDict
from verl import DataProto
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.workers.utils.padding import response_to_nested

from cwgrpo_verl.scope import weight_advantages

TRAINER_NAME = "cwgrpo"
_FIELDS = ["uid", "response_mask", "old_log_probs", "advantages"]


class CWGRPOTrainer(PPOTrainerSync):
    """PPOTrainerSync whose advantages carry the CW weights when the scope is a group or the batch."""

    def _compute_advantage(self, batch, metrics: dict):
        batch = super()._compute_advantage(batch, metrics)
        opts = self.config.actor_rollout_ref.actor.policy_loss
        if opts.get("cw_scope", "micro_batch") == "micro_batch":
            return batch
        # read back what verl's own advantage step just stored: one small extra round trip of (B, T) tensors,
        # rather than a copy of verl's whole _compute_advantage with the weighting spliced in
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=_FIELDS)
        response_mask = data["response_mask"]
        proto = DataProto(batch=data.to_padded_tensor())
        proto.non_tensor_batch["uid"] = np.array(proto.batch.pop("uid").tolist(), dtype=object)
        metrics.update(weight_advantages(proto, opts))
        advantages = response_to_nested(proto.batch["advantages"], response_mask)
        output = TensorDict({"advantages": advantages}, batch_size=len(batch))
        return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=output)


if TRAINER_REGISTRY.get(TRAINER_NAME) is None:
    register_trainer(TRAINER_NAME)(CWGRPOTrainer)
