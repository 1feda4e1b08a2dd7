"""``trainer.v1.trainer_mode=cwgrpo``: verl's synchronous trainer (``PPOTrainerSync``) with a few stages overridden.

- ``_balance_batch``: verl's load balancing over whole prompt groups instead of rows, for every method, so every
  rank, mini-batch and micro-batch holds whole groups on any number of GPUs: where the groups do not split evenly
  over the ranks each mini-batch is filled up with padding groups (verl's own padding rows), and a group that misses
  responses (a failed rollout session) is dropped (``cwgrpo_verl.groups.plan_layout``). The actor workers get a
  loss function that normalises by the real rows and hands each micro-batch's groups to ``cw_grpo``.
- ``_compute_advantage``: after verl's advantages, the observe-only covariance statistics of every method
  (``cov/*``), the extreme-token log every ``cwgrpo.token_log_every`` steps (``cwgrpo_verl.tokens``), and the
  weights of ``cwgrpo.scope=batch`` (the actor then runs verl's ``vanilla`` loss on them).
- ``_compute_old_log_prob``, ``_compute_ref_log_prob``, ``_update_actor``: at ``cwgrpo.logprob_temperature``
  (the authors: 1.0, raw logits) instead of the sampling temperature, when it is set.
- ``_init_dataloader``: ``cwgrpo.stop_at_step`` ends the run early without changing the learning-rate schedule.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import uuid
from functools import partial

import torch
import transfer_queue as tq
from tensordict import TensorDict
from transfer_queue import KVBatchMeta
from verl import DataProto
from verl.trainer.ppo.padding_utils import SYNTHETIC_PADDING_SEQ_LEN, construct_minimal_padding_template
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.seqlen_balancing import calculate_workload, get_seqlen_balanced_partitions, log_seqlen_unbalance
from verl.utils.tensordict_utils import list_of_dict_to_tensordict
from verl.workers.utils.padding import response_to_nested

from cwgrpo_verl import LOSS_NAME
from cwgrpo_verl import tokens
from cwgrpo_verl.core import cw_weights
from cwgrpo_verl.groups import Layout, group_ids, plan_layout
from cwgrpo_verl.loss import UPDATE_ROWS_KEY, recipe_ppo_loss
from cwgrpo_verl.metrics import mean_over_micro_batches_with_tokens
from cwgrpo_verl.scope import batch_scope_weights, covariance_metrics, group_covariance
from recipe.cwgrpo.batching import rank_rows_multiple
from recipe.cwgrpo.options import RecipeOptions
from recipe.cwgrpo.preflight import token_log_path

TRAINER_NAME = "cwgrpo"
logger = logging.getLogger(__name__)


def _uid(key: str) -> str:
    """verl's sample keys are ``{uid}_{session}_{index}`` (uids are uuid4 strings, without underscores)."""
    return key.split("_", 1)[0]


@contextlib.contextmanager
def _override(node, key: str, value):
    """Set ``node[key]`` for the duration (verl's stages read the config when they send a batch to the workers)."""
    before = node[key]
    node[key] = value
    try:
        yield
    finally:
        node[key] = before


class CWGRPOTrainer(PPOTrainerSync):
    """PPOTrainerSync with whole prompt groups per micro-batch, covariance statistics and the recipe's options."""

    _layout: Layout | None = None
    _warned_padding = False
    _logged_tokens = False  # the token log covers the first step this process trains, resumed or not

    # verl's base trainer keys its synchronous behaviour on the mode's *name* being "sync" (the replay buffer that
    # keeps a group with a failed session, no TransferQueue state in checkpoints, whole-batch prompt fetches);
    # any other name gets the asynchronous trainers' behaviour. This trainer is synchronous: it answers "sync".
    @property
    def trainer_mode(self) -> str:
        return "sync"

    @trainer_mode.setter
    def trainer_mode(self, name: str) -> None:
        if name != TRAINER_NAME:
            raise ValueError(f"CWGRPOTrainer runs as trainer.v1.trainer_mode={TRAINER_NAME}, got {name!r}")

    @property
    def _policy_loss(self):
        return self.config.actor_rollout_ref.actor.policy_loss

    @property
    def _options(self) -> RecipeOptions:
        return RecipeOptions.from_config(self.config)

    @property
    def _cw_scope(self):
        """The scope of the CW weights, or None when the loss does not weight (the baselines)."""
        return self._options.scope if self._policy_loss.get("loss_mode") == LOSS_NAME else None

    @property
    def _group_size(self) -> int:
        return self.config.actor_rollout_ref.rollout.n

    # ---- schedule ---------------------------------------------------------------------------------------------
    def _init_dataloader(self):
        super()._init_dataloader()  # sets the optimizer's horizon from trainer.total_training_steps
        stop = self._options.stop_at_step
        if stop is not None and stop < self.total_training_steps:
            logger.info("cwgrpo.stop_at_step=%s: stopping at step %s of a %s-step schedule",
                        stop, stop, self.total_training_steps)
            self.total_training_steps = stop

    # ---- whole prompt groups ----------------------------------------------------------------------------------
    def _setup(self):
        super()._setup()
        actor = copy.deepcopy(self.config.actor_rollout_ref.actor)
        if self._cw_scope == "batch":  # the advantages arrive weighted (_compute_advantage): plain PPO clip on them
            actor.policy_loss.loss_mode = "vanilla"
        self.actor_rollout_wg.set_loss_fn(
            partial(recipe_ppo_loss, config=omega_conf_to_dataclass(actor), group_scope=self._cw_scope == "group"))

    def _dp_size(self) -> int:
        worker_group = self.actor_rollout_wg
        if "actor" not in worker_group._dispatch_info:
            worker_group._dispatch_info["actor"] = worker_group._query_dispatch_info("actor")
        return max(worker_group._dispatch_info["actor"]) + 1

    def _balance_batch(self, batch, metrics, logging_prefix="global_seqlen", keep_minibatch=False):
        """verl's balancing over whole prompt groups: each rank and mini-batch gets whole groups, padding groups
        where they do not split evenly, and the groups that miss responses are dropped."""
        dp_size, n = self._dp_size(), self._group_size
        seq_lens = [tag["seq_len"] for tag in batch.tags]
        layout = plan_layout(
            [_uid(k) for k in batch.keys], calculate_workload(torch.tensor(seq_lens)).tolist(), n, dp_size,
            self.config.actor_rollout_ref.actor.ppo_mini_batch_size,
            partial(get_seqlen_balanced_partitions, equal_size=True),
            padding_workload=int(calculate_workload(torch.tensor([SYNTHETIC_PADDING_SEQ_LEN]))[0]),
            rank_rows_multiple=rank_rows_multiple(self.config, self.use_reference_policy),
        )
        batch = self._apply_layout(batch, layout)
        self._layout = layout
        metrics["groups/padding"] = float(layout.padding_groups)
        metrics["groups/dropped_incomplete"] = float(len(layout.dropped))
        if layout.dropped:
            logger.warning("step %s: dropped %s prompt group(s) missing responses (failed rollout sessions): %s",
                           self.global_steps, len(layout.dropped),
                           ", ".join(f"{uid} ({rows} of {n})" for uid, rows in layout.dropped.items()))
        if layout.padding_groups and not self._warned_padding:
            self._warned_padding = True
            logger.warning(
                "the prompt groups do not split evenly over %s data-parallel ranks: mini-batches are filled up with "
                "padding groups of %s rows that contribute nothing (%s this step; logged as groups/padding)",
                dp_size, n, layout.padding_groups)
        rows_per_rank = len(batch) // dp_size
        partitions = [list(range(r * rows_per_rank, (r + 1) * rows_per_rank)) for r in range(dp_size)]
        metrics.update(log_seqlen_unbalance(seqlen_list=[tag["seq_len"] for tag in batch.tags],
                                            partitions=partitions, prefix=logging_prefix))
        return batch

    def _apply_layout(self, batch, layout: Layout):
        """The batch in the layout's order: the dropped groups' rows cleared, and verl's own padding rows
        (``is_padding``, no valid response token, zero reward) written for each padding group under a fresh uid."""
        n = self._group_size
        kept = [row for row in layout.order if row is not None]
        if layout.padding_groups:  # verl's template: the fields of a real row, emptied
            source = tq.kv_batch_get(keys=[batch.keys[kept[0]]], partition_id=batch.partition_id)[0]
            template, template_tag = construct_minimal_padding_template(source, batch.tags[kept[0]],
                                                                        self.tokenizer.eos_token_id)
        dropped = [key for row, key in enumerate(batch.keys) if row not in set(kept)]
        if dropped:
            tq.kv_clear(keys=dropped, partition_id=batch.partition_id)
        keys, tags, padding = [], [], []
        for start in range(0, len(layout.order), n):
            rows = layout.order[start : start + n]
            if rows[0] is not None:
                keys += [batch.keys[r] for r in rows]
                tags += [batch.tags[r] for r in rows]
                continue
            uid = f"pad{uuid.uuid4().hex}"  # verl's padding uid form, one per group: a group of its own
            for session in range(n):
                sample = copy.deepcopy(template)
                sample["uid"] = uid
                if "session_id" in sample:
                    sample["session_id"] = session
                keys.append(f"{uid}_{session}_0")
                tags.append(copy.deepcopy(template_tag))
                padding.append((keys[-1], tags[-1], sample))
        if padding:
            pad_keys, pad_tags, pad_samples = zip(*padding)
            tq.kv_batch_put(keys=list(pad_keys), partition_id=batch.partition_id,
                            fields=list_of_dict_to_tensordict(list(pad_samples)), tags=list(pad_tags))
        return KVBatchMeta(keys=keys, tags=tags, partition_id=batch.partition_id, fields=batch.fields,
                           extra_info=batch.extra_info)

    def _update_actor(self, batch, metrics):
        """One mini-batch is the layout's whole groups of every rank (padding included); the loss normalises by its
        real rows (``UPDATE_ROWS_KEY``), so padding changes neither the loss nor the gradient."""
        layout, actor = self._layout, self.config.actor_rollout_ref.actor
        if actor.use_dynamic_bsz:
            # verl's dynamic micro-batching keeps runs of this many consecutive rows together: whole groups
            batch.extra_info["force_group_size"] = self._group_size
        batch.extra_info[UPDATE_ROWS_KEY] = max(layout.real_rows)
        with self._logprob_temperature(), _override(actor, "ppo_mini_batch_size", layout.groups_per_rank * self._dp_size()):
            batch = super()._update_actor(batch, metrics)
        mean_over_micro_batches_with_tokens(metrics, prefix="actor/cw/")
        return batch

    # ---- covariance statistics of every method; cwgrpo.scope=batch --------------------------------------------
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
        real_uids = [u for u, r in zip(uids, real) if r]
        cov = group_covariance(old[real], adv[real], mask[real], real_uids,
                               logp_center=options.get("cw_logp_center", "sequence"))
        metrics.update(covariance_metrics(cov, mask[real]))
        if tokens.due(self.global_steps, self._options.token_log_every, first=not self._logged_tokens):
            self._log_tokens(batch, real, real_uids, old[real], adv[real], mask[real], cov)
            self._logged_tokens = True
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

    def _log_tokens(self, batch, real, uids, old, adv, mask, cov):
        """The step's extreme tokens, appended to ``<experiment>.tokens.jsonl`` beside the metrics log. ``w`` is the
        weight CW-GRPO gives the token with the run's options, per prompt group (over the batch for
        ``cwgrpo.scope=batch``); for the other methods it is observe-only, and only CW-GRPO logs its most
        down-weighted tokens. One fetch of the step's token ids and rewards, on logged steps only."""
        options = self._policy_loss
        scope = self._cw_scope
        segments = {}
        if scope != "batch":
            groups = group_ids(uids, device=adv.device)
            segments = dict(segment_ids=groups.ids, num_segments=groups.count)
        with torch.no_grad():
            weights = cw_weights(old, adv, mask, logp_center=options.get("cw_logp_center", "sequence"),
                                 normalizer=options.get("cw_normalizer", "padded"),
                                 bandwidth_scale=float(options.get("cw_bandwidth_scale", 1.0)), detach=True,
                                 **segments).weights
        picks = tokens.extreme_positions(cov, mask, self._options.token_log_top_k,
                                         weights if scope is not None else None)
        keys = [key for key, r in zip(batch.keys, real.tolist()) if r]
        data = tq.kv_batch_get(keys=keys, partition_id=batch.partition_id,
                               select_fields=["prompts", "responses", "rm_scores"])
        responses = [row.tolist() for row in data["responses"].unbind()]
        records = tokens.token_records(
            self.global_steps, picks, responses=responses, decode=self.tokenizer.decode, uids=uids,
            advantages=adv, log_prob=old, cov=cov, weights=weights,
            rewards=[float(row.sum()) for row in data["rm_scores"].unbind()],
            prompts=[row.tolist() for row in data["prompts"].unbind()])
        tokens.append(token_log_path(self.config), records)

    # ---- log-prob temperature ---------------------------------------------------------------------------------
    def _logprob_temperature(self):
        """verl's stages send ``rollout.temperature`` to the workers, which divide the logits by it; swap in
        ``cwgrpo.logprob_temperature`` for the stage's duration (sampling happens elsewhere and is unaffected)."""
        temperature = self._options.logprob_temperature
        if temperature is None:
            return contextlib.nullcontext()
        return _override(self.config.actor_rollout_ref.rollout, "temperature", temperature)

    def _compute_old_log_prob(self, batch, metrics):
        with self._logprob_temperature():
            return super()._compute_old_log_prob(batch, metrics)

    def _compute_ref_log_prob(self, batch, metrics):
        with self._logprob_temperature():
            return super()._compute_ref_log_prob(batch, metrics)


if TRAINER_REGISTRY.get(TRAINER_NAME) is None:
    register_trainer(TRAINER_NAME)(CWGRPOTrainer)
