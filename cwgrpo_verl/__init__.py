"""CW-GRPO for verl 0.9.1: importing this package registers the ``cw_grpo`` policy loss and advantage estimator.

It is loaded in every process by verl's ``verl.plugins`` entry point (``import verl``). verl swallows errors
raised while loading plugins, so entry points call :func:`check_registered` to fail loudly instead.
"""

LOSS_NAME = "cw_grpo"
ESTIMATOR_NAME = "cw_grpo"
__version__ = "0.2.0"
__all__ = ["check_registered", "LOSS_NAME", "ESTIMATOR_NAME"]

try:
    import verl  # noqa: F401
except ModuleNotFoundError as error:  # torch-only machine: `cwgrpo_verl.core` still works, nothing registers
    if error.name != "verl":
        raise
else:
    from cwgrpo_verl import advantage, loss  # noqa: F401  (registration side effects)


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
