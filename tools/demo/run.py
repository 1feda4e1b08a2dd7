"""The experiment: for each seed one warm-start checkpoint, then every method from that same checkpoint.

Jobs run in ``workers`` processes (forked, one torch thread each): the models are so small that a second
intra-op thread buys nothing and, on a busy 2-core machine, OpenMP spinning made steps up to 10x slower,
whereas two single-threaded processes use both cores fully. A seed's RL jobs are queued as soon as its warm
start is done, so the two processes stay busy. Children report progress through a queue (one tqdm bar).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from types import SimpleNamespace

import torch
from tqdm.auto import tqdm

from tools.demo import task, train
from tools.demo.model import build_model


@dataclass
class DemoConfig:
    seeds: list[int] = field(default_factory=lambda: list(range(10)))  # a paired comparison needs ~10
    methods: list[str] = field(default_factory=lambda: list(train.METHODS))
    rl: train.RLSettings = field(default_factory=train.RLSettings)
    eval_size: int = 200  # fixed held-out problems (own seed), greedy + eval_samples samples each
    eval_samples: int = 2
    warm_target: float = 0.35  # stop the warm start at this sampled accuracy on a probe set...
    warm_max_steps: int = 1500  # ...or after this many steps
    warm_batch: int = 64
    warm_lr: float = 3e-3
    hidden: int = 64
    layers: int = 2
    threads: int = 1
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    quick: bool = False  # smoke-test sizes (--quick): the numbers mean nothing


def environment() -> dict:
    """What a run's numbers depend on besides the code and config: library versions and the CPU.

    On one machine a seed's run is bitwise reproducible (measured: 1 or 2 processes, 1 or 2 threads), but
    other CPU kernels round differently and the sampled trajectories then part: forcing torch's generic
    kernels (``ATEN_CPU_CAPABILITY=default``) instead of AVX2 changed seed 0 from its warm start on.
    """
    def ver(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        **{name: ver(name) for name in ("torch", "verl", "transformers", "math-verify", "numpy", "tokenizers")},
        "cpu": f"{platform.machine()}, {_cpu_model()}, torch kernels {torch.backends.cpu.get_cpu_capability()}",
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown model"


_QUEUE = None  # where a job reports finished steps: a multiprocessing queue, or the bar itself in-process


def _init_worker(threads: int, queue) -> None:
    global _QUEUE
    torch.set_num_threads(threads)
    _QUEUE = queue


def _tick(n: int = 1) -> None:
    if _QUEUE is not None:
        _QUEUE.put(n)


def _warm_units(cfg: DemoConfig) -> int:
    """A warm start counts as half an RL run on the progress bar (roughly its cost)."""
    return max(cfg.rl.steps // 2, 1)


def warm_start_job(cfg: DemoConfig, seed: int) -> tuple[int, dict, dict]:
    """Build the seed's model and warm-start it; returns (seed, state_dict, warm-start info).

    The held-out accuracy of the checkpoint is each RL run's step-0 evaluation (same problems, same seed).
    """
    tokenizer = task.build_tokenizer()
    model = build_model(tokenizer, seed, cfg.hidden, cfg.layers)
    info = train.warm_start(model, tokenizer, cfg.warm_target, cfg.warm_max_steps, cfg.warm_batch, cfg.warm_lr, seed)
    _tick(_warm_units(cfg))
    return seed, model.state_dict(), info


def rl_job(cfg: DemoConfig, seed: int, method: str, state: dict) -> dict:
    tokenizer = task.build_tokenizer()
    model = build_model(tokenizer, seed, cfg.hidden, cfg.layers)
    model.load_state_dict(state)
    problems = task.sample_problems(cfg.eval_size, torch.Generator().manual_seed(999))  # fixed held-out set
    hist = train.run_rl(model, tokenizer, method, cfg.rl, seed, problems, cfg.eval_samples, on_step=_tick)
    return {"seed": seed, "method": method, **hist}


def run_experiment(cfg: DemoConfig, show_progress: bool = True) -> dict:
    """Run every (seed, method); returns ``{"config", "environment", "warm_start": {"seed": info}, "runs": [...]}``."""
    total = len(cfg.seeds) * (_warm_units(cfg) + len(cfg.methods) * cfg.rl.steps)
    bar = tqdm(total=total, desc="warm start + RL", unit="step", disable=not show_progress)
    warm, runs = {}, []
    if cfg.workers <= 1:
        _init_worker(cfg.threads, SimpleNamespace(put=bar.update))
        for seed in cfg.seeds:
            _, state, warm[seed] = warm_start_job(cfg, seed)
            runs += [rl_job(cfg, seed, method, state) for method in cfg.methods]
    else:
        ctx = mp.get_context("fork")  # children inherit the imported modules (verl's import alone takes seconds)
        queue = ctx.Queue()
        listener = threading.Thread(target=_listen, args=(queue, bar), daemon=True)
        listener.start()
        with ProcessPoolExecutor(cfg.workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(cfg.threads, queue)) as pool:
            jobs = {pool.submit(warm_start_job, cfg, seed): "warm" for seed in cfg.seeds}
            while jobs:
                done, _ = wait(jobs, return_when=FIRST_COMPLETED)
                for fut in done:
                    if jobs.pop(fut) == "warm":
                        seed, state, warm[seed] = fut.result()
                        jobs.update({pool.submit(rl_job, cfg, seed, m, state): "rl" for m in cfg.methods})
                    else:
                        runs.append(fut.result())
        queue.put(None)
        listener.join()
    bar.close()
    runs.sort(key=lambda r: (cfg.seeds.index(r["seed"]), cfg.methods.index(r["method"])))
    warm = {str(seed): warm[seed] for seed in cfg.seeds}  # JSON object keys are strings
    return {"config": asdict(cfg), "environment": environment(), "warm_start": warm, "runs": runs}


def _listen(queue, bar) -> None:
    while (n := queue.get()) is not None:
        bar.update(n)
