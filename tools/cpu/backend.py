"""Registers the CPU platform, verl's FSDP engines for device "cpu" and the "hf" rollout (see the package doc)."""

import os

if os.environ.get("VERL_PLATFORM", "").strip().lower() != "cpu":
    raise ImportError(
        "tools.cpu.backend runs verl on a CPU and is for tests and the smoke command only: it needs "
        "VERL_PLATFORM=cpu. Remove it from VERL_USE_EXTERNAL_MODULES for a GPU run."
    )

from tools.cpu import device, engines, rollout  # noqa: E402,F401  (registration side effects)

engines.register()
