"""``python -m tools.demo``: a miniature GRPO vs Clip-Cov vs CW-GRPO experiment on a CPU (docs/demo.md).

A tiny random-init Qwen2, an in-memory tokenizer and a synthetic addition task stand in for the paper's model and
data; the RL update uses the product's real parts (reward, advantage estimator, verl's policy losses and configs).
"""

import os

# One kernel family on every x86 CPU, set before torch computes its first kernel: AVX-512 and AVX2 round
# differently and the sampled trajectories part (tools.demo.run.environment records the family used).
os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")

from tools.demo.cli import main  # noqa: E402

__all__ = ["main"]
