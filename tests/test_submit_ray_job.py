"""examples/submit_ray_job.sh under careless input: it submits only what it was asked to, refuses the rest before
anything runs, and says why in one line. A stand-in `ray` records whether it was called; no cluster is needed (the
real job: tests/test_examples_on_cpu.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import REPO

SUBMIT = REPO / "examples" / "submit_ray_job.sh"


@pytest.fixture
def fake_ray(tmp_path):
    """A `ray` that writes its arguments to ray.calls (one per line) and succeeds."""
    ray = tmp_path / "bin" / "ray"
    ray.parent.mkdir()
    ray.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" >> {tmp_path / "ray.calls"}\n')
    ray.chmod(0o755)
    return ray


def submit(fake_ray, *args, **env):
    """Run the script with ``env`` on top of this one's (a None value unsets the variable)."""
    env = {**os.environ, "RAY": str(fake_ray), "PYTHON": sys.executable, "DATA_DIR": "/shared/data", "DRY_RUN": None,
           **env}
    return subprocess.run(["bash", str(SUBMIT), *args], env={k: v for k, v in env.items() if v is not None},
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def calls(fake_ray) -> list[str] | None:
    path = fake_ray.parent.parent / "ray.calls"
    return path.read_text().splitlines() if path.exists() else None


def refused(job, message: str) -> None:
    assert job.returncode == 2, (job.returncode, job.stderr)
    assert job.stderr == f"submit_ray_job.sh: {message}\n", job.stderr


def test_dry_run_prints_the_submission_and_submits_nothing(fake_ray):
    """Case 6: `DRY_RUN=1 examples/submit_ray_job.sh` still called `ray job submit`."""
    job = submit(fake_ray, "trainer.test_freq=25", DRY_RUN="1")
    assert job.returncode == 0, job.stderr
    assert calls(fake_ray) is None
    args = job.stdout.splitlines()
    assert args[:4] == [str(fake_ray), "job", "submit", "--address"]
    assert json.loads(args[args.index("--runtime-env-json") + 1])["working_dir"] == str(REPO)
    command = args[args.index("--") + 1:]
    assert command[:3] == ["python", "-m", "recipe.cwgrpo.main_cwgrpo"] and command[-1] == "trainer.test_freq=25"
    # without DRY_RUN the same command is what ray gets
    assert submit(fake_ray, "trainer.test_freq=25").returncode == 0
    assert calls(fake_ray) == args[1:]


def test_a_script_that_is_not_a_training_script_is_refused_without_running_it(fake_ray, tmp_path):
    """Case 7: `submit_ray_job.sh prepare_data.sh` ran it here (7 files written into DATA_DIR), then submitted a
    garbage entrypoint; `--` with no command submitted an empty one."""
    data = tmp_path / "data"
    data.mkdir()
    for script in ("prepare_data.sh", "_lib.sh", "submit_ray_job.sh", "runtime_env.yaml"):
        refused(submit(fake_ray, script, DATA_DIR=str(data)),
                f"examples/{script} is not a training script (one that sources _lib.sh and calls run_entry with the "
                "recipe or main_ppo, or execs train.sh): it would run here, not in the job; run it yourself, or "
                "submit -- COMMAND")
    assert list(data.iterdir()) == [] and calls(fake_ray) is None
    refused(submit(fake_ray, "--"), "-- needs a command after it (e.g. -- python -m tools.check)")
    assert calls(fake_ray) is None


def test_the_evaluation_script_is_not_taken_for_a_training_run(fake_ray):
    refused(submit(fake_ray, "evaluate.sh"), "examples/evaluate.sh is not a training script (one that sources _lib.sh "
            "and calls run_entry with the recipe or main_ppo, or execs train.sh): it would run here, not in the job; run "
            "it yourself, or submit -- COMMAND")
    assert calls(fake_ray) is None


@pytest.mark.parametrize("script", ["train.sh", "main_ppo_cwgrpo.sh", "qwen_math_7b_kl_cov.sh",
                                    "examples/r1_distill_1.5b_grpo.sh", "./examples/train.sh"])
def test_every_training_script_is_submitted(fake_ray, script):
    job = submit(fake_ray, script, DRY_RUN="1")
    assert job.returncode == 0, job.stderr
    command = job.stdout.splitlines()[job.stdout.splitlines().index("--") + 1:]
    assert command[:2] == ["python", "-m"] and command[2] in ("recipe.cwgrpo.main_cwgrpo", "verl.trainer.main_ppo")


def test_an_explicit_command_is_submitted_as_given(fake_ray):
    assert submit(fake_ray, "--", "python", "-c", "print('a b')").returncode == 0
    assert calls(fake_ray)[-4:] == ["--", "python", "-c", "print('a b')"]


def test_a_script_name_without_sh_is_not_taken_for_an_override(fake_ray):
    """`submit_ray_job.sh r1_distill_1.5b_grpo` submitted the default script with `r1_distill_1.5b_grpo` as an
    override."""
    refused(submit(fake_ray, "r1_distill_1.5b_grpo"),
            "r1_distill_1.5b_grpo: no such script in examples/ (did you mean r1_distill_1.5b_grpo.sh?)")
    refused(submit(fake_ray, "trainer.test_freq"), "trainer.test_freq: neither a script in examples/ nor a Hydra "
                                                   "override (KEY=VALUE)")
    refused(submit(fake_ray, "r1_distill_1.5b_grpo.sh", "trainer.test_freq"),
            "'trainer.test_freq' is not a Hydra override (Error parsing override 'trainer.test_freq')")
    assert calls(fake_ray) is None


def test_another_folders_script_is_refused_not_swapped_for_the_examples_copy(fake_ray, tmp_path):
    mine = tmp_path / "mine" / "train.sh"
    mine.parent.mkdir()
    mine.write_text("#!/usr/bin/env bash\necho mine\n")
    refused(submit(fake_ray, str(mine)), f"{mine}: not in {REPO / 'examples'}: only the training scripts there are "
                                         "submitted (the job runs in a copy of this repo); submit anything else with "
                                         "-- COMMAND")
    refused(submit(fake_ray, str(tmp_path / "missing" / "train.sh")), f"{tmp_path / 'missing' / 'train.sh'}: no such file")
    assert calls(fake_ray) is None


def test_a_quoted_hydra_list_is_parsed_as_hydra_parses_it(fake_ray):
    """`"data.val_files=['/abs/a.parquet']"` was refused as a relative path ('/abs/a.parquet' with its quotes)."""
    override = "data.val_files=['/abs/a.parquet', \"/abs/b c.parquet\"]"
    job = submit(fake_ray, override, DRY_RUN="1")
    assert job.returncode == 0, job.stderr
    assert job.stdout.splitlines()[-1] == override
    refused(submit(fake_ray, "data.val_files=['/abs/a.parquet', 'b.parquet']"),
            "data.val_files=b.parquet is not an absolute path (and nothing here has that name); the job runs on "
            "another machine, in a copy of the repo: give paths on storage every node sees")
    refused(submit(fake_ray, "trainer.experiment_name=a,b"),
            "'trainer.experiment_name=a,b' is a sweep (values separated by commas), which one run cannot take: quote "
            "the value ('a,b') or give a list ([a,b])")
    assert calls(fake_ray) is None


@pytest.mark.parametrize("model", ["./models/mine", "../models/mine", "models/org/mine"])
def test_a_local_looking_model_path_is_never_a_hub_name(fake_ray, model):
    """`MODEL_PATH=./models/mine` (missing) was submitted as if it were a hub name."""
    refused(submit(fake_ray, MODEL_PATH=model),
            f"actor_rollout_ref.model.path={model} is not an absolute path (and nothing here has that name); the job "
            "runs on another machine, in a copy of the repo: give paths on storage every node sees")
    assert submit(fake_ray, MODEL_PATH="Qwen/Qwen2.5-Math-7B-Instruct", DRY_RUN="1").returncode == 0


def test_an_override_with_a_line_break_is_refused(fake_ray):
    """An override with a newline was split in two at the line break (one line per argument in the dry run)."""
    refused(submit(fake_ray, "trainer.experiment_name='a\nb'"),
            "the override 'trainer.experiment_name='a...' contains a line break, which cannot be carried into the "
            "job's command")
    assert calls(fake_ray) is None


def test_a_python_that_fails_is_said_to(fake_ray, tmp_path):
    """`PYTHON` failing used to end the script with its exit status and no word."""
    job = submit(fake_ray, PYTHON="false")  # the training script's dry run needs it first
    assert job.returncode == 2 and job.stderr == (
        "train.sh: PYTHON=false cannot run cwgrpo_verl (pip install -e . there)\n"
        "submit_ray_job.sh: examples/r1_distill_1.5b_cwgrpo.sh failed in its dry run (exit status 2): nothing submitted\n")
    refused(submit(fake_ray, "--", "true", PYTHON="false"),
            "PYTHON=false failed (exit status 1) while checking the overrides and writing the runtime env; nothing "
            "submitted (set PYTHON to the interpreter verl is installed in)")
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    python = bare / "bin" / "python"
    job = submit(fake_ray, PYTHON=str(python))
    assert job.returncode == 2 and job.stderr.startswith(f"submit_ray_job.sh: PYTHON={python} cannot import hydra ("), \
        job.stderr
    assert calls(fake_ray) is None


def test_python_defaults_to_the_checkouts_environment(fake_ray):
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in this checkout")
    job = submit(fake_ray, DRY_RUN="1", PYTHON=None)
    assert job.returncode == 0, job.stderr
