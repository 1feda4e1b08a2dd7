"""``trainer.v1.trainer_mode=cwgrpo``: verl's synchronous trainer (``PPOTrainerSync``) with a few stages overridden.

- ``_balance_batch``: with ``cw_scope=group``, verl's load balancing over whole prompt groups instead of rows, so
  every rank, mini-batch and micro-batch holds whole groups (see ``cwgrpo_verl.groups``); the actor workers get a
  loss function that hands each micro-batch's groups to the ``cw_grpo`` loss.
- ``_compute_advantage``: after verl's advantages, the observe-only covariance statistics of every method
  (``cov/*``), and the weights of ``cw_scope=batch``.
- ``_compute_old_log_prob``, ``_compute_ref_log_prob``, ``_update_actor``: at ``cwgrpo.logprob_temperature``
  (the authors: 1.0, raw logits) instead of the sampling temperature, when it is set.
- ``_init_dataloader``: ``cwgrpo.stop_at_step`` ends the run early without changing the learning-rate schedule.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial

import torch
import transfer_queue as tq
from tensordict import TensorDict
from verl import DataProto
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.seqlen_balancing import calculate_workload, get_seqlen_balanced_partitions, log_seqlen_unbalance
from verl.workers.utils.padding import response_to_nested

from cwgrpo_verl import LOSS_NAME
from cwgrpo_verl.groups import whole_group_order
from cwgrpo_verl.loss import group_scope_ppo_loss
from cwgrpo_verl.scope import batch_scope_weights, covariance_metrics

TRAINER_NAME = "cwgrpo"
logger = logging.getLogger(__name__)


def _uid(key: str) -> str:
    """verl's sample keys are ``{uid}_{session}_{index}`` (uids are uuid4 strings, without underscores)."""
    return key.split("_", 1)[0]


class CWGRPOTrainer(PPOTrainerSync):
    """PPOTrainerSync with whole prompt groups per micro-batch, covariance statistics and the recipe's options."""

    @property
    def _policy_loss(self):
        return self.config.actor_rollout_ref.actor.policy_loss

    @property
    def _cw_scope(self):
        """The scope of the CW weights, or None when the loss does not weight (the baselines)."""
        if self._policy_loss.get("loss_mode") != LOSS_NAME:
            return None
        return self._policy_loss.get("cw_scope", "micro_batch")

    # ---- schedule ---------------------------------------------------------------------------------------------
    def _init_dataloader(self):
        super()._init_dataloader()  # sets the optimizer's horizon from trainer.total_training_steps
        stop = self.config.get("cwgrpo", {}).get("stop_at_step")
        if stop is not None and stop < self.total_training_steps:
            logger.info("cwgrpo.stop_at_step=%s: stopping at step %s of a %s-step schedule",
                        stop, stop, self.total_training_steps)
            self.total_training_steps = stop

    # ---- whole prompt groups (cw_scope=group) -----------------------------------------------------------------
    def _setup(self):
        super()._setup()
        if self._cw_scope == "group":
            actor_config = omega_conf_to_dataclass(self.config.actor_rollout_ref.actor)
            self.actor_rollout_wg.set_loss_fn(partial(group_scope_ppo_loss, config=actor_config))

    def _balance_batch(self, batch, metrics, logging_prefix="global_seqlen", keep_minibatch=False):
        if self._cw_scope != "group":
            return super()._balance_batch(batch, metrics, logging_prefix, keep_minibatch)
        worker_group = self.actor_rollout_wg
        if "actor" not in worker_group._dispatch_info:
            worker_group._dispatch_info["actor"] = worker_group._query_dispatch_info("actor")
        dp_size = max(worker_group._dispatch_info["actor"]) + 1
        required = self._get_required_batch_multiple(dp_size)
        if len(batch) % required:
            raise ValueError(
                f"cw_scope=group: a batch of {len(batch)} responses is not a multiple of {required} (the data-parallel "
                "size and actor mini-batch); verl would pad it with rows that belong to no prompt group. "
                "Make data.train_batch_size a multiple of actor_rollout_ref.actor.ppo_mini_batch_size and of the "
                "data-parallel size."
            )
        seq_lens = [tag["seq_len"] for tag in batch.tags]
        workloads = calculate_workload(torch.tensor(seq_lens, dtype=torch.int64)).tolist()
        order = whole_group_order([_uid(k) for k in batch.keys], workloads, dp_size,
                                  partial(get_seqlen_balanced_partitions, equal_size=True))
        batch.reorder(order)
        rows_per_rank = len(order) // dp_size
        partitions = [list(range(r * rows_per_rank, (r + 1) * rows_per_rank)) for r in range(dp_size)]
        metrics.update(log_seqlen_unbalance(seqlen_list=[seq_lens[i] for i in order], partitions=partitions,
                                            prefix=logging_prefix))
        return batch

    def _update_actor(self, batch, metrics):
        if self._cw_scope == "group" and self.config.actor_rollout_ref.actor.use_dynamic_bsz:
            # verl's dynamic micro-batching keeps runs of this many consecutive rows together: whole groups
            batch.extra_info["force_group_size"] = self.config.actor_rollout_ref.rollout.n
        with self._logprob_temperature():
            return super()._update_actor(batch, metrics)

    # ---- covariance statistics of every method; cw_scope=batch ------------------------------------------------
    def _compute_advantage(self, batch, metrics: dict):
        batch = super()._compute_advantage(batch, metrics)
        fields = ["uid", "response_mask", "old_log_probs", "advantages"]
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        response_mask = data["response_mask"]
        proto = DataProto(batch=data.to_padded_tensor())
        uids = proto.batch.pop("uid").tolist()
        real = torch.tensor([not tag.get("is_padding", False) for tag in batch.tags])
        adv, old, mask = proto.batch["advantages"], proto.batch["old_log_probs"], proto.batch["response_mask"]
        options = self._policy_loss
        metrics.update(covariance_metrics(old[real], adv[real], mask[real], [u for u, r in zip(uids, real) if r],
                                          logp_center=options.get("cw_logp_center", "sequence")))
        if self._cw_scope != "batch":
            return batch
        weighted, weight_metrics = batch_scope_weights(
            adv, old, mask.bool() & real.unsqueeze(-1), logp_center=options.get("cw_logp_center", "sequence"),
            normalizer=options.get("cw_normalizer", "padded"),
            bandwidth_scale=float(options.get("cw_bandwidth_scale", 1.0)),
        )
        metrics.update(weight_metrics)
        output = TensorDict({"advantages": response_to_nested(weighted, response_mask)}, batch_size=len(batch))
        return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=output)

    # ---- log-prob temperature ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _logprob_temperature(self):
        """verl's stages send ``rollout.temperature`` to the workers, which divide the logits by it; swap in
        ``cwgrpo.logprob_temperature`` for the stage's duration (sampling happens elsewhere and is unaffected)."""
        temperature = self.config.get("cwgrpo", {}).get("logprob_temperature")
        rollout = self.config.actor_rollout_ref.rollout
        sampling = rollout.temperature
        if temperature is None:
            yield
            return
        rollout.temperature = temperature
        try:
            yield
        finally:
            rollout.temperature = sampling

    def _compute_old_log_prob(self, batch, metrics):
        with self._logprob_temperature():
            return super()._compute_old_log_prob(batch, metrics)

    def _compute_ref_log_prob(self, batch, metrics):
        with self._logprob_temperature():
            return super()._compute_ref_log_prob(batch, metrics)


if TRAINER_REGISTRY.get(TRAINER_NAME) is None:
    register_trainer(TRAINER_NAME)(CWGRPOTrainer)
