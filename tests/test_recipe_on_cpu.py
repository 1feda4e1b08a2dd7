"""The recipe: its config composes to the authors' settings and passes the driver checks; what cannot work fails
before Ray starts, naming the key. (The recipe's run through verl's real trainer: tests/test_trainer_e2e.py.)"""

import os

import pytest
from helpers import REPO, worker_configs

RECIPE_CONFIG = REPO / "recipe" / "cwgrpo" / "config"


def compose_recipe(overrides=()):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(RECIPE_CONFIG), version_base=None):
        return compose("cwgrpo_trainer", overrides=list(overrides))


def test_paper_settings_compose_and_pass_the_driver_checks():
    from recipe.cwgrpo.main_cwgrpo import prepare

    cfg = prepare(compose_recipe())
    actor, rollout, algorithm = worker_configs(cfg)
    pl = actor.policy_loss
    assert (pl.loss_mode, cfg.cwgrpo.scope, pl.cw_logp_center, pl.cw_normalizer, pl.cw_detach_weights) == (
        "cw_grpo", "group", "sequence", "padded", False)
    assert (cfg.data.train_batch_size, rollout.n, rollout.temperature) == (12, 12, 0.7)
    assert (actor.optim.lr, actor.optim.min_lr_ratio, actor.optim.lr_warmup_steps_ratio) == (1e-6, 0.1, 0.1)
    assert actor.optim.lr_scheduler_type == "cosine" and actor.loss_agg_mode == "seq-mean-token-mean"
    assert (actor.use_kl_loss, actor.kl_loss_coef, actor.kl_loss_type) == (True, 0.04, "k3")
    assert (cfg.data.max_prompt_length, cfg.data.max_response_length, rollout.max_model_len) == (512, 4096, 4096)
    assert (cfg.trainer.total_training_steps, cfg.trainer.save_freq, cfg.trainer.test_freq) == (300, 50, 50)
    assert cfg.data.seed == 2025 and actor.optim.weight_decay == 0.0
    assert cfg.cwgrpo.logprob_temperature == 1.0 and cfg.cwgrpo.stop_at_step is None
    assert cfg.cwgrpo.token_log_every == 10 and cfg.cwgrpo.token_log_top_k == 20
    assert algorithm.adv_estimator == "cw_grpo" and algorithm.cw_adv_epsilon == 1e-4
    assert cfg.reward.custom_reward_function.path == "pkg://cwgrpo_verl.reward"
    assert cfg.trainer.v1.trainer_mode == "cwgrpo"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["actor_rollout_ref.actor.policy_loss.loss_mode=cw_grop"], "loss_mode='cw_grop' is not a registered policy loss"),
        (["algorithm.adv_estimator=cw_grop"], "adv_estimator='cw_grop' is not registered"),
        (["trainer.v1.trainer_mode=sync"], r"trainer.v1.trainer_mode=sync: the recipe's options \(cwgrpo.\*"),
        (["trainer.use_v1=false"], "trainer.use_v1=false runs verl's legacy trainer"),
        (["actor_rollout_ref.actor.strategy=megatron"], "actor_rollout_ref.actor.strategy=megatron: the recipe runs verl's FSDP engine"),
        (["model_engine=megatron"], "model_engine=megatron: the recipe runs verl's FSDP engine"),
        (["actor_rollout_ref.rollout.logprobs_mode=processed_logprobs", "algorithm.rollout_correction.bypass_mode=true"],
         r"logprobs_mode=processed_logprobs gives rollout log-probs at temperature 0.7.*actor's are at temperature 1.0"
         r".*algorithm.rollout_correction.bypass_mode=True would put both into one importance ratio"),
        (["actor_rollout_ref.rollout.logprobs_mode=raw_logprobs", "cwgrpo.logprob_temperature=null",
          "algorithm.rollout_correction.rollout_is=token"], "algorithm.rollout_correction.rollout_is=token would put"),
        (["cwgrpo.scope=groups"], r"cwgrpo.scope must be one of \['group', 'micro_batch', 'batch'\]"),
        (["+actor_rollout_ref.actor.policy_loss.cw_scope=group"], "cw_scope"),  # the loss has no scope option
        (["algorithm.cw_adv_epsilon=-0.1"], "algorithm.cw_adv_epsilon"),
        (["algorithm.cw_adv_epsilon=0"], "divides 0 by 0"),
        (["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8"],
         "ppo_micro_batch_size_per_gpu=8 must be a multiple of actor_rollout_ref.rollout.n=12"),
        (["actor_rollout_ref.actor.shuffle=true"], "set actor_rollout_ref.actor.shuffle=false"),
        (["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
          "actor_rollout_ref.ref.log_prob_use_dynamic_bsz=true", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384"],
         "its budget is actor_rollout_ref.actor.ppo_max_token_len_per_gpu x the sequence-parallel size = 16384 x 1"),
        (["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
          "actor_rollout_ref.ref.log_prob_use_dynamic_bsz=true", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=20000",
          "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=2"], "= 20000 x 2"),
        (["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
          "actor_rollout_ref.ref.log_prob_use_dynamic_bsz=true", "cwgrpo.scope=micro_batch"],
         "cwgrpo.scope=micro_batch would take its statistics over whatever responses fit together"),
        (["cwgrpo.scope=batch"], "Set actor_rollout_ref.actor.policy_loss.cw_detach_weights=true"),
        (["cwgrpo.stop_at_step=301"], r"cwgrpo.stop_at_step=301 is after the end of the schedule \(trainer.total_training_steps=300\)"),
        (["cwgrpo.stop_at_step=0"], "cwgrpo.stop_at_step must be null or a whole number >= 1"),
        (["cwgrpo.token_log_every=-1"], r"cwgrpo.token_log_every must be a whole number >= 0 \(0: off\)"),
        (["cwgrpo.token_log_top_k=0"], r"cwgrpo.token_log_top_k must be a whole number in \[1, 256\]"),
        (["cwgrpo.token_log_top_k=1000"], r"cwgrpo.token_log_top_k must be a whole number in \[1, 256\]"),
        (["cwgrpo.logprob_temperature=0"], "cwgrpo.logprob_temperature must be null or a finite number > 0"),
        (["+cwgrpo.stop_at=100"], r"unknown key\(s\) cwgrpo.stop_at"),
    ],
)
def test_incoherent_options_fail_before_ray_starts(overrides, message):
    import ray

    from recipe.cwgrpo.main_cwgrpo import prepare

    with pytest.raises(Exception, match=message):
        prepare(compose_recipe(overrides))
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    "overrides",
    [
        ["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=24"],  # two whole groups per micro-batch
        ["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
         "actor_rollout_ref.ref.log_prob_use_dynamic_bsz=true"],  # the recipe's budget: one whole group per GPU
        ["cwgrpo.scope=batch", "actor_rollout_ref.actor.policy_loss.cw_detach_weights=true"],
        ["actor_rollout_ref.actor.policy_loss.loss_mode=vanilla", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8"],
        ["cwgrpo.stop_at_step=100", "cwgrpo.logprob_temperature=null"],
        ["actor_rollout_ref.actor.ppo_mini_batch_size=6"],  # two mini-batches per step, each padded to 8 groups
        # a budget of half a group per GPU holds a whole group with sequence parallelism over 2 GPUs
        ["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
         "actor_rollout_ref.ref.log_prob_use_dynamic_bsz=true", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=27648",
         "actor_rollout_ref.actor.ulysses_sequence_parallel_size=2"],
    ],
)
def test_coherent_variants_pass(overrides):
    from recipe.cwgrpo.main_cwgrpo import prepare

    worker_configs(prepare(compose_recipe(overrides)))


def test_a_resumed_run_logs_to_a_new_file_instead_of_truncating_the_earlier_one(tmp_path, monkeypatch):
    from recipe.cwgrpo.preflight import keep_earlier_file_log, token_log_path

    cfg = compose_recipe(["trainer.project_name=p", "trainer.experiment_name=e"])
    # the function sets os.environ for verl's logger: give it a copy, so nothing leaks into later tests
    environ = {k: v for k, v in os.environ.items() if k != "VERL_FILE_LOGGER_PATH"}
    monkeypatch.setattr(os, "environ", {**environ, "VERL_FILE_LOGGER_ROOT": str(tmp_path)})
    assert keep_earlier_file_log(cfg) is None  # first attempt: verl's own default file
    assert token_log_path(cfg) == tmp_path / "p" / "e.tokens.jsonl"
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "e.jsonl").write_text('{"step": 1, "data": {}}\n')
    assert keep_earlier_file_log(cfg) == tmp_path / "p" / "e.2.jsonl"
    assert os.environ["VERL_FILE_LOGGER_PATH"] == str(tmp_path / "p" / "e.2.jsonl")
    assert token_log_path(cfg) == tmp_path / "p" / "e.tokens.jsonl"  # the resumed attempt appends to the first's
    (tmp_path / "p" / "e.2.jsonl").write_text("")
    del os.environ["VERL_FILE_LOGGER_PATH"]
    assert keep_earlier_file_log(cfg) == tmp_path / "p" / "e.3.jsonl"
    os.environ["VERL_FILE_LOGGER_PATH"] = "/chosen/by/the/user.jsonl"
    assert keep_earlier_file_log(cfg) is None


def test_start_up_names_each_path_a_node_cannot_see_or_that_is_not_shared(tmp_path, monkeypatch):
    """What each node's probe reports (tests/test_examples_on_cpu.py runs it on a real Ray node)."""
    from recipe.cwgrpo.preflight import path_problems, run_paths

    data, ckpt, logs = tmp_path / "data", tmp_path / "ckpt", tmp_path / "logs"
    data.mkdir()
    (data / "open_rs.parquet").touch()
    monkeypatch.setenv("VERL_FILE_LOGGER_ROOT", str(logs))
    monkeypatch.delenv("VERL_FILE_LOGGER_PATH", raising=False)
    cfg = compose_recipe([f"data.train_files={data}/open_rs.parquet", f"data.val_files=[{data}/missing.parquet]",
                          f"trainer.default_local_dir={ckpt}", "actor_rollout_ref.model.path=org/hub-name"])
    paths = run_paths(cfg)
    assert paths == {"data.train_files": (f"{data}/open_rs.parquet", "file"),
                     "data.val_files": (f"{data}/missing.parquet", "file"),
                     "trainer.default_local_dir": (str(ckpt), "writable"),
                     "VERL_FILE_LOGGER_ROOT": (str(logs), "writable")}  # the hub name is not a path
    assert path_problems(paths) == [f"data.val_files={data}/missing.parquet: no such file"]
    (ckpt / ".marker").touch()  # written by the task runner's node; the logs folder "is another disk"
    problems = path_problems(paths, marker=".marker", wait_s=0)
    assert problems[1:] == [f"VERL_FILE_LOGGER_ROOT={logs}: not the storage the task runner's node sees (a file "
                            "written there from that node is absent here): use a folder on a shared file system"]


def test_a_marker_that_shows_late_on_a_network_file_system_still_counts(tmp_path):
    import threading

    from recipe.cwgrpo.preflight import path_problems

    late = threading.Timer(1.5, (tmp_path / ".marker").touch)  # as an NFS client may show a new file late
    late.start()
    try:
        assert path_problems({"trainer.default_local_dir": (str(tmp_path), "writable")}, marker=".marker",
                             wait_s=20) == []
    finally:
        late.join()


def test_the_trainer_weighs_with_the_losss_options():
    """The trainer's own weights (cwgrpo.scope=batch, the token log's w) take the loss's options, not defaults."""
    from recipe.cwgrpo.trainer import CWGRPOTrainer

    trainer = CWGRPOTrainer.__new__(CWGRPOTrainer)  # only the config: the stages are run by test_trainer_e2e
    loss = "actor_rollout_ref.actor.policy_loss"
    trainer.config = compose_recipe([f"{loss}.cw_logp_center=batch", f"{loss}.cw_normalizer=valid_tokens",
                                     f"{loss}.cw_bandwidth_scale=0.5", "cwgrpo.token_log_top_k=7"])
    assert trainer._cw_kwargs == {"logp_center": "batch", "normalizer": "valid_tokens", "bandwidth_scale": 0.5}
    assert trainer._options.token_log_top_k == 7
