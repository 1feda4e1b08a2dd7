"""``trainer.v1.trainer_mode=cwgrpo``: verl's synchronous trainer (``PPOTrainerSync``) with a few stages overridden
(how prompt groups stay whole and exact: docs/method.md).

- ``_balance_batch``: verl's load balancing over whole prompt groups instead of rows, for every method; padding
  groups fill up ranks where the groups do not split evenly, and a group missing responses is dropped. The actor's
  loss function normalises by the real rows and hands each micro-batch's groups to ``cw_grpo``.
- ``_compute_advantage``: after verl's advantages, the covariance statistics of every method (``cov/*``), the
  extreme-token log, and the weights of ``cwgrpo.scope=batch`` (the actor then runs verl's ``vanilla`` loss on them).
- the log-prob stages and ``_update_actor`` at ``cwgrpo.logprob_temperature``; ``_init_dataloader``: the early end
  of ``cwgrpo.stop_at_step``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import uuid
from functools import cached_property, partial

import torch
import transfer_queue as tq
from tensordict import TensorDict
from transfer_queue import KVBatchMeta
from verl.trainer.ppo.padding_utils import SYNTHETIC_PADDING_SEQ_LEN, construct_minimal_padding_template
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.seqlen_balancing import calculate_workload, get_seqlen_balanced_partitions, log_seqlen_unbalance
from verl.utils.tensordict_utils import list_of_dict_to_tensordict
from verl.workers.utils.padding import response_to_nested

from cwgrpo_verl import LOSS_NAME
from cwgrpo_verl import tokens
from cwgrpo_verl.config import cw_options
from cwgrpo_verl.core import cw_weights
from cwgrpo_verl.groups import Layout, group_ids, plan_layout
from cwgrpo_verl.loss import UPDATE_ROWS_KEY, recipe_ppo_loss
from cwgrpo_verl.metrics import mean_over_micro_batches_with_tokens
from cwgrpo_verl.scope import batch_scope_weights, covariance_metrics, group_covariance
from recipe.cwgrpo.batching import rank_rows_multiple
from recipe.cwgrpo.checks import TRAINER_MODE, RecipeOptions
from recipe.cwgrpo.preflight import token_log_path

logger = logging.getLogger(__name__)


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
        if name != TRAINER_MODE:
            raise ValueError(f"CWGRPOTrainer runs as trainer.v1.trainer_mode={TRAINER_MODE}, got {name!r}")

    @cached_property
    def _options(self) -> RecipeOptions:
        """``cwgrpo.*``, checked in the driver; nothing changes them during a run."""
        return RecipeOptions.from_config(self.config)

    @property
    def _cw_scope(self):
        """The scope of the CW weights, or None when the loss does not weight (the baselines)."""
        loss_mode = self.config.actor_rollout_ref.actor.policy_loss.get("loss_mode")
        return self._options.scope if loss_mode == LOSS_NAME else None

    @cached_property
    def _cw_kwargs(self) -> dict:
        """The loss's options of the weights, as ``cw_weights`` takes them."""
        loss = cw_options(omega_conf_to_dataclass(self.config.actor_rollout_ref.actor.policy_loss))
        return dict(logp_center=loss.cw_logp_center, normalizer=loss.cw_normalizer,
                    bandwidth_scale=loss.cw_bandwidth_scale)

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
        layout = self._layout = plan_layout(
            [k.split("_", 1)[0] for k in batch.keys],  # verl's keys: {uid}_{session}_{index}, uuid4 uids
            calculate_workload(torch.tensor([tag["seq_len"] for tag in batch.tags])).tolist(), n, dp_size,
            self.config.actor_rollout_ref.actor.ppo_mini_batch_size,
            partial(get_seqlen_balanced_partitions, equal_size=True),
            padding_workload=int(calculate_workload(torch.tensor([SYNTHETIC_PADDING_SEQ_LEN]))[0]),
            rank_rows_multiple=rank_rows_multiple(self.config, self.use_reference_policy),
        )
        batch = self._apply_layout(batch, layout)
        metrics.update({"groups/padding": float(layout.padding_groups),
                        "groups/dropped_incomplete": float(len(layout.dropped))})
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
        rows = len(batch) // dp_size  # per rank: the dispatch hands each rank its consecutive slice
        metrics.update(log_seqlen_unbalance(seqlen_list=[tag["seq_len"] for tag in batch.tags], prefix=logging_prefix,
                                            partitions=[list(range(r * rows, (r + 1) * rows)) for r in range(dp_size)]))
        return batch

    def _apply_layout(self, batch, layout: Layout):
        """The batch in the layout's order: the dropped groups' rows cleared, and verl's own padding rows
        (``is_padding``, no valid response token, zero reward) written for each padding group under a fresh uid."""
        n, kept = self._group_size, [row for row in layout.order if row is not None]
        if dropped := sorted(set(range(len(batch))) - set(kept)):
            tq.kv_clear(keys=[batch.keys[row] for row in dropped], partition_id=batch.partition_id)
        if layout.padding_groups:  # verl's template: the fields of a real row, emptied
            template, template_tag = construct_minimal_padding_template(
                tq.kv_batch_get(keys=[batch.keys[kept[0]]], partition_id=batch.partition_id)[0], batch.tags[kept[0]],
                self.tokenizer.eos_token_id)
        keys, tags, padding = [], [], []
        for start in range(0, len(layout.order), n):
            rows = layout.order[start : start + n]
            if rows[0] is not None:
                keys += [batch.keys[r] for r in rows]
                tags += [batch.tags[r] for r in rows]
                continue
            uid = f"pad{uuid.uuid4().hex}"  # verl's padding uid form, one per group: a group of its own
            for session in range(n):
                sample = copy.deepcopy(template) | {"uid": uid}
                if "session_id" in sample:
                    sample["session_id"] = session
                padding.append((f"{uid}_{session}_0", copy.deepcopy(template_tag), sample))
                keys.append(padding[-1][0])
                tags.append(padding[-1][1])
        if padding:
            pad_keys, pad_tags, pad_samples = map(list, zip(*padding))
            tq.kv_batch_put(keys=pad_keys, partition_id=batch.partition_id,
                            fields=list_of_dict_to_tensordict(pad_samples), tags=pad_tags)
        return KVBatchMeta(keys=keys, tags=tags, partition_id=batch.partition_id, fields=batch.fields,
                           extra_info=batch.extra_info)

    def _update_actor(self, batch, metrics):
        """One mini-batch is the layout's whole groups of every rank (padding included); the loss normalises by its
        real rows (``UPDATE_ROWS_KEY``), so padding changes neither the loss nor the gradient."""
        layout, actor = self._layout, self.config.actor_rollout_ref.actor
        if actor.use_dynamic_bsz:  # verl's dynamic micro-batching keeps runs of this many consecutive rows together
            batch.extra_info["force_group_size"] = self._group_size
        batch.extra_info[UPDATE_ROWS_KEY] = max(layout.real_rows)
        mini_batch = layout.groups_per_rank * self._dp_size()
        with self._logprob_temperature(), _override(actor, "ppo_mini_batch_size", mini_batch):
            batch = super()._update_actor(batch, metrics)
        mean_over_micro_batches_with_tokens(metrics, prefix="actor/cw/")
        return batch

    # ---- covariance statistics of every method; cwgrpo.scope=batch --------------------------------------------
    def _compute_advantage(self, batch, metrics: dict):
        batch = super()._compute_advantage(batch, metrics)
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                               select_fields=["uid", "response_mask", "old_log_probs", "advantages"])
        response_mask, padded = data["response_mask"], data.to_padded_tensor()
        adv, old, mask = padded["advantages"], padded["old_log_probs"], padded["response_mask"]
        is_real = [not tag.get("is_padding", False) for tag in batch.tags]
        real = torch.tensor(is_real)
        real_uids = [u for u, r in zip(padded.get("uid").tolist(), is_real) if r]
        real_old, real_adv, real_mask = old[real], adv[real], mask[real]
        cov = group_covariance(real_old, real_adv, real_mask, real_uids, logp_center=self._cw_kwargs["logp_center"])
        metrics.update(covariance_metrics(cov, real_mask))
        if tokens.due(self.global_steps, self._options.token_log_every, first=not self._logged_tokens):
            self._log_tokens(batch, is_real, real_uids, real_old, real_adv, real_mask, cov)
            self._logged_tokens = True
        if self._cw_scope != "batch":
            return batch
        weighted, weight_metrics = batch_scope_weights(adv, old, mask.bool() & real.unsqueeze(-1), **self._cw_kwargs)
        metrics.update(weight_metrics)
        output = TensorDict({"advantages": response_to_nested(weighted, response_mask)}, batch_size=len(batch))
        return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=output)

    def _log_tokens(self, batch, is_real, uids, old, adv, mask, cov):
        """The step's extreme tokens, appended to ``<experiment>.tokens.jsonl``. ``w`` is the weight CW-GRPO gives the
        token with the run's options (observe-only for the other methods, which do not log the most down-weighted
        tokens). One fetch of the step's token ids and rewards, on logged steps only."""
        scope, segments = self._cw_scope, {}
        if scope != "batch":
            groups = group_ids(uids, device=adv.device)
            segments = dict(segment_ids=groups.ids, num_segments=groups.count)
        with torch.no_grad():
            weights = cw_weights(old, adv, mask, detach=True, **self._cw_kwargs, **segments).weights
        picks = tokens.extreme_positions(cov, mask, self._options.token_log_top_k,
                                         weights if scope is not None else None)
        keys = [key for key, r in zip(batch.keys, is_real) if r]
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


if TRAINER_REGISTRY.get(TRAINER_MODE) is None:
    register_trainer(TRAINER_MODE)(CWGRPOTrainer)
