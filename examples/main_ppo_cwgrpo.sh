#!/usr/bin/env bash
# CW-GRPO with plain `python -m verl.trainer.main_ppo`: only flags, no recipe. Statistics per micro-batch, so the
# micro-batch holds at least one group (GROUP_SIZE). METHOD=grpo gives the GRPO baseline with the same command.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/_lib.sh"

METHOD=${METHOD:-cwgrpo}                      # cwgrpo | grpo
MODEL_PATH=${MODEL_PATH:-deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B}
DATA_DIR=${DATA_DIR:-$PWD/data}
NNODES=${NNODES:-1}
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-4}
TOTAL_STEPS=${TOTAL_STEPS:-100}
PROMPTS_PER_STEP=${PROMPTS_PER_STEP:-12}
GROUP_SIZE=${GROUP_SIZE:-12}
LR=${LR:-1e-6}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-4096}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-main_ppo-${METHOD}-$(basename "$MODEL_PATH")}

case "$METHOD" in
    cwgrpo) LOSS_ARGS=(actor_rollout_ref.actor.policy_loss._target_=cwgrpo_verl.config.CWGRPOPolicyLossConfig
                       actor_rollout_ref.actor.policy_loss.loss_mode=cw_grpo
                       +actor_rollout_ref.actor.policy_loss.cw_logp_center=sequence
                       +actor_rollout_ref.actor.policy_loss.cw_normalizer=padded
                       +actor_rollout_ref.actor.policy_loss.cw_detach_weights=false
                       +actor_rollout_ref.actor.policy_loss.cw_bandwidth_scale=1.0) ;;
    grpo)   LOSS_ARGS=(actor_rollout_ref.actor.policy_loss.loss_mode=vanilla) ;;
    *) echo "unknown METHOD=$METHOD (cwgrpo, grpo)" >&2; exit 2 ;;
esac

run_entry verl.trainer.main_ppo \
    algorithm.adv_estimator=cw_grpo \
    data.train_files="$DATA_DIR/open_rs.parquet" \
    data.val_files="[$DATA_DIR/aime24.parquet,$DATA_DIR/math500.parquet,$DATA_DIR/amc23.parquet,$DATA_DIR/minerva.parquet,$DATA_DIR/olympiadbench.parquet]" \
    data.train_batch_size="$PROMPTS_PER_STEP" \
    data.max_prompt_length=512 \
    data.max_response_length="$MAX_RESPONSE_LENGTH" \
    data.filter_overlong_prompts=true \
    actor_rollout_ref.model.path="$MODEL_PATH" \
    actor_rollout_ref.model.enable_gradient_checkpointing=true \
    actor_rollout_ref.actor.optim.lr="$LR" \
    actor_rollout_ref.actor.ppo_mini_batch_size="$PROMPTS_PER_STEP" \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$GROUP_SIZE" \
    actor_rollout_ref.actor.use_kl_loss=true \
    actor_rollout_ref.actor.kl_loss_coef=0.04 \
    actor_rollout_ref.actor.kl_loss_type=k3 \
    actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n="$GROUP_SIZE" \
    actor_rollout_ref.rollout.temperature=0.7 \
    actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu="$GROUP_SIZE" \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu="$GROUP_SIZE" \
    reward.custom_reward_function.path=pkg://cwgrpo_verl.reward \
    reward.custom_reward_function.name=compute_score \
    trainer.project_name=cwgrpo \
    trainer.experiment_name="$EXPERIMENT_NAME" \
    trainer.logger="[console,file]" \
    trainer.nnodes="$NNODES" \
    trainer.n_gpus_per_node="$N_GPUS_PER_NODE" \
    trainer.total_training_steps="$TOTAL_STEPS" \
    trainer.test_freq=50 \
    trainer.save_freq=50 \
    "${LOSS_ARGS[@]}" "$@"
