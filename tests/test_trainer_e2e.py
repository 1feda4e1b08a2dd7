"""verl 0.9.1's real trainer loop on the CPU backend (tools.cpu), through the example scripts users run.

Each scenario is a smoke run (tools.smoke): the paper's script with the tiny model, overriding only platform,
model, data and sizes, for a few steps. The runs start as soon as pytest has collected this module's tests
(tests/conftest.py), two at a time in background threads, so they run while the other tests leave a core idle;
each run has its own local Ray on 127.0.0.1 in its own temp dir and leaves nothing behind. Each test waits for the
run it checks.
"""

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from reference import reference_covariances, reference_loss

from tools import smoke

PROBE = Path(__file__).resolve().parent / "e2e"
pytestmark = pytest.mark.slow
SHARED: dict = {}  # fixed by start() before any run begins: one tiny model, the environment the runs start from


def run(method: str, **kwargs) -> smoke.Run:
    """smoke.run with the shared tiny model, from the environment as it was when the runs started (other tests
    change os.environ meanwhile)."""
    return smoke.run(method, model=SHARED.get("model"), environ=SHARED.get("environ"), **kwargs)


def probed(work: Path) -> dict:
    """Record the cw_grpo loss's real micro-batches (tests/e2e/cw_probe.py) into work/probe."""
    (work / "probe").mkdir(parents=True, exist_ok=True)
    return {"VERL_USE_EXTERNAL_MODULES": "cw_probe", "CWGRPO_PROBE_DIR": str(work / "probe"),
            "PYTHONPATH": str(PROBE)}


SCHEDULE = 4  # trainer.total_training_steps of both runs: the learning-rate schedule's horizon
ANSWERED = "math500"  # its validation row gets a right answer from the rollout (tools.cpu.rollout: CWGRPO_CPU_ANSWERS)


def answered_validation(work: Path) -> dict:
    """The smoke data, written ahead, with the rollout scripted to answer the ANSWERED set's validation problem
    correctly (boxed gold): validation must then score it 1 and the others (the tiny model's guesses) 0."""
    import pandas as pd

    from tools.cpu import tiny

    data = tiny.write_data(work / "data")
    rows = pd.read_parquet(data / f"{ANSWERED}.parquet")
    answers = {row.prompt[0]["content"]: f"$\\boxed{{{row.reward_model['ground_truth']}}}$" for row in rows.itertuples()}
    (work / "answers.json").write_text(json.dumps(answers))
    return {"CWGRPO_CPU_ANSWERS": str(work / "answers.json")}


def group_scope_then_resume(work: Path):
    """Validation before training with the project's reward (one set answered right by the rollout), the token log
    at every step, and checkpoints at steps 1 and 2 of a 4-step schedule (stopped at 2 by cwgrpo.stop_at_step);
    then a second run that resumes from step 1 into its own checkpoint folder and stops after step 3: its step 2
    must be the first run's step 2."""
    env = {**probed(work), **answered_validation(work)}
    first = run("cwgrpo", scope="group", steps=SCHEDULE, work=work, extra_env=env, overrides=(
        "cwgrpo.stop_at_step=2", "trainer.save_freq=1", "trainer.test_freq=-1", "cwgrpo.token_log_every=1"))
    resumed = run("cwgrpo", scope="group", steps=SCHEDULE, work=work, overrides=(
        "cwgrpo.stop_at_step=3", "trainer.resume_mode=resume_path",
        f"trainer.resume_from_path={work / 'checkpoints' / 'global_step_1'}",
        f"trainer.default_local_dir={work / 'resumed'}",
        "trainer.save_freq=1", "trainer.test_freq=-1", "trainer.val_before_train=false"))
    return first, resumed


def cosine_lr(step: int, peak: float = 1e-6, floor: float = 0.1) -> float:
    """The rate verl logs at a step (after its scheduler step): cosine to 0.1x at progress step / schedule
    (no warmup at this length)."""
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / SCHEDULE)))


FAILED_SESSION = (1, 1)  # (step, request): the second rollout request of step 1 fails, so its group misses a response


def two_ranks_padding_and_a_failed_session(work: Path):
    """3 prompt groups over 2 data-parallel ranks (each rank needs 2 whole groups: one padding group per step), and a
    rollout session that fails at step 1 (its group is dropped: two padding groups that step)."""
    return run("cwgrpo", scope="group", steps=2, ranks=2, prompts=3, fail_session=FAILED_SESSION, work=work,
                     extra_env=probed(work), overrides=("trainer.val_before_train=false", "trainer.test_freq=-1"))


NO_VALIDATION = ("trainer.val_before_train=false", "trainer.test_freq=-1")
SCENARIOS = {
    "group_then_resume": group_scope_then_resume,
    "two_ranks": two_ranks_padding_and_a_failed_session,
    "main_ppo": lambda work: run("cwgrpo", scope="micro_batch", script="main_ppo_cwgrpo.sh", work=work,
                                 overrides=NO_VALIDATION),
    "grpo_script": lambda work: run("grpo", script="r1_distill_1.5b_grpo.sh", work=work,
                                          overrides=NO_VALIDATION),
    "batch": lambda work: run("cwgrpo", scope="batch", work=work, overrides=NO_VALIDATION),
}


_futures: dict = {}


def start(tmp_path_factory) -> dict:
    """Start every scenario once, CWGRPO_E2E_PARALLEL (default 2) at a time; returns name -> future."""
    if not _futures:
        from tools.cpu import tiny

        SHARED.update(model=tiny.build_model(tmp_path_factory.mktemp("tiny") / "model"), environ=dict(os.environ))
        pool = ThreadPoolExecutor(max_workers=int(os.environ.get("CWGRPO_E2E_PARALLEL", "2")), thread_name_prefix="e2e")
        _futures.update({name: pool.submit(begin, tmp_path_factory.mktemp(name)) for name, begin in SCENARIOS.items()})
        pool.shutdown(wait=False)
    return _futures


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    futures = start(tmp_path_factory)
    return lambda name: futures[name].result(timeout=1800)


def assert_checks(run, steps):
    failed = [f"{c.name}: {c.detail}" for c in smoke.checks(run, expected_steps=steps) if not c.ok]
    assert not failed, "\n".join(failed) + "\n" + run.log[-5000:]


def test_recipe_group_scope_trains_on_per_group_weights(runs):
    first, _ = runs("group_then_resume")
    assert_checks(first, [1, 2])
    assert "cw_grpo registered, trainer CWGRPOTrainer, loss_mode=cw_grpo, cwgrpo.scope=group" in first.log
    step = first.metrics[1]
    # every micro-batch held whole groups (the loss refuses anything else) and took its statistics per group
    assert step["actor/cw/groups_per_micro_batch"] == smoke.MICRO_BATCH // smoke.GROUP_SIZE
    assert step["actor/cw/weight_min"] < 1.0 < step["actor/cw/weight_max"]
    # each statistic once: the trainer logs Table 1's tails (cov/*), the loss does not sort for them again
    assert "cov/pos_top_1pct" in step and not any(k.startswith("actor/cw/cov_pos_top") for k in step)
    # one on-policy update per batch: the PPO ratio is 1 and never clipped, as in the authors' unclipped loss
    assert all(first.metrics[s]["actor/pg_clipfrac"] == 0.0 for s in first.steps)


def assert_equals_the_float64_reference(record, global_rows):
    """A micro-batch recorded inside verl's trainer: its loss and gradient equal the loop reference of the authors'
    formula on its real rows, normalised by the real rows of the whole mini-batch (``global_rows``); padding rows
    (no valid token) get no gradient. Returns the real groups it held."""
    opts, mask = record["options"], record["response_mask"].bool()
    assert record["groups"] is not None and not opts["cw_detach_weights"]  # cwgrpo.scope=group: the groups handed over
    real = mask.any(-1)
    # the groups the loss used are the rows' uids (recomputed here), not just groups of the right size
    uids = [u for u, r in zip(record["uids"], real.tolist()) if r]
    groups = [g for g, r in zip(record["groups"], real.tolist()) if r]
    assert {(g, u) for g, u in zip(groups, uids)} == {(groups[uids.index(u)], u) for u in uids}
    assert len(set(groups)) == len(set(uids)) and all(uids.count(u) == smoke.GROUP_SIZE for u in set(uids))
    # a step with signal: some advantages are not 0 (with all zero, loss and reference would both be 0)
    assert record["advantages"][real].abs().sum() > 0
    lp = record["log_prob"][real].double().requires_grad_(True)
    low, high, dual = record["clip"]
    value = reference_loss(record["old_log_prob"][real].double().tolist(), lp,
                           record["advantages"][real].double().tolist(), mask[real].tolist(),
                           center=opts["cw_logp_center"], normalizer=opts["cw_normalizer"],
                           scale=opts["cw_bandwidth_scale"], detach=opts["cw_detach_weights"], groups=groups,
                           agg=record["loss_agg_mode"], clip_low=low, clip_high=high, clip_c=dual)
    assert record["loss_agg_mode"] == "seq-mean-token-mean"
    info = record["global_batch_info"]  # verl normalises by the global mini-batch: sum of row means / size x dp
    assert info["global_batch_size"] == global_rows, info
    scale = int(real.sum()) / info["global_batch_size"] * info["dp_size"]
    (value * scale).backward()
    torch.testing.assert_close(record["loss"].double(), (value * scale).detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(record["grad"][real].double(), lp.grad, rtol=1e-5, atol=1e-5)
    assert not record["grad"][~real].any()
    return len(set(groups))


def recorded(run):
    dumps = sorted((run.work / "probe").glob("micro_batch_*.pt"))
    assert dumps, "the probe recorded no micro-batch"
    return [torch.load(path) for path in dumps]


def test_a_real_micro_batch_equals_the_float64_reference(runs):
    """The loss value and gradient on micro-batches of a real step equal the loop reference of the authors' formula."""
    first, _ = runs("group_then_resume")
    for record in recorded(first):
        groups = assert_equals_the_float64_reference(record, smoke.PROMPTS * smoke.GROUP_SIZE)
        assert groups == smoke.MICRO_BATCH // smoke.GROUP_SIZE


def test_an_odd_number_of_groups_over_two_ranks_equals_the_unpadded_update(runs):
    """3 groups over 2 ranks: every rank gets 2 whole groups, one of them padding; the micro-batches recorded on both
    ranks equal the reference on their real groups, normalised by the real rows (not the padded mini-batch)."""
    run = runs("two_ranks")
    assert_checks(run, [1, 2])
    records = recorded(run)
    assert {r["global_batch_info"]["dp_size"] for r in records} == {2}
    real_rows = {1: 2 * smoke.GROUP_SIZE, 2: 3 * smoke.GROUP_SIZE}  # step 1: one group dropped
    by_rows = {}
    for record in records:
        rows = record["global_batch_info"]["global_batch_size"]
        by_rows.setdefault(rows, []).append(assert_equals_the_float64_reference(record, rows))
    assert set(by_rows) == set(real_rows.values())  # both steps were recorded
    assert sorted(by_rows[real_rows[2]]) == [1, 2]  # step 2: one rank holds 2 real groups, the other 1 and padding


def test_a_failed_rollout_session_drops_its_group_and_the_run_goes_on(runs):
    run = runs("two_ranks")
    step, _ = FAILED_SESSION
    assert "injected failure of training request 1 at step 1" in run.log
    assert [run.metrics[s]["groups/dropped_incomplete"] for s in run.steps] == [1.0, 0.0]
    assert [run.metrics[s]["groups/padding"] for s in run.steps] == [2.0, 1.0]
    assert f"step {step}: dropped 1 prompt group(s) missing responses" in run.log


@pytest.mark.parametrize("scenario", ["group_then_resume", "grpo_script"])
def test_rollout_log_probs_equal_the_actors_on_policy(runs, scenario):
    """The paper's scripts take log-probs from the raw logits (cwgrpo.logprob_temperature=1.0) while sampling at 0.7:
    the rollout returns raw_logprobs to match (rollout.logprobs_mode=auto), so at step 1, before any update, the
    rollout's and the actor's probabilities agree and the policy is the reference."""
    run = runs(scenario)
    run = run[0] if isinstance(run, tuple) else run
    step = run.metrics[1]
    assert step["training/rollout_probs_diff_mean"] < 1e-6 and step["training/rollout_probs_diff_max"] < 1e-4
    assert abs(step["actor/kl_loss"]) < 1e-6
    assert "logprobs_mode': 'raw_logprobs'" in run.log or "logprobs_mode: raw_logprobs" in run.log


def test_validation_before_training_scores_with_the_project_reward(runs):
    """The answered set's validation row scores 1, the tiny model's guesses 0: a reward that returns a constant, or
    routes a data source to the wrong mode, fails here (mutation tried: compute_score returning 0.0 for every
    sample -> math500 0.0)."""
    first, _ = runs("group_then_resume")
    validation = {k: v for k, v in first.metrics.get(0, {}).items() if k.startswith("val-core/")}
    scores = {source: validation[f"val-core/cwgrpo/{source}/acc/mean@1"]
              for source in ("aime24", "math500", "amc23", "minerva", "olympiadbench")}
    assert scores == {**{source: 0.0 for source in scores}, ANSWERED: 1.0}, validation


def _actor_weights(checkpoint: Path) -> dict:
    state = torch.load(checkpoint / "actor" / "model_world_size_1_rank_0.pt", weights_only=False)
    return {k: (v.to_local() if hasattr(v, "to_local") else v) for k, v in state.items()}


def test_a_run_resumed_at_step_1_repeats_the_uninterrupted_step_2(runs):
    """Resumed from the step-1 checkpoint, step 2 is the uninterrupted run's step 2: the same loss, gradient norm
    and covariance, and the same weights after it; then it goes on to step 3. Mutation tried: removing the
    checkpoint's data.pt (verl then restarts the data loader) -> other prompts at step 2, the losses differ."""
    first, resumed = runs("group_then_resume")
    assert (first.work / "checkpoints" / "global_step_1").is_dir() and first.steps == [1, 2]
    assert_checks(resumed, [2, 3])
    assert [resumed.metrics[s]["training/global_step"] for s in resumed.steps] == [2, 3]
    # what does not depend on which groups share a micro-batch: the rollout's requests for one prompt arrive in an
    # order that follows the machine's load, so the same responses may sit in other rows (per-micro-batch metrics
    # such as actor/cw/weight_std then move; the loss, the gradient and the weights do not, up to float32 sums taken
    # in another order: 1.5e-6 relative seen on actor/pg_loss; other prompts at step 2 differ by far more)
    for key in ("actor/pg_loss", "actor/grad_norm", "cov/std", "critic/score/mean"):
        assert resumed.metrics[2][key] == pytest.approx(first.metrics[2][key], rel=1e-5, abs=1e-9), key
    before, after = _actor_weights(first.work / "checkpoints" / "global_step_2"), _actor_weights(
        first.work / "resumed" / "global_step_2")
    assert before.keys() == after.keys()
    for name in before:
        torch.testing.assert_close(after[name], before[name], rtol=1e-6, atol=1e-9, msg=name)


def test_stopping_early_keeps_the_learning_rate_schedule(runs):
    """stop_at_step ends the run, not the schedule: the rates are those of a 4-step cosine (a 2-step one would
    reach its floor, 1e-7, at step 2), before and after resuming."""
    first, resumed = runs("group_then_resume")
    logged = [first.metrics[1]["actor/lr"], first.metrics[2]["actor/lr"], resumed.metrics[3]["actor/lr"]]
    assert logged == pytest.approx([cosine_lr(1), cosine_lr(2), cosine_lr(3)], rel=1e-6), logged


def test_recipe_batch_scope_weights_the_advantages_before_the_update(runs):
    """cwgrpo.scope=batch in the real loop: one statistic over the step's batch, detached, in the trainer (cw/*);
    the actor then runs PPO clip on the weighted advantages and logs no weights of its own."""
    run = runs("batch")
    assert_checks(run, [1, 2])
    assert "cwgrpo.scope=batch" in run.log
    for step in run.steps:
        metrics = run.metrics[step]
        assert metrics["cw/weight_min"] < 1.0 < metrics["cw/weight_max"], metrics
        assert metrics["cw/num_responses"] == smoke.PROMPTS * smoke.GROUP_SIZE
        assert not any(k.startswith("actor/cw/") for k in metrics)


def test_plain_main_ppo_with_the_readme_flags(runs):
    """verl's own trainer with the loss in cwgrpo.scope=micro_batch (the recipe's trainer in that scope only calls
    the same loss without groups: tests/test_groups.py)."""
    run = runs("main_ppo")
    assert run.module == "verl.trainer.main_ppo"
    assert_checks(run, [1, 2])
    # statistics over each micro-batch (no groups handed over), the covariance tails from the loss, its only source
    assert all("actor/cw/groups_per_micro_batch" not in run.metrics[s] for s in run.steps)
    assert all(run.metrics[s]["actor/cw/cov_pos_top_1pct"] > run.metrics[s]["actor/cw/cov_pos_top_20pct"] for s in run.steps)


def test_grpo_baseline_script_logs_the_covariance_it_does_not_reweight(runs):
    run = runs("grpo_script")
    assert_checks(run, [1, 2])
    assert "loss_mode=vanilla" in run.log
    assert not any(k.startswith("actor/cw/") for s in run.steps for k in run.metrics[s])
    assert all(run.metrics[s]["cov/pos_top_1pct"] > run.metrics[s]["cov/pos_top_20pct"] > 0 for s in run.steps)


def test_the_token_log_holds_the_steps_largest_covariances(runs):
    """The recipe's token log at step 1 holds the tokens with the largest |covariance| of the step, recomputed by
    the float64 loop from the micro-batches the loss received (tests/e2e/cw_probe.py), with their text; CW-GRPO also
    logs its most down-weighted tokens, each with a weight below the mean."""
    first, _ = runs("group_then_resume")
    step1 = recorded(first)[: smoke.PROMPTS * smoke.GROUP_SIZE // smoke.MICRO_BATCH]  # the probe keeps them in order
    expected = []
    for record in step1:
        uids = record["uids"]
        for (row, t), cov in reference_covariances(record["old_log_prob"].double(), record["advantages"].double(),
                                                   record["response_mask"].bool(), uids).items():
            expected.append((uids[row], t, cov))
    expected.sort(key=lambda item: -abs(item[2]))
    logged = [r for r in first.tokens if r["step"] == 1 and r["selection"] == "abs_cov"]
    assert len(logged) == 20  # cwgrpo.token_log_top_k
    assert [(r["uid"], r["position"]) for r in logged] == [(u, t) for u, t, _ in expected[:20]]
    assert [r["cov"] for r in logged] == pytest.approx([c for _, _, c in expected[:20]], rel=1e-5, abs=1e-7)
    assert all(isinstance(r["token"], str) and r["response_tokens"] > r["position"] for r in logged)
    low = [r for r in first.tokens if r["step"] == 1 and r["selection"] == "low_weight"]
    assert len(low) == 20 and all(r["weight"] < 1.0 for r in low)
    assert sorted({r["step"] for r in first.tokens}) == [1, 2]  # cwgrpo.token_log_every=1


def test_the_report_shows_the_extreme_tokens_of_grpo_and_cw_grpo_runs(runs, tmp_path):
    """The token logs of a GRPO and a CW-GRPO run of the real loop, rendered side by side by the report's --tokens
    page: every logged token appears highlighted on it."""
    from html.parser import HTMLParser

    from cwgrpo_verl.report.cli import main as report

    grpo, cw = runs("grpo_script"), runs("two_ranks")
    assert {r["selection"] for r in grpo.tokens} == {"abs_cov"}  # observe-only: GRPO weights nothing
    assert {r["selection"] for r in cw.tokens} == {"abs_cov", "low_weight"}
    out = tmp_path / "report"
    assert report(["--run", f"GRPO={grpo.work / 'metrics.jsonl'}", "--run", f"CW-GRPO={cw.work / 'metrics.jsonl'}",
                   "--out", str(out), "--tokens"]) == 0

    class Marks(HTMLParser):
        def __init__(self):
            super().__init__()
            self.marks, self.inside = [], False

        def handle_starttag(self, tag, attrs):
            self.inside = tag == "mark"

        def handle_endtag(self, tag):
            self.inside = False

        def handle_data(self, data):
            if self.inside:
                self.marks.append(data)

    page = Marks()
    page.feed((out / "tokens.html").read_text())
    shown = {m.replace("⏎", "\n").replace("⇥", "\t") for m in page.marks}
    for record in grpo.tokens + cw.tokens:
        token = record["token"] if record["token"].strip() else record["token"].replace(" ", "␣")
        # the tiny model's bytes: a token that is part of a character decodes to "" and shows its id
        assert (token or f"⟨{record['token_id']}⟩") in shown, record


def test_checkpoints_are_evaluated_as_the_paper_did_into_tables_2_and_3(runs, tmp_path):
    """The real trainer's checkpoints (steps 1 and 2) are merged with verl's model merger and evaluated with the
    paper's protocol (the CPU backend of cwgrpo_verl.evaluate), the base model too; the report builds Tables 2 and 3
    from those logs; a second run of the command evaluates nothing new."""
    import subprocess
    import sys

    from cwgrpo_verl.report.cli import main as report

    first, _ = runs("group_then_resume")
    env = {**os.environ, "PYTHON": sys.executable, "BACKEND": "hf", "MAX_NEW_TOKENS": "8",
           "DATA_DIR": str(first.work / "data")}
    command = ["bash", str(smoke.EXAMPLES / "evaluate_checkpoints.sh"), str(first.work / "checkpoints")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    base = subprocess.run(["bash", str(smoke.EXAMPLES / "evaluate.sh")], capture_output=True, text=True, timeout=600,
                          env={**env, "MODEL_PATH": str(SHARED["model"]), "EVAL_DIR": str(tmp_path / "base")})
    assert base.returncode == 0, base.stderr[-3000:]
    evals = first.work / "checkpoints" / "evals"
    logs = sorted(p.name for p in evals.glob("step_*.jsonl") if not p.name.endswith(".generations.jsonl"))
    assert logs == ["step_1.t0.6-p0.95-n1-len8.jsonl", "step_2.t0.6-p0.95-n1-len8.jsonl"]
    for step in (1, 2):
        assert (first.work / "checkpoints" / f"global_step_{step}" / "actor" / "huggingface_merged" / "config.json").is_file()
    before = {p: p.stat().st_mtime_ns for p in evals.iterdir()}
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("already evaluated") == 2, again.stdout[-2000:]
    assert {p: p.stat().st_mtime_ns for p in evals.iterdir()} == before
    out = tmp_path / "report"
    assert report(["--base", f"Base={tmp_path / 'base'}", "--eval", f"CW-GRPO={evals}", "--out", str(out)]) == 0
    table3 = (out / "table3.md").read_text().splitlines()
    assert [line.split(" | ")[:2] for line in table3[2:5]] == [["| Base", "0"], ["| CW-GRPO", "1"], ["| CW-GRPO", "2"]]
    assert "max_new_tokens 8, temperature 0.6, top_p 0.95, samples 1" in (out / "table2.md").read_text()
