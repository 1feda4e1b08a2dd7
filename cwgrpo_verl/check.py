"""``python -m cwgrpo_verl.check``: is cw_grpo registered here and in a Ray worker of the cluster?

Run it on a node, or as a Ray job (``examples/submit_ray_job.sh python -m cwgrpo_verl.check``), before a long run:
a package missing on a worker would otherwise only surface at the first update (verl swallows plugin errors).
Exits 1 if any process lacks the registration.
"""

from __future__ import annotations

import os
import socket
import sys


def registration() -> dict:
    """Where this process stands: pid, host, and whether verl's registries hold cw_grpo after ``import verl``."""
    import verl  # noqa: F401  (loads the verl.plugins entry point / VERL_USE_EXTERNAL_MODULES)
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "policy_loss": "cw_grpo" in POLICY_LOSS_REGISTRY,
        "adv_estimator": "cw_grpo" in ADV_ESTIMATOR_REGISTRY,
    }


def main(argv=None) -> int:
    import ray

    reports = {"driver": registration()}
    ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=False)
    try:
        reports["ray worker"] = ray.get(ray.remote(num_cpus=0)(registration).remote(), timeout=600)
    finally:
        ray.shutdown()
    ok = True
    for where, r in reports.items():
        good = r["policy_loss"] and r["adv_estimator"]
        ok &= good
        print(f"{where:10s} pid {r['pid']} on {r['host']}: cw_grpo policy loss {'yes' if r['policy_loss'] else 'NO'}, "
              f"advantage estimator {'yes' if r['adv_estimator'] else 'NO'}")
    print("cwgrpo_verl: registered everywhere" if ok else "cwgrpo_verl: MISSING somewhere (pip install -e . on every node, "
          "or VERL_USE_EXTERNAL_MODULES=cwgrpo_verl with the repo as working_dir)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
