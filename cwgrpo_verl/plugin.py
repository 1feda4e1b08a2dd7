"""What verl loads in every process (entry point ``verl.plugins``): registers the ``cw_grpo`` policy loss and
advantage estimator. verl swallows errors raised while loading plugins, so the recipe's entry point and task runner
call :func:`check_registered` to fail loudly instead."""

from cwgrpo_verl import ESTIMATOR_NAME, LOSS_NAME, advantage, loss  # noqa: F401  (registration side effects)


def check_registered() -> None:
    """Raise if ``cw_grpo`` is missing from verl's policy-loss or advantage-estimator registry."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    wanted = {f"policy loss {LOSS_NAME!r}": LOSS_NAME in POLICY_LOSS_REGISTRY,
              f"advantage estimator {ESTIMATOR_NAME!r}": ESTIMATOR_NAME in ADV_ESTIMATOR_REGISTRY}
    if missing := [what for what, registered in wanted.items() if not registered]:
        raise RuntimeError(f"cwgrpo_verl is imported but verl lacks {', '.join(missing)}: is the package installed "
                           "in this environment (pip install -e .) and verl==0.9.1?")
