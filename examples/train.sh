#!/usr/bin/env bash
# Train one method with the CW-GRPO recipe at the settings of the authors' runs (the per-run scripts beside this
# one set METHOD and PRESET). The science lives in the recipe's config (recipe/cwgrpo/config: the shared settings,
# preset/<PRESET>.yaml and method/<METHOD>.yaml); this script chooses them and sets paths, cluster and plumbing
# from the environment. Extra arguments are Hydra overrides, applied last (e.g. trainer.total_training_steps=50).
set -euo pipefail
[[ "${DRY_RUN:-0}" == "1" ]] || set -x
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/_lib.sh"

METHOD=${METHOD:-cwgrpo}                      # recipe/cwgrpo/config/method: cwgrpo | grpo | clip_cov | kl_cov
PRESET=${PRESET:-r1_distill_1.5b}             # recipe/cwgrpo/config/preset: r1_distill_1.5b | qwen_math_7b
for choice in "method/$METHOD" "preset/$PRESET"; do
    [[ -f "$HERE/../recipe/cwgrpo/config/$choice.yaml" ]] || {
        echo "unknown ${choice%%/*} ${choice#*/}: see recipe/cwgrpo/config/${choice%%/*}/" >&2; exit 2; }
done
CW_SCOPE=${CW_SCOPE:-group}                   # cwgrpo.scope; batch also detaches the weights (they are computed before the update)

# ---- Paths: absolute, and on storage every node sees when running on a cluster -----------------------------------
MODEL_PATH=${MODEL_PATH:-}                    # default: the preset's model (a hub name); or a local directory
DATA_DIR=${DATA_DIR:-$PWD/data}               # written by examples/prepare_data.sh
PROJECT_NAME=${PROJECT_NAME:-cwgrpo}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-$METHOD-$(basename "${MODEL_PATH:-$PRESET}")}
CHECKPOINT_DIR=${CHECKPOINT_DIR:-$PWD/checkpoints/$PROJECT_NAME/$EXPERIMENT_NAME}

# ---- Cluster ------------------------------------------------------------------------------------------------------
NNODES=${NNODES:-1}
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-4}
ROLLOUT_TP=${ROLLOUT_TP:-1}                   # vLLM tensor parallel size
GPU_MEMORY_UTILIZATION=${GPU_MEMORY_UTILIZATION:-0.6}   # vLLM's share of each GPU
OFFLOAD=${OFFLOAD:-0}                         # 1: actor parameters and optimizer state on the CPU between uses
REF_OFFLOAD=${REF_OFFLOAD:-0}                 # 1: reference model parameters on the CPU
SP=${SP:-1}                                   # Ulysses sequence parallelism (actor and reference): divides the memory floor
DYNAMIC_BSZ=${DYNAMIC_BSZ:-0}                 # 1: micro-batches by token budget (one whole group per GPU by default)
MAX_TOKENS_PER_GPU=${MAX_TOKENS_PER_GPU:-}    # the budget (default: the recipe's, 12 x (512 + 4096))

# ---- Run control ---------------------------------------------------------------------------------------------------
LOGGER=${LOGGER:-"[console,file]"}            # add wandb: "[console,file,wandb]" (needs WANDB_API_KEY)
STOP_AT_STEP=${STOP_AT_STEP:-null}            # end early, same learning-rate schedule (e.g. 200 for Table 3)
SAVE_FREQ=${SAVE_FREQ:-50}
TEST_FREQ=${TEST_FREQ:-50}
VAL_SAMPLES=${VAL_SAMPLES:-1}                 # samples per validation problem (mean@N)
RESUME_MODE=${RESUME_MODE:-auto}              # auto | disable | resume_path (then RESUME_FROM_PATH)
RESUME_FROM_PATH=${RESUME_FROM_PATH:-null}
MAX_CKPT_TO_KEEP=${MAX_CKPT_TO_KEEP:-null}    # null keeps every checkpoint

args=(preset="$PRESET" method="$METHOD" cwgrpo.scope="$CW_SCOPE")
[[ "$METHOD" == cwgrpo && "$CW_SCOPE" == batch ]] && args+=(actor_rollout_ref.actor.policy_loss.cw_detach_weights=true)
[[ -n "$MODEL_PATH" ]] && args+=(actor_rollout_ref.model.path="$MODEL_PATH")
# FSDP keys only when asked for (the recipe refuses other engines by name, which needs the config to compose)
[[ "$OFFLOAD" == "1" ]] && args+=(actor_rollout_ref.actor.fsdp_config.param_offload=true
                                  actor_rollout_ref.actor.fsdp_config.optimizer_offload=true)
[[ "$REF_OFFLOAD" == "1" ]] && args+=(actor_rollout_ref.ref.fsdp_config.param_offload=true)
[[ "$SP" != "1" ]] && args+=(actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size="$SP"
                             actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size="$SP")
[[ "$DYNAMIC_BSZ" == "1" ]] && args+=(actor_rollout_ref.actor.use_dynamic_bsz=true
                                      actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true
                                      actor_rollout_ref.ref.log_prob_use_dynamic_bsz=true)
[[ -n "$MAX_TOKENS_PER_GPU" ]] && args+=(actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$MAX_TOKENS_PER_GPU")

val_files=$("${PYTHON:-python3}" -m cwgrpo_verl.data_sets val-files "$DATA_DIR") ||  # the sets of cwgrpo_verl/data_sets.py
    { echo "train.sh: PYTHON=${PYTHON:-python3} cannot run cwgrpo_verl (pip install -e . there)" >&2; exit 2; }

run_entry recipe.cwgrpo.main_cwgrpo "${args[@]}" \
    data.train_files="$DATA_DIR/open_rs.parquet" \
    data.val_files="$val_files" \
    actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP" \
    actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION" \
    actor_rollout_ref.rollout.val_kwargs.n="$VAL_SAMPLES" \
    cwgrpo.stop_at_step="$STOP_AT_STEP" \
    trainer.project_name="$PROJECT_NAME" \
    trainer.experiment_name="$EXPERIMENT_NAME" \
    trainer.default_local_dir="$CHECKPOINT_DIR" \
    trainer.logger="$LOGGER" \
    trainer.nnodes="$NNODES" \
    trainer.n_gpus_per_node="$N_GPUS_PER_NODE" \
    trainer.save_freq="$SAVE_FREQ" \
    trainer.test_freq="$TEST_FREQ" \
    trainer.resume_mode="$RESUME_MODE" \
    trainer.resume_from_path="$RESUME_FROM_PATH" \
    trainer.max_actor_ckpt_to_keep="$MAX_CKPT_TO_KEEP" \
    "$@"
