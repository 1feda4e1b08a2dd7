#!/usr/bin/env bash
PRESET=qwen_math_7b METHOD=clip_cov exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
