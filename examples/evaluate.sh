#!/usr/bin/env bash
# Evaluate one model (the base model, or any Hugging Face folder) on the five sets with the paper's protocol
# (cwgrpo_verl/evaluate.py): chat template, temperature 0.6, top-p 0.95, N_SAMPLES responses per problem, up to
# MAX_NEW_TOKENS (the preset's: 32768 for the 1.5B, 4096 for the 7B), scored as lighteval did. The log goes to
# EVAL_DIR/step_<STEP>.<settings>.jsonl; a log that is already there is not evaluated again.
#
#   MODEL_PATH=deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B EVAL_DIR=evals/base examples/evaluate.sh
#   PRESET=qwen_math_7b MODEL_PATH=Qwen/Qwen2.5-Math-7B-Instruct EVAL_DIR=evals/base-7b examples/evaluate.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/_lib.sh"

PRESET=${PRESET:-r1_distill_1.5b}             # the paper's length for the model: 32768 new tokens (1.5B), 4096 (7B)
case "$PRESET" in
    r1_distill_1.5b) max_new_tokens=32768 ;;
    qwen_math_7b)    max_new_tokens=4096 ;;
    *) echo "unknown PRESET=$PRESET (r1_distill_1.5b, qwen_math_7b)" >&2; exit 2 ;;
esac
temperature=0.6 top_p=0.95
MODEL_PATH=${MODEL_PATH:?set MODEL_PATH to the model to evaluate (a hub name or a Hugging Face folder)}
EVAL_DIR=${EVAL_DIR:-$PWD/evals/$(basename "$MODEL_PATH")}
STEP=${STEP:-0}                               # the training step of the model (0: the base model)
N_SAMPLES=${N_SAMPLES:-1}                     # responses per problem: mean@N (the paper: 1)
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-$max_new_tokens}

log="$EVAL_DIR/step_${STEP}.t${temperature}-p${top_p}-n${N_SAMPLES}-len${MAX_NEW_TOKENS}.jsonl"
[[ ! -f "$log" || "${DRY_RUN:-0}" == "1" ]] || { echo "evaluate.sh: $log exists: already evaluated"; exit 0; }
# BACKEND: vllm | hf (transformers, the CPU stand-in); ROLLOUT_TP: vLLM tensor parallel size
run_entry cwgrpo_verl.evaluate \
    --model "$MODEL_PATH" --data "${DATA_DIR:-$PWD/data}" --out "$log" --step "$STEP" \
    --max-new-tokens "$MAX_NEW_TOKENS" --temperature "$temperature" --top-p "$top_p" --samples "$N_SAMPLES" \
    --backend "${BACKEND:-vllm}" --tensor-parallel-size "${ROLLOUT_TP:-1}" "$@"
