#!/usr/bin/env bash
PRESET=r1_distill_1.5b METHOD=kl_cov exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
