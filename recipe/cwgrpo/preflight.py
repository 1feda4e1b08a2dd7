"""Start-up work of the recipe's task runner, before any model is loaded: every node sees the run's paths
(:func:`check_paths_on_every_node`), and a resumed run logs to a new file instead of truncating the earlier one
(:func:`keep_earlier_file_log`)."""

from __future__ import annotations

import contextlib
import itertools
import os
import time
import uuid
from pathlib import Path

from omegaconf import DictConfig, ListConfig


def _logs_to_file(config: DictConfig) -> bool:
    loggers = config.trainer.get("logger") or []
    return "file" in ([loggers] if isinstance(loggers, str) else list(loggers))


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
    if _logs_to_file(config):
        if os.environ.get("VERL_FILE_LOGGER_PATH"):
            paths["VERL_FILE_LOGGER_PATH"] = (os.path.dirname(os.environ["VERL_FILE_LOGGER_PATH"]), "writable")
        elif os.environ.get("VERL_FILE_LOGGER_ROOT"):
            paths["VERL_FILE_LOGGER_ROOT"] = (os.path.expanduser(os.environ["VERL_FILE_LOGGER_ROOT"]), "writable")
    return {key: value for key, value in paths.items() if os.path.isabs(value[0])}  # hub names, hdfs:// skipped


#: How long another node may take to see the task runner's marker file: NFS clients cache lookups up to 60 s (acdirmax)
SHARED_STORAGE_WAIT_S = 65.0


def path_problems(paths: dict[str, tuple[str, str]], marker: str | None = None,
                  wait_s: float = SHARED_STORAGE_WAIT_S) -> list[str]:
    """What this machine cannot see (runs on each node). ``marker``: the name of a file the task runner wrote into
    every writable folder; a folder where it does not appear within ``wait_s`` is not the task runner's disk."""
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
            elif marker and not _appears(path, marker, wait_s):
                problems.append(f"{key}={path}: not the storage the task runner's node sees (a file written there "
                                "from that node is absent here): use a folder on a shared file system")
    return problems


def _appears(folder: str, name: str, wait_s: float) -> bool:
    """Whether ``name`` is in ``folder`` within ``wait_s``: every second, open it (an open revalidates the NFS
    client's cached lookup of the file, close-to-open consistency) and list the folder."""
    deadline = time.monotonic() + wait_s
    while True:
        with contextlib.suppress(OSError), open(os.path.join(folder, name), "rb"):
            return True
        with contextlib.suppress(OSError):
            if name in os.listdir(folder):
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)


def check_paths_on_every_node(config: DictConfig, accelerator: str = "GPU", timeout_s: float = 120.0) -> None:
    """Raise a ValueError naming each node (with an accelerator, or this one) and path it cannot see: a node would
    otherwise fail minutes later with a bare FileNotFoundError, or write checkpoints to its own disk."""
    import ray
    from ray.exceptions import GetTimeoutError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    paths = run_paths(config)
    if not paths:
        return
    marker = f".cwgrpo-shared-{uuid.uuid4().hex}"
    written = [Path(path, marker) for path, kind in paths.values()
               if kind == "writable" and not path_problems({"": (path, kind)})]
    for file in written:
        file.touch()
    probe, here = ray.remote(num_cpus=0)(path_problems), ray.get_runtime_context().get_node_id()
    nodes = [n for n in ray.nodes() if n["Alive"] and (n["Resources"].get(accelerator, 0) > 0 or n["NodeID"] == here)]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(paths, marker) for n in nodes]
    try:
        answers = ray.get(refs, timeout=timeout_s)
    except GetTimeoutError:
        raise ValueError(
            f"could not check the run's paths: not every node of {[n['NodeManagerAddress'] for n in nodes]} "
            f"answered within {timeout_s:.0f} s (a node without a free slot for a zero-CPU task, or unreachable)"
        ) from None
    finally:
        for file in written:
            file.unlink(missing_ok=True)
    found = [f"node {node['NodeManagerAddress']}: {problem}" for node, problems in zip(nodes, answers)
             for problem in problems]
    if found:
        raise ValueError(
            "the run's paths must be visible on every node (absolute paths on shared storage):\n  " + "\n  ".join(found)
        )


def file_log_path(config: DictConfig) -> Path:
    """Where verl's file logger writes (``verl.utils.tracking.FileLogger``): ``VERL_FILE_LOGGER_PATH``, else
    ``<VERL_FILE_LOGGER_ROOT, default .>/<project>/<experiment>.jsonl``."""
    if os.environ.get("VERL_FILE_LOGGER_PATH"):
        return Path(os.environ["VERL_FILE_LOGGER_PATH"])
    root = Path(os.path.expanduser(os.environ.get("VERL_FILE_LOGGER_ROOT", ".")))
    return root / config.trainer.project_name / f"{config.trainer.experiment_name}.jsonl"


TOKEN_LOG_ENV = "CWGRPO_TOKEN_LOG_PATH"  # set by keep_earlier_file_log: a later attempt's token log is the first's


def token_log_path(config: DictConfig) -> Path:
    """The recipe's token log (``cwgrpo_verl.tokens``): ``<experiment>.tokens.jsonl`` beside the metrics log. A
    resumed attempt that logs its metrics to ``<experiment>.N.jsonl`` appends its tokens to the first attempt's."""
    from cwgrpo_verl.tokens import log_path

    return Path(os.environ.get(TOKEN_LOG_ENV) or log_path(file_log_path(config)))


def keep_earlier_file_log(config: DictConfig) -> Path | None:
    """verl's file logger truncates its default ``<experiment>.jsonl`` when a run starts, which would erase a resumed
    experiment's earlier steps: when that file exists, point the logger at ``<experiment>.2.jsonl`` (``.3``, ...)
    instead; an explicit VERL_FILE_LOGGER_PATH is left alone. Returns the new path, if any (the report joins them)."""
    if not _logs_to_file(config) or os.environ.get("VERL_FILE_LOGGER_PATH"):
        return None
    if not (default := file_log_path(config)).exists():
        return None
    attempts = (default.with_suffix(f".{i}.jsonl") for i in itertools.count(2))
    path = next(p for p in attempts if not p.exists())
    os.environ[TOKEN_LOG_ENV] = str(token_log_path(config))  # before the metrics log moves: the first attempt's
    os.environ["VERL_FILE_LOGGER_PATH"] = str(path)
    return path
