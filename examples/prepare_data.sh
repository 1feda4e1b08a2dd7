#!/usr/bin/env bash
# Write the training set (Open-RS, with the paper's system prompt) and the five evaluation sets as verl parquet,
# and report training problems that overlap the evaluation sets. Hub by default; LOCAL_EVAL_DIR for local jsonl.
set -euo pipefail
PYTHON=${PYTHON:-python3}
DATA_DIR=${DATA_DIR:-$PWD/data}
OPEN_RS_SOURCE=${OPEN_RS_SOURCE:-knoveleng/open-rs}
LOCAL_EVAL_DIR=${LOCAL_EVAL_DIR:-}            # e.g. a folder with aime24.jsonl, math500.jsonl, ...
DROP_CONTAMINATED=${DROP_CONTAMINATED:-0}

EVAL_ARGS=(--out "$DATA_DIR")
[[ -n "$LOCAL_EVAL_DIR" ]] && EVAL_ARGS+=(--source-dir "$LOCAL_EVAL_DIR")
"$PYTHON" -m data_prep.eval_sets "${EVAL_ARGS[@]}"

TRAIN_ARGS=(--out "$DATA_DIR" --source "$OPEN_RS_SOURCE" --decontaminate-against "$DATA_DIR")
[[ "$DROP_CONTAMINATED" == "1" ]] && TRAIN_ARGS+=(--drop-contaminated)
"$PYTHON" -m data_prep.open_rs "${TRAIN_ARGS[@]}"
