"""Every example script's arguments compose with verl 0.9.1's real config and pass the driver's checks;
prepare_data.sh converts real data; submit_ray_job.sh runs a job on a real local Ray head."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers import REPO, SHARED_DATA, compose, validate

EXAMPLES = REPO / "examples"
TRAINING_SCRIPTS = sorted(
    p.name for p in EXAMPLES.glob("*.sh") if p.name not in {"_lib.sh", "prepare_data.sh", "submit_ray_job.sh"}
)


def dry_run(script, *extra, **env):
    """What the script would run: the entry module and its arguments, printed by _lib.sh's run_entry."""
    out = subprocess.run(
        ["bash", str(EXAMPLES / script), *extra],
        env={**os.environ, "DRY_RUN": "1", "DATA_DIR": "/data", **env},
        capture_output=True, text=True, check=True, timeout=60,
    )
    module, *args = out.stdout.strip().splitlines()
    return module, args


def compose_and_check(module, args):
    """Compose as that entry point's Hydra app would and run its driver-side checks."""
    if module == "recipe.cwgrpo.main_cwgrpo":
        from hydra import compose as hydra_compose
        from hydra import initialize_config_dir

        from recipe.cwgrpo.main_cwgrpo import prepare

        with initialize_config_dir(str(REPO / "recipe" / "cwgrpo" / "config"), version_base=None):
            cfg = hydra_compose("cwgrpo_trainer", overrides=args)
        try:
            cfg = prepare(cfg)
            return cfg, validate(cfg)
        finally:
            os.environ.pop("CWGRPO_RECIPE_TRAINER", None)
    if module == "verl.trainer.main_ppo":
        cfg = compose(args)
        return cfg, validate(cfg)
    raise AssertionError(f"unexpected entry point {module}")


def test_every_training_script_is_covered():
    assert {"train.sh", "main_ppo_cwgrpo.sh", "evaluate.sh"} <= set(TRAINING_SCRIPTS)
    assert sum(name.startswith(("r1_distill_1.5b_", "qwen_math_7b_")) for name in TRAINING_SCRIPTS) == 8


@pytest.mark.parametrize("script", TRAINING_SCRIPTS)
def test_script_arguments_compose_and_validate(script):
    module, args = dry_run(script)
    cfg, (actor, rollout, _) = compose_and_check(module, args)
    assert cfg.data.train_files.startswith("/data/") and len(cfg.data.val_files) == 5
    if script.startswith(("r1_distill", "qwen_math")):
        method = script.rsplit("_", 1)[-1].removesuffix(".sh")
        expected = {"cwgrpo": "cw_grpo", "grpo": "vanilla", "cov": None}[method if method in ("cwgrpo", "grpo") else "cov"]
        assert expected is None or actor.policy_loss.loss_mode == expected
        assert rollout.n == 12 and cfg.data.train_batch_size == 12
        assert cfg.trainer.total_training_steps == (100 if script.startswith("r1") else 150)


def test_method_settings_reach_the_config():
    _, args = dry_run("r1_distill_1.5b_kl_cov.sh")
    _, (actor, _, _) = compose_and_check("recipe.cwgrpo.main_cwgrpo", args)
    assert (actor.policy_loss.loss_mode, actor.policy_loss.kl_cov_ratio, actor.policy_loss.ppo_kl_coef) == ("kl_cov", 0.002, 1.0)
    _, args = dry_run("r1_distill_1.5b_clip_cov.sh")
    _, (actor, _, _) = compose_and_check("recipe.cwgrpo.main_cwgrpo", args)
    assert (actor.policy_loss.loss_mode, actor.policy_loss.clip_cov_ratio, actor.policy_loss.clip_cov_ub) == ("clip_cov", 0.0002, 5.0)
    _, args = dry_run("qwen_math_7b_cwgrpo.sh")
    cfg, _ = compose_and_check("recipe.cwgrpo.main_cwgrpo", args)
    assert cfg.reward.custom_reward_function.reward_kwargs.format_weight == 0.0


@pytest.mark.parametrize(
    "script, typo",
    [
        ("train.sh", "actor_rollout_ref.actor.policy_los.loss_mode=cw_grpo"),
        ("main_ppo_cwgrpo.sh", "+actor_rollout_ref.actor.policy_loss.cw_normaliser=padded"),
        ("evaluate.sh", "trainer.val_onyl=true"),
    ],
)
def test_a_misspelt_key_fails(script, typo):
    module, args = dry_run(script, typo)
    with pytest.raises(Exception, match=typo.lstrip("+").split("=")[0].rsplit(".", 1)[-1]):
        compose_and_check(module, args)


def test_unknown_method_is_refused():
    proc = subprocess.run(["bash", str(EXAMPLES / "train.sh")], env={**os.environ, "DRY_RUN": "1", "METHOD": "ppo"},
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown METHOD=ppo" in proc.stderr


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"evaluation data not found at {SHARED_DATA}")
def test_prepare_data_script_writes_every_parquet(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "DATA_DIR": str(tmp_path), "LOCAL_EVAL_DIR": str(SHARED_DATA),
           "OPEN_RS_SOURCE": str(REPO / "tests" / "fixtures" / "open_rs_sample.jsonl"), "DROP_CONTAMINATED": "1"}
    subprocess.run(["bash", str(EXAMPLES / "prepare_data.sh")], env=env, check=True, timeout=300, capture_output=True)
    names = {p.name for p in tmp_path.glob("*.parquet")}
    assert {"open_rs.parquet", "aime24.parquet", "math500.parquet", "amc23.parquet", "minerva.parquet",
            "olympiadbench.parquet"} <= names


@pytest.mark.slow
def test_submit_ray_job_runs_on_a_local_head():
    """A real head on loopback; the job runs `python -m cwgrpo_verl.check` and finds cw_grpo in its Ray worker."""
    bindir = Path(sys.executable).parent
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's unix sockets live there
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{bindir}:{os.environ['PATH']}",
           "RAY_ADDRESS": "http://127.0.0.1:8365", "RAY_USAGE_STATS_ENABLED": "0"}
    ray = str(bindir / "ray") if (bindir / "ray").exists() else shutil.which("ray")
    start = [ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", "6390", "--dashboard-host", "127.0.0.1",
             "--dashboard-port", "8365", "--num-cpus", "2", "--disable-usage-stats",
             "--temp-dir", temp_dir]
    head_env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}
    subprocess.run(start, env=head_env, check=True, capture_output=True, timeout=180)
    try:
        job = None
        for _ in range(30):  # the job server comes up a little after `ray start` returns
            job = subprocess.run(["bash", str(EXAMPLES / "submit_ray_job.sh"), "python", "-m", "cwgrpo_verl.check"],
                                 env={**env, "RAY": ray}, capture_output=True, text=True, timeout=300, cwd=REPO)
            if "Failed to connect" not in job.stdout + job.stderr and "ConnectionError" not in job.stderr:
                break
            time.sleep(2)
        output = job.stdout + job.stderr
        assert job.returncode == 0, output[-4000:]
        assert "ray worker" in output and "cwgrpo_verl: registered everywhere" in output, output[-4000:]
        assert "succeeded" in output
    finally:
        subprocess.run([ray, "stop", "--force"], env=head_env, capture_output=True, timeout=120)
        shutil.rmtree(temp_dir, ignore_errors=True)
