"""``python -m tools.demo``: a miniature GRPO vs Clip-Cov vs CW-GRPO experiment that runs on a CPU.

No GPU, no network: a tiny random-init Qwen2, an in-memory tokenizer and a synthetic addition task stand in
for the paper's model and data, while the RL update uses the product's real parts (our reward function, the
advantage estimator and the policy losses from verl's registries, verl's ``ActorConfig`` and ``agg_loss``).
It is a small-scale simulation of the mechanism, not a reproduction of the paper's numbers.

Modules: ``task`` (problems, tokenizer), ``model`` (policy, sampling, log-probs), ``train`` (warm start,
evaluation, RL step), ``run`` (seeds x methods, processes, environment), ``report`` (files, the docs page),
``plot`` (figure), ``cli`` (command line). Publishing the results: docs/development.md.
"""

import os

# One kernel family on every x86 CPU, set before torch computes its first kernel: AVX-512 and AVX2 round
# differently and the sampled trajectories part (tools.demo.run.environment records the family used).
os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")

from tools.demo.cli import main  # noqa: E402

__all__ = ["main"]
