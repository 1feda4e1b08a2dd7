#!/usr/bin/env bash
# Train one method with the CW-GRPO recipe at the settings of the authors' runs (the per-run scripts beside this
# one set METHOD and PRESET). The science is pinned below; the environment sets only paths, cluster and plumbing.
# Extra arguments are Hydra overrides, applied last (e.g. trainer.total_training_steps=50).
set -euo pipefail
[[ "${DRY_RUN:-0}" == "1" ]] || set -x
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/_lib.sh"

METHOD=${METHOD:-cwgrpo}                      # cwgrpo | grpo | clip_cov | kl_cov
PRESET=${PRESET:-r1_distill_1.5b}             # r1_distill_1.5b | qwen_math_7b

# ---- the authors' runs (recipes/gaussian_1.5b.yaml, gaussian_7b.yaml); shared settings: recipe/cwgrpo/config ----
case "$PRESET" in
    # 300-step schedule (cosine, warmup 30), reported at step 100 (Table 2) and 100, 150, 200 (Table 3); accuracy + format reward
    r1_distill_1.5b) default_model=deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B; total_steps=300; format_weight=1.0 ;;
    # 150-step schedule, reported at step 150; accuracy reward only
    qwen_math_7b)    default_model=Qwen/Qwen2.5-Math-7B-Instruct; total_steps=150; format_weight=0.0 ;;
    *) echo "unknown PRESET=$PRESET (r1_distill_1.5b, qwen_math_7b)" >&2; exit 2 ;;
esac
prompts_per_step=12                           # x 12 samples = 144 completions per optimizer step
group_size=12
max_prompt_length=512
max_response_length=4096
max_model_len=4096                            # prompt + completion <= 4096, as the authors' vLLM
logprob_temperature=1.0                       # log-probs from the raw logits, as the authors' TRL code

# The methods differ only in the policy loss. Clip-Cov and KL-Cov use the settings of Cui et al. (2025)'s runs
# (the CW-GRPO paper reports Clip-Cov without its settings and has no KL-Cov row; the authors released neither).
case "$METHOD" in
    cwgrpo)   method_args=(actor_rollout_ref.actor.policy_loss.loss_mode=cw_grpo
                           actor_rollout_ref.actor.policy_loss.cw_scope="${CW_SCOPE:-group}") ;;
    grpo)     method_args=(actor_rollout_ref.actor.policy_loss.loss_mode=vanilla) ;;
    clip_cov) method_args=(actor_rollout_ref.actor.policy_loss.loss_mode=clip_cov
                           actor_rollout_ref.actor.policy_loss.clip_cov_ratio=0.0002
                           actor_rollout_ref.actor.policy_loss.clip_cov_lb=1.0
                           actor_rollout_ref.actor.policy_loss.clip_cov_ub=5.0) ;;
    kl_cov)   method_args=(actor_rollout_ref.actor.policy_loss.loss_mode=kl_cov
                           actor_rollout_ref.actor.policy_loss.kl_cov_ratio=0.002
                           actor_rollout_ref.actor.policy_loss.ppo_kl_coef=1.0) ;;
    *) echo "unknown METHOD=$METHOD (cwgrpo, grpo, clip_cov, kl_cov)" >&2; exit 2 ;;
esac
# cw_scope=batch weights once per step from the old log-probs: detached by construction (the paper text's reading)
[[ "$METHOD" == cwgrpo && "${CW_SCOPE:-group}" == batch ]] && method_args+=(actor_rollout_ref.actor.policy_loss.cw_detach_weights=true)

# ---- Paths: absolute, and on storage every node sees when running on a cluster -----------------------------------
MODEL_PATH=${MODEL_PATH:-$default_model}      # a hub name or a local directory
DATA_DIR=${DATA_DIR:-$PWD/data}               # written by examples/prepare_data.sh
PROJECT_NAME=${PROJECT_NAME:-cwgrpo}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-${METHOD}-$(basename "$MODEL_PATH")}
CHECKPOINT_DIR=${CHECKPOINT_DIR:-$PWD/checkpoints/$PROJECT_NAME/$EXPERIMENT_NAME}

# ---- Cluster ------------------------------------------------------------------------------------------------------
NNODES=${NNODES:-1}
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-4}
ROLLOUT_TP=${ROLLOUT_TP:-1}                   # vLLM tensor parallel size
GPU_MEMORY_UTILIZATION=${GPU_MEMORY_UTILIZATION:-0.6}   # vLLM's share of each GPU
OFFLOAD=${OFFLOAD:-0}                         # 1: actor parameters and optimizer state on the CPU between uses
REF_OFFLOAD=${REF_OFFLOAD:-0}                 # 1: reference model parameters on the CPU
SP=${SP:-1}                                   # Ulysses sequence parallelism (actor and reference): divides the memory floor
DYNAMIC_BSZ=${DYNAMIC_BSZ:-0}                 # 1: micro-batches by token budget (cw_scope group/batch, or baselines)
MAX_TOKENS_PER_GPU=${MAX_TOKENS_PER_GPU:-$(( group_size * (max_prompt_length + max_response_length) ))}

# ---- Run control ---------------------------------------------------------------------------------------------------
LOGGER=${LOGGER:-"[console,file]"}            # add wandb: "[console,file,wandb]" (needs WANDB_API_KEY)
STOP_AT_STEP=${STOP_AT_STEP:-null}            # end early, same learning-rate schedule (e.g. 200 for Table 3)
SAVE_FREQ=${SAVE_FREQ:-50}
TEST_FREQ=${TEST_FREQ:-50}
VAL_SAMPLES=${VAL_SAMPLES:-1}                 # samples per validation problem (mean@N)
RESUME_MODE=${RESUME_MODE:-auto}              # auto | disable | resume_path (then RESUME_FROM_PATH)
RESUME_FROM_PATH=${RESUME_FROM_PATH:-null}
MAX_CKPT_TO_KEEP=${MAX_CKPT_TO_KEEP:-null}    # null keeps every checkpoint

dynamic=$([[ "$DYNAMIC_BSZ" == "1" ]] && echo true || echo false)
plumbing_args=()                              # FSDP keys only when asked for (the recipe refuses other engines by name)
[[ "$OFFLOAD" == "1" ]] && plumbing_args+=(actor_rollout_ref.actor.fsdp_config.param_offload=true
                                           actor_rollout_ref.actor.fsdp_config.optimizer_offload=true)
[[ "$REF_OFFLOAD" == "1" ]] && plumbing_args+=(actor_rollout_ref.ref.fsdp_config.param_offload=true)
[[ "$SP" != "1" ]] && plumbing_args+=(actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size="$SP"
                                      actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size="$SP")
run_entry recipe.cwgrpo.main_cwgrpo \
    data.train_files="$DATA_DIR/open_rs.parquet" \
    data.val_files="[$DATA_DIR/aime24.parquet,$DATA_DIR/math500.parquet,$DATA_DIR/amc23.parquet,$DATA_DIR/minerva.parquet,$DATA_DIR/olympiadbench.parquet]" \
    data.train_batch_size=$prompts_per_step \
    data.max_prompt_length=$max_prompt_length \
    data.max_response_length=$max_response_length \
    actor_rollout_ref.model.path="$MODEL_PATH" \
    actor_rollout_ref.actor.ppo_mini_batch_size=$prompts_per_step \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=$group_size \
    actor_rollout_ref.actor.use_dynamic_bsz=$dynamic \
    actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$MAX_TOKENS_PER_GPU" \
    actor_rollout_ref.ref.log_prob_use_dynamic_bsz=$dynamic \
    actor_rollout_ref.ref.log_prob_max_token_len_per_gpu="$MAX_TOKENS_PER_GPU" \
    actor_rollout_ref.rollout.n=$group_size \
    actor_rollout_ref.rollout.max_model_len=$max_model_len \
    actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP" \
    actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION" \
    actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=$dynamic \
    actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu="$MAX_TOKENS_PER_GPU" \
    actor_rollout_ref.rollout.val_kwargs.n="$VAL_SAMPLES" \
    +reward.custom_reward_function.reward_kwargs.format_weight=$format_weight \
    cwgrpo.logprob_temperature=$logprob_temperature \
    cwgrpo.stop_at_step="$STOP_AT_STEP" \
    trainer.project_name="$PROJECT_NAME" \
    trainer.experiment_name="$EXPERIMENT_NAME" \
    trainer.default_local_dir="$CHECKPOINT_DIR" \
    trainer.logger="$LOGGER" \
    trainer.nnodes="$NNODES" \
    trainer.n_gpus_per_node="$N_GPUS_PER_NODE" \
    trainer.total_training_steps=$total_steps \
    trainer.save_freq="$SAVE_FREQ" \
    trainer.test_freq="$TEST_FREQ" \
    trainer.resume_mode="$RESUME_MODE" \
    trainer.resume_from_path="$RESUME_FROM_PATH" \
    trainer.max_actor_ckpt_to_keep="$MAX_CKPT_TO_KEEP" \
    "${plumbing_args[@]}" "${method_args[@]}" "$@"
