"""CW-GRPO for verl 0.9.1: importing this package registers the ``cw_grpo`` policy loss and advantage estimator.

It is loaded in every process by verl's ``verl.plugins`` entry point (``import verl``). verl swallows errors
raised while loading plugins, so entry points call :func:`check_registered` to fail loudly instead.
"""

from cwgrpo_verl import advantage, loss  # noqa: F401  (registration side effects)
from cwgrpo_verl.advantage import ESTIMATOR_NAME
from cwgrpo_verl.config import CWGRPOPolicyLossConfig
from cwgrpo_verl.loss import LOSS_NAME

__version__ = "0.1.0"
__all__ = ["CWGRPOPolicyLossConfig", "check_registered", "LOSS_NAME", "ESTIMATOR_NAME"]


def check_registered() -> None:
    """Raise if ``cw_grpo`` is missing from verl's policy-loss or advantage-estimator registry."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    missing = [f"policy loss {LOSS_NAME!r}"] if LOSS_NAME not in POLICY_LOSS_REGISTRY else []
    if ESTIMATOR_NAME not in ADV_ESTIMATOR_REGISTRY:
        missing.append(f"advantage estimator {ESTIMATOR_NAME!r}")
    if missing:
        raise RuntimeError(
            f"cwgrpo_verl is imported but verl lacks {', '.join(missing)}: is the package installed in this "
            "environment (pip install -e .) and verl==0.9.1?"
        )
