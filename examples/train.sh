#!/usr/bin/env bash
# Train one method with the CW-GRPO recipe at the settings of the authors' runs (the per-run scripts beside this
# one set METHOD and PRESET, whose settings are recipe/cwgrpo/config's). The environment sets paths, cluster and
# plumbing (README.md lists every variable); arguments are Hydra overrides, applied last (e.g. trainer.save_freq=10).
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/_lib.sh"

METHOD=${METHOD:-cwgrpo}                      # recipe/cwgrpo/config/method: cwgrpo | grpo | clip_cov | kl_cov
PRESET=${PRESET:-r1_distill_1.5b}             # recipe/cwgrpo/config/preset: r1_distill_1.5b | qwen_math_7b
for choice in "method/$METHOD" "preset/$PRESET"; do
    [[ -f "$HERE/../recipe/cwgrpo/config/$choice.yaml" ]] || {
        echo "unknown ${choice%%/*} ${choice#*/}: see recipe/cwgrpo/config/${choice%%/*}/" >&2; exit 2; }
done
CW_SCOPE=${CW_SCOPE:-group}                   # cwgrpo.scope; batch: the weights detached (computed before the update)
# Paths: absolute, and on storage every node sees when running on a cluster. MODEL_PATH: default the preset's model
DATA_DIR=${DATA_DIR:-$PWD/data}               # written by examples/prepare_data.sh
PROJECT_NAME=${PROJECT_NAME:-cwgrpo}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-$METHOD-$(basename "${MODEL_PATH:-$PRESET}")}

args=(preset="$PRESET" method="$METHOD" cwgrpo.scope="$CW_SCOPE")
[[ "$METHOD" == cwgrpo && "$CW_SCOPE" == batch ]] && args+=(actor_rollout_ref.actor.policy_loss.cw_detach_weights=true)
[[ -n "${MODEL_PATH:-}" ]] && args+=(actor_rollout_ref.model.path="$MODEL_PATH")
# FSDP keys only when asked for (the recipe refuses other engines by name, which needs the config to compose)
[[ "${OFFLOAD:-0}" == "1" ]] && args+=(actor_rollout_ref.actor.fsdp_config.param_offload=true
                                       actor_rollout_ref.actor.fsdp_config.optimizer_offload=true)
[[ "${REF_OFFLOAD:-0}" == "1" ]] && args+=(actor_rollout_ref.ref.fsdp_config.param_offload=true)
SP=${SP:-1}                                   # Ulysses sequence parallelism (actor and reference)
[[ "$SP" != "1" ]] && args+=(actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size="$SP"
                             actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size="$SP")
# DYNAMIC_BSZ=1: micro-batches by token budget (MAX_TOKENS_PER_GPU, default the recipe's 12 x (512 + 4096))
[[ "${DYNAMIC_BSZ:-0}" == "1" ]] && args+=(actor_rollout_ref.actor.use_dynamic_bsz=true
                                           actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true
                                           actor_rollout_ref.ref.log_prob_use_dynamic_bsz=true)
[[ -n "${MAX_TOKENS_PER_GPU:-}" ]] && args+=(actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$MAX_TOKENS_PER_GPU")

val_files=$("${PYTHON:-python3}" -m cwgrpo_verl.data_sets val-files "$DATA_DIR") ||  # data_sets.py's sets
    { echo "train.sh: PYTHON=${PYTHON:-python3} cannot run cwgrpo_verl (pip install -e . there)" >&2; exit 2; }

run_entry recipe.cwgrpo.main_cwgrpo "${args[@]}" \
    data.train_files="$DATA_DIR/open_rs.parquet" \
    data.val_files="$val_files" \
    actor_rollout_ref.rollout.tensor_model_parallel_size="${ROLLOUT_TP:-1}" \
    actor_rollout_ref.rollout.gpu_memory_utilization="${GPU_MEMORY_UTILIZATION:-0.6}" \
    actor_rollout_ref.rollout.val_kwargs.n="${VAL_SAMPLES:-1}" \
    cwgrpo.stop_at_step="${STOP_AT_STEP:-null}" \
    trainer.project_name="$PROJECT_NAME" \
    trainer.experiment_name="$EXPERIMENT_NAME" \
    trainer.default_local_dir="${CHECKPOINT_DIR:-$PWD/checkpoints/$PROJECT_NAME/$EXPERIMENT_NAME}" \
    trainer.logger="${LOGGER:-[console,file]}" \
    trainer.nnodes="${NNODES:-1}" \
    trainer.n_gpus_per_node="${N_GPUS_PER_NODE:-4}" \
    trainer.save_freq="${SAVE_FREQ:-50}" \
    trainer.test_freq="${TEST_FREQ:-50}" \
    trainer.resume_mode="${RESUME_MODE:-auto}" \
    trainer.resume_from_path="${RESUME_FROM_PATH:-null}" \
    trainer.max_actor_ckpt_to_keep="${MAX_CKPT_TO_KEEP:-null}" \
    "$@"
