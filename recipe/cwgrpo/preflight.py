"""Start-up check that needs the cluster: every node that takes part sees the run's data, model and checkpoints.

On a cluster the paths are resolved on the submitting machine (examples/submit_ray_job.sh) and must be on storage
every node mounts. A node that cannot see them would otherwise fail minutes later with a bare FileNotFoundError,
or write checkpoints to its own disk. Runs in the recipe's task runner, before any model is loaded.
"""

from __future__ import annotations

import os
from typing import Iterable

from omegaconf import DictConfig, ListConfig


def run_paths(config: DictConfig) -> dict[str, tuple[str, str]]:
    """``{config key: (path, kind)}`` for the absolute local paths of a run; kind: file, dir or writable."""
    paths: dict[str, tuple[str, str]] = {}
    for key in ("train_files", "val_files"):
        files = config.data.get(key)
        files = list(files) if isinstance(files, (list, ListConfig)) else [files] if files else []
        for i, path in enumerate(files):
            paths[f"data.{key}" + (f"[{i}]" if len(files) > 1 else "")] = (str(path), "file")
    paths["actor_rollout_ref.model.path"] = (str(config.actor_rollout_ref.model.path), "dir")
    paths["trainer.default_local_dir"] = (str(config.trainer.default_local_dir), "writable")
    return {key: value for key, value in paths.items() if os.path.isabs(value[0])}  # hub names, hdfs:// skipped


def path_problems(paths: dict[str, tuple[str, str]]) -> list[str]:
    """What this machine cannot see (runs on each node)."""
    problems = []
    for key, (path, kind) in paths.items():
        if kind == "file" and not os.path.isfile(path):
            problems.append(f"{key}={path}: no such file")
        elif kind == "dir" and not os.path.isdir(path):
            problems.append(f"{key}={path}: no such directory")
        elif kind == "writable":
            try:
                os.makedirs(path, exist_ok=True)
                writable = os.access(path, os.W_OK)
            except OSError as error:
                writable, path = False, f"{path} ({error.strerror})"
            if not writable:
                problems.append(f"{key}={path}: cannot write here")
    return problems


def _nodes_that_take_part(accelerator: str) -> Iterable[dict]:
    import ray

    here = ray.get_runtime_context().get_node_id()
    return [n for n in ray.nodes() if n["Alive"] and (n["Resources"].get(accelerator, 0) > 0 or n["NodeID"] == here)]


def check_paths_on_every_node(config: DictConfig, accelerator: str = "GPU", timeout_s: float = 120.0) -> None:
    """Raise a ValueError naming each node and path it cannot see; nodes with an accelerator and this one count."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    paths = run_paths(config)
    if not paths:
        return
    probe = ray.remote(num_cpus=0)(path_problems)
    nodes = list(_nodes_that_take_part(accelerator))
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(paths)
            for n in nodes]
    found = []
    for node, problems in zip(nodes, ray.get(refs, timeout=timeout_s)):
        found += [f"node {node['NodeManagerAddress']}: {problem}" for problem in problems]
    if found:
        raise ValueError(
            "the run's paths must be visible on every node (absolute paths on shared storage):\n  " + "\n  ".join(found)
        )
