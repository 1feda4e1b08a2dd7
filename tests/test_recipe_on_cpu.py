"""The recipe: its config composes and passes the driver checks; its task runner starts in a real local Ray."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from cwgrpo_verl.config import RECIPE_ENV

from helpers import REPO, validate

RECIPE_CONFIG = REPO / "recipe" / "cwgrpo" / "config"


def compose_recipe(overrides=()):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(RECIPE_CONFIG), version_base=None):
        return compose("cwgrpo_trainer", overrides=list(overrides))


@pytest.fixture
def recipe_env(monkeypatch):
    monkeypatch.delenv(RECIPE_ENV, raising=False)
    yield
    os.environ.pop(RECIPE_ENV, None)


def test_paper_settings_compose_and_pass_the_driver_checks(recipe_env):
    from recipe.cwgrpo.main_cwgrpo import prepare

    cfg = prepare(compose_recipe())
    actor, rollout, algorithm = validate(cfg)
    pl = actor.policy_loss
    assert (pl.loss_mode, pl.cw_scope, pl.cw_logp_center, pl.cw_normalizer, pl.cw_detach_weights) == (
        "cw_grpo", "group", "sequence", "padded", False)
    assert (cfg.data.train_batch_size, rollout.n, rollout.temperature) == (12, 12, 0.7)
    assert (actor.optim.lr, actor.optim.min_lr_ratio, actor.optim.lr_warmup_steps_ratio) == (1e-6, 0.1, 0.1)
    assert actor.optim.lr_scheduler_type == "cosine" and actor.loss_agg_mode == "seq-mean-token-mean"
    assert (actor.use_kl_loss, actor.kl_loss_coef, actor.kl_loss_type) == (True, 0.04, "k3")
    assert (cfg.data.max_prompt_length, cfg.data.max_response_length) == (512, 4096)
    assert (cfg.trainer.total_training_steps, cfg.trainer.save_freq, cfg.data.seed) == (100, 50, 2025)
    assert algorithm.adv_estimator == "cw_grpo" and algorithm.cw_adv_epsilon == 1e-4
    assert cfg.reward.custom_reward_function.path == "pkg://cwgrpo_verl.reward"
    assert cfg.trainer.v1.trainer_mode == "cwgrpo"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["actor_rollout_ref.actor.policy_loss.loss_mode=cw_grop"], "loss_mode='cw_grop' is not a registered policy loss"),
        (["algorithm.adv_estimator=cw_grop"], "adv_estimator='cw_grop' is not registered"),
        (["trainer.v1.trainer_mode=sync"], "cw_scope=group needs trainer.use_v1=true and trainer.v1.trainer_mode=cwgrpo"),
        (["actor_rollout_ref.actor.policy_loss.cw_scope=groups"], "cw_scope must be one of"),
        (["algorithm.cw_adv_epsilon=-0.1"], "algorithm.cw_adv_epsilon"),
    ],
)
def test_incoherent_options_fail_before_ray_starts(recipe_env, overrides, message):
    import ray

    from recipe.cwgrpo.main_cwgrpo import prepare

    with pytest.raises(Exception, match=message):
        prepare(compose_recipe(overrides))
    assert not ray.is_initialized()


def _tiny_model_and_data(root):
    """A two-layer Qwen2 and a word-level tokenizer saved offline, and a four-row verl parquet."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    words = ["<pad>", "<eos>", "<unk>", "user", "assistant", ":", "1", "2", "+", "=", "?", "what", "is"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant : {% endif %}"
    )
    fast.save_pretrained(root / "model")
    config = Qwen2Config(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128)
    Qwen2ForCausalLM(config).save_pretrained(root / "model")
    rows = [
        {"data_source": "cwgrpo/open_rs", "prompt": [{"role": "user", "content": "what is 1 + 1 ?"}], "ability": "math",
         "reward_model": {"style": "rule", "ground_truth": "2"}, "extra_info": {"split": "train", "index": i}}
        for i in range(4)
    ]
    pd.DataFrame(rows).to_parquet(root / "train.parquet")


@pytest.mark.slow
def test_task_runner_starts_in_local_ray_with_the_cwgrpo_trainer(tmp_path):
    """Driver checks, Ray start, the recipe's TaskRunner actor: it reports the plugin and trainer in its process.

    Without a GPU, verl then waits for resources forever; the test stops the run once the runner has reported.
    """
    _tiny_model_and_data(tmp_path)
    args = [
        f"actor_rollout_ref.model.path={tmp_path / 'model'}",
        f"data.train_files={tmp_path / 'train.parquet'}",
        f"data.val_files={tmp_path / 'train.parquet'}",
        "data.train_batch_size=2", "actor_rollout_ref.rollout.n=2", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2", "trainer.n_gpus_per_node=1",
        "data.max_prompt_length=32", "data.max_response_length=16", "data.dataloader_num_workers=0",
        "ray_kwargs.ray_init.num_cpus=4", "+ray_kwargs.ray_init.include_dashboard=false",
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    env.pop(RECIPE_ENV, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "recipe.cwgrpo.main_cwgrpo", *args], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    lines, deadline, report = [], time.time() + 240, None
    try:
        for line in proc.stdout:
            lines.append(line)
            if "[cwgrpo] task runner" in line:
                report = line
                break
            if time.time() > deadline:
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    log = "".join(lines)
    assert "[validate_config] All configuration checks passed successfully!" in log
    assert report is not None, log[-3000:]
    assert "_CWGRPOTaskRunner pid=" in report  # printed inside the Ray actor, not the driver
    assert "cw_grpo registered, trainer CWGRPOTrainer, loss_mode=cw_grpo, cw_scope=group" in report
