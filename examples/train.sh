#!/usr/bin/env bash
# Train one method with the CW-GRPO recipe (the paper's settings). Every variable can be set from the environment;
# extra arguments are passed on as Hydra overrides. Usually called by the per-run scripts beside it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/_lib.sh"

METHOD=${METHOD:-cwgrpo}                      # cwgrpo | grpo | clip_cov | kl_cov
PRESET=${PRESET:-r1_distill_1.5b}             # the paper's two models: r1_distill_1.5b | qwen_math_7b
case "$PRESET" in  # paper: 1.5B 100 steps, accuracy + format; 7B 150 steps, accuracy only
    r1_distill_1.5b) DEFAULT_MODEL=deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B DEFAULT_STEPS=100 DEFAULT_FORMAT=1.0
                     DEFAULT_RESPONSE=4096 ;;
    qwen_math_7b)    DEFAULT_MODEL=Qwen/Qwen2.5-Math-7B-Instruct DEFAULT_STEPS=150 DEFAULT_FORMAT=0.0
                     DEFAULT_RESPONSE=3584 ;;  # 512 + 3584 = the 4096-token context of Qwen2.5-Math-7B
    *) echo "unknown PRESET=$PRESET (r1_distill_1.5b, qwen_math_7b)" >&2; exit 2 ;;
esac
MODEL_PATH=${MODEL_PATH:-$DEFAULT_MODEL}
DATA_DIR=${DATA_DIR:-$PWD/data}               # written by examples/prepare_data.sh
NNODES=${NNODES:-1}
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-4}
TOTAL_STEPS=${TOTAL_STEPS:-$DEFAULT_STEPS}
SAVE_FREQ=${SAVE_FREQ:-50}
TEST_FREQ=${TEST_FREQ:-50}
PROMPTS_PER_STEP=${PROMPTS_PER_STEP:-12}
GROUP_SIZE=${GROUP_SIZE:-12}
LR=${LR:-1e-6}
KL_COEF=${KL_COEF:-0.04}
TEMPERATURE=${TEMPERATURE:-0.7}
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-512}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-$DEFAULT_RESPONSE}
FORMAT_WEIGHT=${FORMAT_WEIGHT:-$DEFAULT_FORMAT}  # 0: accuracy-only reward
CW_SCOPE=${CW_SCOPE:-group}                   # micro_batch | group | batch
ROLLOUT_TP=${ROLLOUT_TP:-1}
GPU_MEMORY_UTILIZATION=${GPU_MEMORY_UTILIZATION:-0.6}
PROJECT_NAME=${PROJECT_NAME:-cwgrpo}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-${METHOD}-$(basename "$MODEL_PATH")}
CHECKPOINT_DIR=${CHECKPOINT_DIR:-$PWD/checkpoints/$PROJECT_NAME/$EXPERIMENT_NAME}
LOGGER=${LOGGER:-"[console,file]"}

# The methods differ only in the policy loss (Clip-Cov / KL-Cov at the paper's settings, GRPO = no reweighting).
case "$METHOD" in
    cwgrpo)   METHOD_ARGS=(actor_rollout_ref.actor.policy_loss.loss_mode=cw_grpo
                           actor_rollout_ref.actor.policy_loss.cw_scope="$CW_SCOPE") ;;
    grpo)     METHOD_ARGS=(actor_rollout_ref.actor.policy_loss.loss_mode=vanilla
                           actor_rollout_ref.actor.policy_loss.cw_scope=micro_batch) ;;
    clip_cov) METHOD_ARGS=(actor_rollout_ref.actor.policy_loss.loss_mode=clip_cov
                           actor_rollout_ref.actor.policy_loss.cw_scope=micro_batch
                           actor_rollout_ref.actor.policy_loss.clip_cov_ratio=0.0002
                           actor_rollout_ref.actor.policy_loss.clip_cov_lb=1.0
                           actor_rollout_ref.actor.policy_loss.clip_cov_ub=5.0) ;;
    kl_cov)   METHOD_ARGS=(actor_rollout_ref.actor.policy_loss.loss_mode=kl_cov
                           actor_rollout_ref.actor.policy_loss.cw_scope=micro_batch
                           actor_rollout_ref.actor.policy_loss.kl_cov_ratio=0.002
                           actor_rollout_ref.actor.policy_loss.ppo_kl_coef=1.0) ;;
    *) echo "unknown METHOD=$METHOD (cwgrpo, grpo, clip_cov, kl_cov)" >&2; exit 2 ;;
esac

run_entry recipe.cwgrpo.main_cwgrpo \
    data.train_files="$DATA_DIR/open_rs.parquet" \
    data.val_files="[$DATA_DIR/aime24.parquet,$DATA_DIR/math500.parquet,$DATA_DIR/amc23.parquet,$DATA_DIR/minerva.parquet,$DATA_DIR/olympiadbench.parquet]" \
    data.train_batch_size="$PROMPTS_PER_STEP" \
    data.max_prompt_length="$MAX_PROMPT_LENGTH" \
    data.max_response_length="$MAX_RESPONSE_LENGTH" \
    actor_rollout_ref.model.path="$MODEL_PATH" \
    actor_rollout_ref.actor.optim.lr="$LR" \
    actor_rollout_ref.actor.ppo_mini_batch_size="$PROMPTS_PER_STEP" \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$GROUP_SIZE" \
    actor_rollout_ref.actor.kl_loss_coef="$KL_COEF" \
    actor_rollout_ref.rollout.n="$GROUP_SIZE" \
    actor_rollout_ref.rollout.temperature="$TEMPERATURE" \
    actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP" \
    actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION" \
    +reward.custom_reward_function.reward_kwargs.format_weight="$FORMAT_WEIGHT" \
    trainer.project_name="$PROJECT_NAME" \
    trainer.experiment_name="$EXPERIMENT_NAME" \
    trainer.default_local_dir="$CHECKPOINT_DIR" \
    trainer.logger="$LOGGER" \
    trainer.nnodes="$NNODES" \
    trainer.n_gpus_per_node="$N_GPUS_PER_NODE" \
    trainer.total_training_steps="$TOTAL_STEPS" \
    trainer.save_freq="$SAVE_FREQ" \
    trainer.test_freq="$TEST_FREQ" \
    "${METHOD_ARGS[@]}" "$@"
