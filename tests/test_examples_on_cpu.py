"""Every example script's arguments compose with verl 0.9.1's real config and pass the driver's checks;
prepare_data.sh converts real data; submit_ray_job.sh carries the submitting shell's settings into a job on a
real local Ray head. (The scripts' runs through verl's real trainer: tests/test_trainer_e2e.py.)"""

import json
import os
import re
import subprocess
import sys

import pytest
from helpers import REPO, SHARED_DATA, compose, validate, worker_configs
from ray_head import local_ray_head

EXAMPLES = REPO / "examples"
TRAINING_SCRIPTS = sorted(
    p.name for p in EXAMPLES.glob("*.sh")
    if p.name not in {"_lib.sh", "prepare_data.sh", "submit_ray_job.sh", "evaluate.sh", "evaluate_checkpoints.sh"}
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
            cfg = prepare(cfg)  # verl's validate_config included, on the batch the recipe dispatches
            return cfg, worker_configs(cfg)
        finally:
            os.environ.pop("CWGRPO_RECIPE_TRAINER", None)
    if module == "verl.trainer.main_ppo":
        cfg = compose(args)
        return cfg, validate(cfg)
    raise AssertionError(f"unexpected entry point {module}")


def test_every_training_script_is_covered():
    assert {"train.sh", "main_ppo_cwgrpo.sh"} <= set(TRAINING_SCRIPTS)
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
        assert cfg.trainer.total_training_steps == (300 if script.startswith("r1") else 150)
        assert (cfg.data.max_response_length, rollout.max_model_len, cfg.cwgrpo.logprob_temperature) == (4096, 4096, 1.0)
        assert actor.optim.weight_decay == 0.0


@pytest.mark.parametrize("script, nodes, gpus", [
    *(("r1_distill_1.5b_cwgrpo.sh", 1, g) for g in range(1, 17)), ("r1_distill_1.5b_cwgrpo.sh", 2, 8),
    *(("qwen_math_7b_cwgrpo.sh", 1, g) for g in (1, 2, 4, 8)),
    ("r1_distill_1.5b_grpo.sh", 1, 8), ("r1_distill_1.5b_clip_cov.sh", 1, 5), ("r1_distill_1.5b_grpo.sh", 2, 8),
])
def test_paper_scripts_start_on_the_gpus_people_have(script, nodes, gpus):
    """The paper's 12 prompt groups per step on any GPU count: where they do not split evenly over the ranks the
    trainer fills each rank up with padding groups, and verl's own checks pass on the batch it dispatches."""
    from recipe.cwgrpo.batching import data_parallel_size, dispatched_prompts

    _, args = dry_run(script, NNODES=str(nodes), N_GPUS_PER_NODE=str(gpus))
    cfg, _ = compose_and_check("recipe.cwgrpo.main_cwgrpo", args)
    ranks = data_parallel_size(cfg)
    assert ranks == nodes * gpus and cfg.data.train_batch_size == 12
    assert dispatched_prompts(cfg) == ranks * -(-12 // ranks)  # the fewest padding groups that split evenly


def test_sequence_parallelism_divides_the_ranks_and_scales_the_token_budget():
    """SP=2 over 8 GPUs: 4 data-parallel ranks (3 groups each, no padding); the dynamic budget counts x SP."""
    from recipe.cwgrpo.batching import data_parallel_size, dispatched_prompts, sequence_parallel_size

    _, args = dry_run("r1_distill_1.5b_cwgrpo.sh", N_GPUS_PER_NODE="8", SP="2")
    cfg, (actor, _, _) = compose_and_check("recipe.cwgrpo.main_cwgrpo", args)
    assert (sequence_parallel_size(cfg), sequence_parallel_size(cfg, "ref"), data_parallel_size(cfg)) == (2, 2, 4)
    assert dispatched_prompts(cfg) == 12 and actor.fsdp_config.ulysses_sequence_parallel_size == 2
    _, args = dry_run("r1_distill_1.5b_cwgrpo.sh", SP="2", DYNAMIC_BSZ="1", MAX_TOKENS_PER_GPU="27648")
    compose_and_check("recipe.cwgrpo.main_cwgrpo", args)  # half a group per GPU x SP 2 holds a whole group
    _, args = dry_run("r1_distill_1.5b_cwgrpo.sh", DYNAMIC_BSZ="1", MAX_TOKENS_PER_GPU="27648")
    with pytest.raises(Exception, match="= 27648 x 1"):
        compose_and_check("recipe.cwgrpo.main_cwgrpo", args)


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
    ],
)
def test_a_misspelt_key_fails(script, typo):
    module, args = dry_run(script, typo)
    with pytest.raises(Exception, match=typo.lstrip("+").split("=")[0].rsplit(".", 1)[-1]):
        compose_and_check(module, args)


@pytest.mark.parametrize("preset, tokens", [("r1_distill_1.5b", 32768), ("qwen_math_7b", 4096)])
def test_evaluate_sh_runs_the_papers_protocol_into_a_log_named_by_its_settings(preset, tokens):
    from cwgrpo_verl.evaluate import parse_args

    module, args = dry_run("evaluate.sh", PRESET=preset, N_SAMPLES="8", STEP="100", EVAL_DIR="/evals", MODEL_PATH="m")
    assert module == "cwgrpo_verl.evaluate"
    parsed = parse_args(args)
    assert (parsed.max_new_tokens, parsed.temperature, parsed.top_p, parsed.samples, parsed.step) == (tokens, 0.6, 0.95, 8, 100)
    assert str(parsed.out) == f"/evals/step_100.t0.6-p0.95-n8-len{tokens}.jsonl" and str(parsed.data) == "/data"


def test_unknown_method_is_refused():
    proc = subprocess.run(["bash", str(EXAMPLES / "train.sh")], env={**os.environ, "DRY_RUN": "1", "METHOD": "ppo"},
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown method ppo: see recipe/cwgrpo/config/method/" in proc.stderr


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"evaluation data not found at {SHARED_DATA}")
def test_prepare_data_script_writes_every_parquet(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "DATA_DIR": str(tmp_path), "LOCAL_EVAL_DIR": str(SHARED_DATA),
           "OPEN_RS_SOURCE": str(REPO / "tests" / "fixtures" / "open_rs_sample.jsonl"), "DROP_CONTAMINATED": "1"}
    subprocess.run(["bash", str(EXAMPLES / "prepare_data.sh")], env=env, check=True, timeout=300, capture_output=True)
    names = {p.name for p in tmp_path.glob("*.parquet")}
    assert {"open_rs.parquet", "aime24.parquet", "math500.parquet", "amc23.parquet", "minerva.parquet",
            "olympiadbench.parquet"} <= names


def test_knobs_reach_the_config():
    """The plumbing a verl user reaches for, set from the environment as the README says."""
    env = dict(LOGGER="[console,file,wandb]", RESUME_MODE="resume_path", RESUME_FROM_PATH="/ckpt/global_step_50",
               MAX_CKPT_TO_KEEP="2", GPU_MEMORY_UTILIZATION="0.7", OFFLOAD="1", REF_OFFLOAD="1", DYNAMIC_BSZ="1",
               VAL_SAMPLES="8", STOP_AT_STEP="200")
    _, args = dry_run("r1_distill_1.5b_cwgrpo.sh", **env)
    cfg, (actor, rollout, _) = compose_and_check("recipe.cwgrpo.main_cwgrpo", args)
    assert list(cfg.trainer.logger) == ["console", "file", "wandb"]
    assert (cfg.trainer.resume_mode, cfg.trainer.resume_from_path, cfg.trainer.max_actor_ckpt_to_keep) == (
        "resume_path", "/ckpt/global_step_50", 2)
    assert rollout.gpu_memory_utilization == 0.7 and rollout.val_kwargs.n == 8
    assert actor.fsdp_config.param_offload and actor.fsdp_config.optimizer_offload
    assert cfg.actor_rollout_ref.ref.fsdp_config.param_offload
    assert actor.use_dynamic_bsz and actor.ppo_max_token_len_per_gpu == 12 * (512 + 4096)
    assert cfg.cwgrpo.stop_at_step == 200 and cfg.trainer.total_training_steps == 300


def test_dynamic_batch_sizes_are_refused_where_the_scope_cannot_use_them():
    _, args = dry_run("r1_distill_1.5b_cwgrpo.sh", DYNAMIC_BSZ="1", CW_SCOPE="micro_batch")
    with pytest.raises(Exception, match="cwgrpo.scope=micro_batch would take its statistics over whatever responses"):
        compose_and_check("recipe.cwgrpo.main_cwgrpo", args)
    _, args = dry_run("r1_distill_1.5b_grpo.sh", DYNAMIC_BSZ="1")  # no CW weights: nothing to refuse
    compose_and_check("recipe.cwgrpo.main_cwgrpo", args)


@pytest.fixture(scope="module")
def ray_head():
    with local_ray_head() as head:
        yield head


def submit(env, *args):
    return subprocess.run(["bash", str(EXAMPLES / "submit_ray_job.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=600, cwd=REPO)


@pytest.mark.slow
def test_a_job_carries_the_submitting_shells_settings(ray_head, tmp_path):
    """Variables and overrides set on the submitting side are in the config the job composes on the cluster."""
    _, env = ray_head
    data, ckpt = tmp_path / "shared" / "data", tmp_path / "shared" / "ckpt"
    env = {**env, "PYTHON": sys.executable, "PRINT_CONFIG": "1", "NNODES": "2", "N_GPUS_PER_NODE": "8",
           "DATA_DIR": str(data), "CHECKPOINT_DIR": str(ckpt), "LOGGER": "[console,file,wandb]", "STOP_AT_STEP": "100"}
    # an override with what a shell or Hydra could mangle on the way: quotes, a comma, a space, $, an interpolation
    job = submit(env, "qwen_math_7b_grpo.sh", "trainer.test_freq=25", "actor_rollout_ref.rollout.temperature=0.9",
                 "trainer.experiment_name='run 1, $HOME ${trainer.project_name}'")
    output = job.stdout + job.stderr
    assert job.returncode == 0 and "succeeded" in output, output[-4000:]
    for line in ("nnodes: 2", "n_gpus_per_node: 8", f"train_files: {data}/open_rs.parquet",
                 f"default_local_dir: {ckpt}", "test_freq: 25", "temperature: 0.9", "stop_at_step: 100",
                 "total_training_steps: 150", "loss_mode: vanilla", "- wandb", "experiment_name: run 1, $HOME cwgrpo",
                 f"- {data}/olympiadbench.parquet"):
        assert re.search(rf"^\s*{re.escape(line)}$", output, re.M), (line, output[-4000:])


def test_a_job_gets_the_named_environment_and_one_resolved_command(tmp_path):
    """What submit_ray_job.sh hands to `ray job submit` (a stand-in prints it): the runtime env with the variables
    FORWARD_ENV names (and not the others), and the training script's command with every value resolved here."""
    fake_ray = tmp_path / "ray"
    fake_ray.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    fake_ray.chmod(0o755)
    env = {**os.environ, "RAY": str(fake_ray), "PYTHON": sys.executable, "FORWARD_ENV": "CWGRPO_TEST_SECRET HF_HOME",
           "CWGRPO_TEST_SECRET": "s3cret", "CWGRPO_NOT_FORWARDED": "x", "DATA_DIR": "/shared/data", "NNODES": "3"}
    env.pop("HF_HOME", None)
    job = submit(env, "r1_distill_1.5b_grpo.sh", "trainer.test_freq=25")
    assert job.returncode == 0, job.stderr
    args = job.stdout.splitlines()
    runtime_env = json.loads(args[args.index("--runtime-env-json") + 1])
    assert runtime_env["env_vars"]["CWGRPO_TEST_SECRET"] == "s3cret"
    assert "CWGRPO_NOT_FORWARDED" not in runtime_env["env_vars"] and "HF_HOME" not in runtime_env["env_vars"]
    assert runtime_env["env_vars"]["VERL_USE_EXTERNAL_MODULES"] == "cwgrpo_verl.plugin"  # from runtime_env.yaml
    assert runtime_env["working_dir"] == str(REPO)
    assert runtime_env["env_vars"]["VERL_FILE_LOGGER_ROOT"] == str(REPO)  # the metrics log: not Ray's repo copy
    command = args[args.index("--") + 1:]
    assert command[:3] == ["python", "-m", "recipe.cwgrpo.main_cwgrpo"]
    assert {"trainer.nnodes=3", "data.train_files=/shared/data/open_rs.parquet", "trainer.test_freq=25",
            "method=grpo"} <= set(command)


@pytest.mark.slow
def test_a_node_that_cannot_see_the_data_fails_at_start_up_naming_the_path(ray_head, tmp_path):
    _, env = ray_head
    missing = tmp_path / "not-shared"
    env = {**env, "PYTHON": sys.executable, "DATA_DIR": str(missing), "CHECKPOINT_DIR": str(tmp_path / "ckpt"),
           "VERL_FILE_LOGGER_ROOT": str(tmp_path / "logs")}
    job = submit(env, "r1_distill_1.5b_cwgrpo.sh", "trainer.n_gpus_per_node=1")
    output = job.stdout + job.stderr
    assert job.returncode != 0, output[-3000:]
    assert re.search(rf"node [\d.]+: data.train_files={re.escape(str(missing))}/open_rs.parquet: no such file", output), \
        output[-4000:]
    # the output folders were checked (a file written there from the task runner's node), and nothing is left there
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "logs"]
    assert not list((tmp_path / "ckpt").iterdir()) and not list((tmp_path / "logs").iterdir())


@pytest.mark.parametrize("env_or_override, refused", [
    ({"DATA_DIR": "data"}, "data.train_files=data/open_rs.parquet"),
    ("data.val_files=[/shared/a.parquet,b.parquet]", "data.val_files=b.parquet"),
    ("+trainer.resume_from_path=ckpt/global_step_50", "trainer.resume_from_path=ckpt/global_step_50"),
    ({"MODEL_PATH": "examples"}, "actor_rollout_ref.model.path=examples"),  # a local folder, given relative
])
def test_relative_paths_are_refused_before_submitting(env_or_override, refused):
    env = {**os.environ, "RAY": "/bin/false", "DATA_DIR": "/shared/data"}
    overrides = []
    if isinstance(env_or_override, dict):
        env.update(env_or_override)
    else:
        overrides.append(env_or_override)
    job = submit(env, "r1_distill_1.5b_cwgrpo.sh", *overrides)
    assert job.returncode == 2 and f"{refused} is not an absolute path" in job.stderr, job.stderr


def test_hub_model_names_and_absolute_paths_are_submitted(tmp_path):
    fake_ray = tmp_path / "ray"
    fake_ray.write_text("#!/usr/bin/env bash\nexit 0\n")
    fake_ray.chmod(0o755)
    env = {**os.environ, "RAY": str(fake_ray), "PYTHON": sys.executable, "DATA_DIR": "/shared/data",
           "MODEL_PATH": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"}
    job = submit(env, "r1_distill_1.5b_cwgrpo.sh", "trainer.resume_from_path=null")
    assert job.returncode == 0, job.stderr


def test_the_main_ppo_script_runs_the_readmes_flags():
    """tests/test_trainer_e2e.py runs this script through verl's trainer: it must carry the README's flags."""
    from test_config_on_cpu import readme_main_ppo_flags

    _, args = dry_run("main_ppo_cwgrpo.sh")
    missing = [flag for flag in readme_main_ppo_flags() if flag not in args]
    assert not missing, missing
