"""``python -m tools.smoke``: ``examples/train.sh`` (the script behind every paper row) for a few steps of verl's real
trainer on a CPU, overriding only the platform (``tools.cpu``), the model (a tiny Qwen2, or ``--model``), the data
(addition problems, and one problem per evaluation set) and the sizes; then the verdicts of ``checks``. It starts its
own Ray on 127.0.0.1 in its own temporary directory and leaves nothing running.

    python -m tools.smoke                                   # CW-GRPO, 1.5B preset, 2 steps
    python -m tools.smoke --method grpo,cwgrpo --steps 4    # step times side by side
    python -m tools.smoke --model ~/models/Qwen2.5-0.5B trainer.val_before_train=false
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from cwgrpo_verl import argtypes
from cwgrpo_verl.groups import groups_per_rank
from cwgrpo_verl.tokens import log_path as token_log_path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
METHODS = ("cwgrpo", "grpo", "clip_cov", "kl_cov")
PRESETS = ("r1_distill_1.5b", "qwen_math_7b")
SCOPES = ("group", "micro_batch", "batch")
GROUP_SIZE = 4  # responses per prompt
PROMPTS = 4  # prompts per step
MICRO_BATCH = 8  # responses per micro-batch: two whole groups
LOG_PROB_MICRO_BATCH = 4  # forward-only passes: sized apart from the group, as the recipe does
PROMPT_LENGTH, RESPONSE_LENGTH = 128, 32
RECIPE = "recipe.cwgrpo.main_cwgrpo"


def cpu_overrides(work: Path, model: Path, ray_dir: Path, steps: int, ranks: int = 1, prompts: int = PROMPTS,
                  fail_session: Optional[tuple[int, int]] = None) -> list[str]:
    """The Hydra overrides that move a run onto the CPU backend at smoke-test sizes (nothing about the method):
    ``ranks`` FSDP2 processes over gloo, each with its own rollout server; ``fail_session``: see ``--fail-session``."""
    actor, ref, rollout = "actor_rollout_ref.actor", "actor_rollout_ref.ref", "actor_rollout_ref.rollout"
    return [
        # sizes
        f"data.train_batch_size={prompts}", f"data.max_prompt_length={PROMPT_LENGTH}",
        f"data.max_response_length={RESPONSE_LENGTH}", "data.dataloader_num_workers=0", f"{rollout}.n={GROUP_SIZE}",
        f"{actor}.ppo_mini_batch_size={prompts}", f"{actor}.ppo_micro_batch_size_per_gpu={MICRO_BATCH}",
        f"{rollout}.log_prob_micro_batch_size_per_gpu={LOG_PROB_MICRO_BATCH}",
        f"{ref}.log_prob_micro_batch_size_per_gpu={LOG_PROB_MICRO_BATCH}",
        f"{rollout}.max_model_len={PROMPT_LENGTH + RESPONSE_LENGTH}", f"trainer.total_training_steps={steps}",
        # model
        f"actor_rollout_ref.model.path={model}", "actor_rollout_ref.model.use_remove_padding=false",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.model.enable_gradient_checkpointing=false",
        # platform: verl's FSDP2 engine on gloo in float32, the "hf" rollout, the fake "GPU" resource Ray schedules by
        f"{actor}.strategy=fsdp2", f"{actor}.fsdp_config.strategy=fsdp2", f"{actor}.fsdp_config.dtype=float32",
        f"+{actor}.fsdp_config.mixed_precision.param_dtype=fp32", f"{actor}.use_torch_compile=false",
        f"+{ref}.fsdp_config.mixed_precision.param_dtype=fp32", f"{ref}.strategy=fsdp2",
        f"{ref}.fsdp_config.strategy=fsdp2",
        f"{rollout}.name=hf", f"{rollout}.tensor_model_parallel_size=1", f"{rollout}.agent.num_workers=1",
        "reward.num_workers=1", "reward.custom_reward_function.path=pkg://tools.cpu.smoke_reward",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
        "trainer.device=cpu", "trainer.nnodes=1", f"trainer.n_gpus_per_node={ranks}", "trainer.logger=[console,file]",
        f"trainer.default_local_dir={work / 'checkpoints'}",
        # a Ray of our own: a new local instance (never an existing cluster), on loopback, in our directory;
        # num_cpus are Ray's bookkeeping units, not cores: verl reserves several per rank
        "+ray_kwargs.ray_init.address=local", f"ray_kwargs.ray_init.num_cpus={8 * ranks}",
        f"+ray_kwargs.ray_init.num_gpus={ranks}", "+ray_kwargs.ray_init.include_dashboard=false",
        f"+ray_kwargs.ray_init._temp_dir={ray_dir}", "+ray_kwargs.ray_init._node_ip_address=127.0.0.1",
        *([f"+{rollout}.engine_kwargs.hf.fail_session=[{fail_session[0]},{fail_session[1]}]"] if fail_session else []),
    ]


@dataclass
class Run:
    """What one smoke run did: its exit code, per-step metrics (verl's file logger) and rollout events."""
    method: str
    scope: str
    module: str  # the entry point the script runs (the recipe, or verl.trainer.main_ppo)
    returncode: int
    seconds: float
    work: Path
    log: str
    metrics: dict[int, dict] = field(default_factory=dict)  # step -> metrics (step 0: validation before training)
    events: list[dict] = field(default_factory=list)
    tokens: list[dict] = field(default_factory=list)  # the recipe's token log (cwgrpo_verl.tokens)
    leftovers: list[int] = field(default_factory=list)  # our processes still alive after the run (then killed)
    ranks: int = 1
    prompts: int = PROMPTS
    fail_session: Optional[tuple[int, int]] = None
    token_log_every: Optional[int] = None  # cwgrpo.token_log_every when the run set it (None: the recipe's default)

    @property
    def steps(self) -> list[int]:
        return sorted(step for step in self.metrics if step > 0 and "actor/grad_norm" in self.metrics[step])

    def step_time(self, key: str = "timing_s/step") -> float:
        """Mean over the steps after the first (the first one pays for start-up), or the only step."""
        steps = self.steps[1:] or self.steps
        values = [self.metrics[s][key] for s in steps if key in self.metrics[s]]
        return sum(values) / len(values) if values else math.nan


def run(method: str = "cwgrpo", *, preset: str = "r1_distill_1.5b", scope: str = "group", steps: int = 2,
        model: Optional[Path] = None, overrides: tuple[str, ...] = (), script: str = "train.sh",
        work: Optional[Path] = None, timeout_s: float = 600.0, echo: bool = False,
        extra_env: Optional[dict[str, str]] = None, ranks: int = 1, prompts: int = PROMPTS,
        fail_session: Optional[tuple[int, int]] = None, token_log_every: Optional[int] = None,
        environ: Optional[dict[str, str]] = None) -> Run:
    """Run ``examples/<script>`` on the CPU backend and collect what it logged. A second run with the same ``work``
    (default: a new temporary directory) resumes from its checkpoints. ``extra_env`` is added to the environment
    (``VERL_USE_EXTERNAL_MODULES`` and ``PYTHONPATH`` are extended, not replaced); ``environ`` replaces
    ``os.environ`` as the environment to start from (for a run started from a thread while others change it)."""
    from tools.cpu import tiny

    work = Path(work or tempfile.mkdtemp(prefix="cwgrpo-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    if model is None:
        model = work / "model"
        if not (model / "config.json").exists():
            tiny.build_model(model)
    data = work / "data"
    if not (data / "open_rs.parquet").exists():
        tiny.write_data(data)
    # Ray's unix sockets live in its temp dir: keep the path short
    ray_dir = Path(tempfile.mkdtemp(prefix="cwr", dir="/tmp"))
    metrics_file, events_file = work / "metrics.jsonl", work / "rollout_events.jsonl"
    tokens_file = token_log_path(metrics_file)
    for stale in (metrics_file, events_file, tokens_file):
        stale.unlink(missing_ok=True)
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k != "RAY_ADDRESS"}
    temp = work / "tmp"  # the run's temporary files (verl's checkpoint locks among them) stay in its own folder
    temp.mkdir(exist_ok=True)
    env.update(
        TMPDIR=str(temp), METHOD=method, PRESET=preset, CW_SCOPE=scope, DATA_DIR=str(data), MODEL_PATH=str(model),
        CHECKPOINT_DIR=str(work / "checkpoints"), PYTHON=sys.executable,
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        VERL_PLATFORM="cpu", VERL_USE_EXTERNAL_MODULES="tools.cpu.backend",
        VERL_FILE_LOGGER_PATH=str(metrics_file), CWGRPO_CPU_EVENTS=str(events_file),
        RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", RAY_DEDUP_LOGS="0", PYTHONUNBUFFERED="1",
        TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="1",
    )
    for key, value in (extra_env or {}).items():
        joined = {"VERL_USE_EXTERNAL_MODULES": ",", "PYTHONPATH": os.pathsep}.get(key)
        env[key] = f"{env[key]}{joined}{value}" if joined else value
    command = ["bash", str(EXAMPLES / script),
               *cpu_overrides(work, model, ray_dir, steps, ranks, prompts, fail_session),
               *([f"cwgrpo.token_log_every={token_log_every}"] if token_log_every is not None else []), *overrides]
    module = subprocess.run(command, cwd=work, env={**env, "DRY_RUN": "1"}, capture_output=True, text=True,
                            check=True).stdout.split("\n", 1)[0]
    log_path = work / "run.log"
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", start_new_session=True)
        copier = threading.Thread(target=_copy_output, args=(proc, log, echo), daemon=True)
        copier.start()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.write(f"\n[smoke] no exit after {timeout_s:.0f} s: stopping the run\n")
            os.killpg(proc.pid, signal.SIGKILL)  # our own process group: the driver and its local Ray
            proc.wait()
        copier.join(timeout=30)
    seconds = time.monotonic() - start
    leftovers = stop_leftovers(session=proc.pid, marker=str(ray_dir))
    shutil.rmtree(ray_dir, ignore_errors=True)
    return Run(method=method, scope=scope, module=module, returncode=proc.returncode, seconds=seconds, work=work,
               ranks=ranks, prompts=prompts, fail_session=fail_session, token_log_every=token_log_every,
               log=log_path.read_text(encoding="utf-8", errors="replace"), metrics=_read_metrics(metrics_file),
               events=_read_jsonl(events_file), tokens=_read_jsonl(tokens_file), leftovers=leftovers)


def _copy_output(proc: subprocess.Popen, log, echo: bool) -> None:
    for line in proc.stdout:
        log.write(line)
        if echo:
            sys.stdout.write(line)


def _read_jsonl(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def _read_metrics(path: Path) -> dict[int, dict]:
    merged: dict[int, dict] = {}
    for record in _read_jsonl(path):
        merged.setdefault(int(record["step"]), {}).update(record["data"])
    return merged


def our_processes(session: Optional[int] = None, marker: Optional[str] = None) -> list[int]:
    """Live processes of the run's own session (its Ray inherits it) or whose command line names ``marker`` (its Ray
    temp dir, in every Ray worker's arguments): exactly what the run started. Linux, as verl."""
    from cwgrpo_verl.processes import stat

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid() or (seen := stat(int(entry.name))) is None:
            continue
        try:
            mentions = marker is not None and marker.encode() in (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if seen[0] != "Z" and (seen[1] == session or mentions):
            found.append(int(entry.name))
    return found


def stop_leftovers(session: int, marker: str, grace_s: float = 60.0) -> list[int]:
    """Give our Ray time to finish its own shutdown; kill (and report) whatever of ours is still there. The wait ends
    as soon as nothing of ours is left: 15 s was once too short for a training rank's exit on a loaded 2-core CI."""
    deadline = time.monotonic() + grace_s
    while (alive := our_processes(session, marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _positive(run: Run, key: str) -> tuple[bool, str]:
    """Whether ``key`` is logged, finite and > 0 at every step; and its values, for the verdict."""
    values = [run.metrics[s].get(key) for s in run.steps]
    ok = bool(values) and all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values)
    return ok, f"{key} {_fmt(values)}"


def checks(run: Run, expected_steps: list[int]) -> list[Check]:
    """The verdicts a smoke run prints; a test asserts every one of them."""
    out = [Check("exit code 0", run.returncode == 0, f"exit code {run.returncode} after {run.seconds:.0f} s"),
           Check("every step logged", run.steps == expected_steps, f"steps logged {run.steps}, expected {expected_steps}"),
           Check("actor/grad_norm finite and > 0", *_positive(run, "actor/grad_norm"))]
    loads = [e for e in run.events if e.get("event") == "weights"]
    servers = sorted({e["server"] for e in loads})
    changed: dict[tuple, float] = {}
    for e in loads:  # the largest change a server saw at each step
        key = (e["server"], e["global_steps"])
        changed[key] = max(changed.get(key, 0.0), e["max_abs_change"])
    moved = [s for s in run.steps if servers and all(changed.get((name, s), 0) > 0 for name in servers)]
    out.append(Check("trained weights reached the rollout server", bool(run.steps) and moved == run.steps,
                     f"steps whose trained weights all {len(servers)} server(s) loaded: {moved}; largest change "
                     f"{_fmt([max(changed.get((n, s), 0) for n in servers) for s in moved])}"))
    out.append(_logprob_check(run))
    if run.module == RECIPE:
        out.append(Check("covariance statistics observed at every step", *_positive(run, "cov/std")))
        out.append(_layout_check(run))
        out.append(_token_log_check(run))
    if run.method == "cwgrpo":
        out.append(_weights_check(run))
    validation = {(s, k): v for s, m in run.metrics.items() for k, v in m.items() if k.startswith("val-core/")}
    if validation:
        example = next(iter(validation.items()))
        out.append(Check("validation scored with the project's reward", all(math.isfinite(v) for v in validation.values()),
                         f"{len(validation)} val-core metrics at steps {sorted({s for s, _ in validation})}, "
                         f"e.g. {example[0][1]} = {example[1]}"))
    out.append(Check("no process left behind", not run.leftovers,
                     f"{len(run.leftovers)} Ray processes of this run outlived it" if run.leftovers else "none"))
    return out


ON_POLICY_TOLERANCE = 1e-4


def _logprob_check(run: Run) -> Check:
    """At the first step the rollout and the actor are the same weights: the rollout's log-probs (as its
    ``logprobs_mode`` gives them) and the actor's must agree, and the policy equal the reference (KL 0)."""
    first = run.metrics.get(run.steps[0], {}) if run.steps else {}
    diff, kl = first.get("training/rollout_probs_diff_mean"), first.get("actor/kl_loss")
    ok = diff is not None and abs(diff) < ON_POLICY_TOLERANCE and (kl is None or abs(kl) < ON_POLICY_TOLERANCE)
    return Check("rollout and actor log-probs agree at the first step", ok,
                 f"training/rollout_probs_diff_mean {_fmt([diff])}, actor/kl_loss {_fmt([kl])} "
                 f"(tolerance {ON_POLICY_TOLERANCE:g})")


def _layout_check(run: Run) -> Check:
    """Every step is laid out in whole groups: the padding the sizes need, and the group whose session was made to
    fail dropped (and padded), at its step only."""
    dropped = [int(run.metrics[s].get("groups/dropped_incomplete", -1)) for s in run.steps]
    padding = [int(run.metrics[s].get("groups/padding", -1)) for s in run.steps]
    failing = run.fail_session[0] if run.fail_session else None
    want_dropped = [int(s == failing) for s in run.steps]
    slots = groups_per_rank(run.prompts, run.ranks, GROUP_SIZE, math.lcm(MICRO_BATCH, LOG_PROB_MICRO_BATCH)) * run.ranks
    want_padding = [slots - (run.prompts - d) for d in want_dropped]  # the padding the recipe adds to the real groups
    return Check("prompt groups laid out whole", bool(run.steps) and (dropped, padding) == (want_dropped, want_padding),
                 f"padding groups per step {padding} (expected {want_padding}); groups dropped for missing responses "
                 f"{dropped} (expected {want_dropped})")


def _weights_check(run: Run) -> Check:
    """The actor trained on covariance weights: non-constant weights at every step, where the scope computes them
    (in the loss for group and micro_batch; before the update for batch)."""
    ok, detail = _positive(run, "cw/weight_std" if run.scope == "batch" else "actor/cw/weight_std")
    if run.scope == "group":  # the mean over micro-batches with a real group: fewer where padding shares one
        groups = [run.metrics[s].get("actor/cw/groups_per_micro_batch") for s in run.steps]
        ok = ok and all(g is not None and 1 <= g <= MICRO_BATCH // GROUP_SIZE for g in groups)
        detail += f"; real groups per micro-batch {_fmt(groups)}"
    return Check("the actor trains on the CW weights", ok, detail)


def _token_log_check(run: Run) -> Check:
    """The recipe logged the extreme tokens of the run's first step (and every cwgrpo.token_log_every-th), with
    their text; CW-GRPO also its most down-weighted ones. With the log turned off, nothing."""
    if run.token_log_every == 0:
        return Check("no token log when turned off", not run.tokens, f"{len(run.tokens)} records")
    selections = {"abs_cov", "low_weight"} if run.method == "cwgrpo" else {"abs_cov"}
    first = [r for r in run.tokens if run.steps and r["step"] == run.steps[0]]
    ok = bool(first) and {r["selection"] for r in first} == selections and all(
        isinstance(r["token"], str) and math.isfinite(r["cov"]) for r in first)
    top = max(first, key=lambda r: abs(r["cov"]), default=None)
    return Check("extreme tokens logged", ok, f"{len(run.tokens)} records at steps {sorted({r['step'] for r in run.tokens})}"
                 + (f"; largest |cov| {abs(top['cov']):.3g} on {top['token']!r}" if top else ""))


def _fmt(values) -> str:
    return "[" + ", ".join("-" if v is None else f"{v:.3g}" for v in values) + "]"


def _step_and_request(text: str) -> tuple[int, int]:
    step, _, request = text.partition(":")
    if not (step.isdigit() and request.isdigit() and int(step) >= 1):
        raise argparse.ArgumentTypeError(f"expected STEP:K with STEP >= 1 and K >= 0, got {text!r}")
    return int(step), int(request)


def _model_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if not (path / "config.json").is_file():
        raise argparse.ArgumentTypeError(f"{path} is not a Hugging Face model directory (no config.json)")
    return path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.smoke",
        description="Run the paper's training script for a few steps of verl's real trainer on this CPU, "
        "and check the run.",
        epilog="Anything after the options is passed to the script as Hydra overrides, e.g. trainer.test_freq=1.",
    )
    parser.add_argument("--method", type=argtypes.names(METHODS), default=["cwgrpo"],
                        help=f"one or more of {', '.join(METHODS)}, comma-separated (default: cwgrpo)")
    parser.add_argument("--preset", choices=PRESETS, default="r1_distill_1.5b", help="the paper run to take the settings of")
    parser.add_argument("--scope", choices=SCOPES, default="group", help="cw_scope for cwgrpo (default: group)")
    parser.add_argument("--steps", type=argtypes.integer(), default=2, help="training steps (default: 2)")
    parser.add_argument("--model", type=_model_dir, default=None,
                        help="a small Hugging Face model of the Qwen2 family instead of the built-in tiny one")
    parser.add_argument("--ranks", type=argtypes.integer(), default=1, choices=[1, 2], metavar="{1,2}",
                        help="data-parallel training processes (FSDP2 over gloo), each with a rollout server; 2 "
                        "checks the whole-group balancing across ranks (default: 1)")
    parser.add_argument("--prompts", type=argtypes.integer(), default=PROMPTS,
                        help=f"prompt groups per step (default: {PROMPTS}); an odd number over 2 ranks needs padding")
    parser.add_argument("--fail-session", type=_step_and_request, default=None, metavar="STEP:K",
                        help="make the K-th (from 0) rollout request of STEP fail, as a crashed session: its group "
                        "must be dropped and the run go on")
    parser.add_argument("--token-log-every", type=argtypes.integers(0), default=[None], metavar="N[,N...]",
                        help="cwgrpo.token_log_every for each run (0: off); several values run each method once per "
                        "value, to compare their step times (default: the recipe's)")
    parser.add_argument("--work", type=Path, default=None, help="keep the run's files here (default: a temp dir)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run before it is stopped")
    parser.add_argument("--verbose", action="store_true", help="print the trainer's output as it runs")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides passed to the training script")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    runs, failed = [], 0
    for method, every in itertools.product(args.method, args.token_log_every):
        label = method if every is None else f"{method}, token_log_every={every}"
        work = args.work / label.replace(", ", "-") if args.work else None
        print(f"smoke: examples/train.sh METHOD={method} PRESET={args.preset} CW_SCOPE={args.scope}"
              f"{'' if every is None else f' cwgrpo.token_log_every={every}'} for {args.steps} step(s) on the CPU "
              "backend ...", flush=True)
        result = run(method, preset=args.preset, scope=args.scope, steps=args.steps, model=args.model,
                     overrides=tuple(args.overrides), work=work, timeout_s=args.timeout, echo=args.verbose,
                     ranks=args.ranks, prompts=args.prompts, fail_session=args.fail_session, token_log_every=every)
        verdicts = checks(result, expected_steps=list(range(1, args.steps + 1)))
        for verdict in verdicts:
            print(f"  {'ok  ' if verdict.ok else 'FAIL'}  {verdict.name}: {verdict.detail}")
        print(f"  step time {result.step_time():.2f} s (update_actor {result.step_time('timing_s/update_actor'):.2f} s); "
              f"log: {result.work / 'run.log'}")
        failed += sum(not v.ok for v in verdicts)
        runs.append((label, result))
    if len(runs) > 1 and runs[0][1].steps:
        base_label, base = runs[0]
        width = max(len(label) for label, _ in runs)
        print(f"\nstep time against {base_label} (mean over steps 2..{args.steps}; CPU, tiny model):")
        for label, result in runs:
            print(f"  {label:<{width}}", "   ".join(
                f"{name} {result.step_time(key):5.2f} s {result.step_time(key) / base.step_time(key):5.2f}x"
                for name, key in (("step", "timing_s/step"), ("update_actor", "timing_s/update_actor"),
                                  ("adv", "timing_s/adv"))))
    print("PASSED" if not failed else f"FAILED: {failed} check(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
