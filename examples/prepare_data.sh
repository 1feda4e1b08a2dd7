#!/usr/bin/env bash
# Write the training set (Open-RS, with the paper's system prompt) and the five evaluation sets as verl parquet,
# and report training problems that overlap the evaluation sets (DROP_CONTAMINATED=1 drops them). Hub by default;
# LOCAL_EVAL_DIR: a folder of local jsonl (aime24.jsonl, math500.jsonl, ...); OPEN_RS_SOURCE: another Open-RS.
set -euo pipefail
PYTHON=${PYTHON:-python3}
DATA_DIR=${DATA_DIR:-$PWD/data}
"$PYTHON" -m data_prep.eval_sets --out "$DATA_DIR" ${LOCAL_EVAL_DIR:+--source-dir "$LOCAL_EVAL_DIR"}
drop=()
[[ "${DROP_CONTAMINATED:-0}" == "1" ]] && drop=(--drop-contaminated)
"$PYTHON" -m data_prep.open_rs --out "$DATA_DIR" --source "${OPEN_RS_SOURCE:-knoveleng/open-rs}" \
    --decontaminate-against "$DATA_DIR" "${drop[@]}"
