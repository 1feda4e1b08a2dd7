"""CW-GRPO for verl 0.9.1: the policy loss and advantage estimator, the paper's reward, evaluation and report.

Importing this package imports neither verl nor torch. verl itself loads :mod:`cwgrpo_verl.plugin` in every
process (entry point ``verl.plugins``, or ``VERL_USE_EXTERNAL_MODULES=cwgrpo_verl.plugin``), which registers
``cw_grpo`` in its policy-loss and advantage-estimator registries.
"""

from importlib import metadata

LOSS_NAME = "cw_grpo"
ESTIMATOR_NAME = "cw_grpo"

try:
    __version__ = metadata.version("cwgrpo-verl")
except metadata.PackageNotFoundError:  # a checkout that is not installed
    __version__ = "unknown"

__all__ = ["ESTIMATOR_NAME", "LOSS_NAME", "__version__"]
