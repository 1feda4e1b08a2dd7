#!/usr/bin/env bash
# Evaluate a model (base or a trained checkpoint in HF format) on the five sets with the paper's sampling:
# a validation-only verl run (vLLM, temperature 0.6, top_p 0.95), N_SAMPLES per problem (1 = the paper's pass@1).
# Scores use the evaluation rules of cwgrpo_verl.reward (chosen by each row's data_source). Logs go to the
# file logger: feed them to `python -m cwgrpo_verl.report`.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/_lib.sh"

MODEL_PATH=${MODEL_PATH:-deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B}
DATA_DIR=${DATA_DIR:-$PWD/data}
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-4}
NNODES=${NNODES:-1}
N_SAMPLES=${N_SAMPLES:-1}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-32768}   # the paper: 32768 for the 1.5B, 4096 for the 7B
TEMPERATURE=${TEMPERATURE:-0.6}
TOP_P=${TOP_P:-0.95}
ROLLOUT_TP=${ROLLOUT_TP:-1}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-eval-$(basename "$MODEL_PATH")}

run_entry verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo \
    data.train_files="$DATA_DIR/math500.parquet" \
    data.val_files="[$DATA_DIR/aime24.parquet,$DATA_DIR/math500.parquet,$DATA_DIR/amc23.parquet,$DATA_DIR/minerva.parquet,$DATA_DIR/olympiadbench.parquet]" \
    data.train_batch_size=8 \
    data.max_prompt_length=1024 \
    data.max_response_length="$MAX_RESPONSE_LENGTH" \
    actor_rollout_ref.model.path="$MODEL_PATH" \
    actor_rollout_ref.actor.ppo_mini_batch_size=8 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1 \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=1 \
    actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP" \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1 \
    actor_rollout_ref.rollout.val_kwargs.do_sample=true \
    actor_rollout_ref.rollout.val_kwargs.n="$N_SAMPLES" \
    actor_rollout_ref.rollout.val_kwargs.temperature="$TEMPERATURE" \
    actor_rollout_ref.rollout.val_kwargs.top_p="$TOP_P" \
    reward.custom_reward_function.path=pkg://cwgrpo_verl.reward \
    reward.custom_reward_function.name=compute_score \
    trainer.project_name=cwgrpo \
    trainer.experiment_name="$EXPERIMENT_NAME" \
    trainer.logger="[console,file]" \
    trainer.val_only=true \
    trainer.val_before_train=true \
    trainer.nnodes="$NNODES" \
    trainer.n_gpus_per_node="$N_GPUS_PER_NODE" \
    "$@"
