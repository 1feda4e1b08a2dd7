#!/usr/bin/env bash
# CW-GRPO with plain `python -m verl.trainer.main_ppo`: the README's flags on a GRPO run, no recipe. Statistics per
# micro-batch (cwgrpo.scope=micro_batch), so a micro-batch holds one group's worth of responses; the recipe's
# cwgrpo.scope=group is exact per prompt group. METHOD=grpo gives the GRPO baseline with the same command.
# Not a paper run: where the recipe pins the authors' settings this keeps verl's defaults (a constant learning rate,
# greedy validation, no seed, log-probs at the sampling temperature, row-level batching); use the per-run scripts
# (r1_distill_1.5b_*.sh, qwen_math_7b_*.sh) to reproduce the paper.
# The environment sets paths and cluster (MODEL_PATH, DATA_DIR, EXPERIMENT_NAME, CHECKPOINT_DIR, NNODES,
# N_GPUS_PER_NODE); arguments are Hydra overrides.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/_lib.sh"

METHOD=${METHOD:-cwgrpo}                      # cwgrpo | grpo
group_size=12
prompts_per_step=12

case "$METHOD" in
    cwgrpo) loss_args=(actor_rollout_ref.actor.policy_loss._target_=cwgrpo_verl.config.CWGRPOPolicyLossConfig
                       actor_rollout_ref.actor.policy_loss.loss_mode=cw_grpo
                       +actor_rollout_ref.actor.policy_loss.cw_logp_center=sequence
                       +actor_rollout_ref.actor.policy_loss.cw_normalizer=padded
                       +actor_rollout_ref.actor.policy_loss.cw_detach_weights=false
                       +actor_rollout_ref.actor.policy_loss.cw_bandwidth_scale=1.0) ;;
    grpo)   loss_args=(actor_rollout_ref.actor.policy_loss.loss_mode=vanilla) ;;
    *) echo "unknown METHOD=$METHOD (cwgrpo, grpo)" >&2; exit 2 ;;
esac

MODEL_PATH=${MODEL_PATH:-deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B}
DATA_DIR=${DATA_DIR:-$PWD/data}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-main_ppo-${METHOD}-$(basename "$MODEL_PATH")}

val_files=$("${PYTHON:-python3}" -m cwgrpo_verl.data_sets val-files "$DATA_DIR") ||  # data_sets.py's sets
    { echo "main_ppo_cwgrpo.sh: PYTHON=${PYTHON:-python3} cannot run cwgrpo_verl (pip install -e . there)" >&2; exit 2; }

run_entry verl.trainer.main_ppo \
    algorithm.adv_estimator=cw_grpo \
    data.train_files="$DATA_DIR/open_rs.parquet" \
    data.val_files="$val_files" \
    data.train_batch_size=$prompts_per_step \
    data.max_prompt_length=512 \
    data.max_response_length=4096 \
    data.filter_overlong_prompts=true \
    actor_rollout_ref.model.path="$MODEL_PATH" \
    actor_rollout_ref.model.enable_gradient_checkpointing=true \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.optim.weight_decay=0.0 \
    actor_rollout_ref.actor.ppo_mini_batch_size=$prompts_per_step \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=$group_size \
    actor_rollout_ref.actor.use_kl_loss=true \
    actor_rollout_ref.actor.kl_loss_coef=0.04 \
    actor_rollout_ref.actor.kl_loss_type=k3 \
    actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=$group_size \
    actor_rollout_ref.rollout.temperature=0.7 \
    actor_rollout_ref.rollout.max_model_len=4096 \
    actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=$group_size \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=$group_size \
    reward.custom_reward_function.path=pkg://cwgrpo_verl.reward \
    reward.custom_reward_function.name=compute_score \
    trainer.project_name=cwgrpo \
    trainer.experiment_name="$EXPERIMENT_NAME" \
    trainer.default_local_dir="${CHECKPOINT_DIR:-$PWD/checkpoints/cwgrpo/$EXPERIMENT_NAME}" \
    trainer.logger="[console,file]" \
    trainer.nnodes="${NNODES:-1}" \
    trainer.n_gpus_per_node="${N_GPUS_PER_NODE:-4}" \
    trainer.total_training_steps=300 \
    trainer.test_freq=50 \
    trainer.save_freq=50 \
    "${loss_args[@]}" "$@"
