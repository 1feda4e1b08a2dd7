"""One registry of the data sets (cwgrpo_verl/data_sets.py): every consumer reads it, so adding an evaluation set is
one entry there (plus its data)."""

import pytest
from helpers import REPO

from cwgrpo_verl import data_sets

NEW = data_sets.DataSet("gsm8k", "GSM8K", "openai/gsm8k", "test", "gsm8k", "question", "answer", "expr",
                       aliases=("openai/gsm8k",))


@pytest.fixture
def with_a_new_set(monkeypatch):
    monkeypatch.setattr(data_sets, "EVALUATION", (*data_sets.EVALUATION, NEW))
    return NEW


def test_every_consumer_sees_a_new_evaluation_set(with_a_new_set, tmp_path):
    from cwgrpo_verl.evaluate import parse_args
    from cwgrpo_verl.report.tables import column_order
    from cwgrpo_verl.report.write import _names
    from cwgrpo_verl.reward import compute_score
    from data_prep.common import ground_truth_for, problem_for
    from data_prep.eval_sets import parse_sets, resolve_source
    from tools.cpu import tiny

    source = NEW.data_source
    # the reward scores it in evaluation mode (training mode would add the format reward: 2.0)
    assert compute_score(source, "<think>\nx\n</think>\nSo $\\boxed{5}$", "5")["score"] == 1.0
    assert compute_score("openai/gsm8k", "<think>\nx\n</think>\nSo $\\boxed{5}$", "5")["score"] == 1.0  # alias
    # data preparation converts it, from the hub by default, with its fields and gold rule
    assert parse_sets("gsm8k") == ["gsm8k"] and resolve_source("gsm8k", None, {})[0] == "openai/gsm8k"
    assert problem_for("gsm8k", {"question": "q?"}) == ("q?", "question")
    assert ground_truth_for("gsm8k", {"answer": "72"})[:2] == ("72", "72")
    # the evaluation evaluates it by default; the training scripts validate on it; the report gives it a column
    args = parse_args(["--model", "m", "--data", str(tmp_path), "--out", str(tmp_path / "x.jsonl")])
    assert "gsm8k" in args.sets and f"{tmp_path}/gsm8k.parquet" in data_sets.val_files(str(tmp_path))
    assert column_order({source, data_sets.get("aime24").data_source})[-1] == source
    assert _names([source]) == ["GSM8K"]
    # the CPU backend writes a file of it, which validation then reads
    assert (tiny.write_data(tmp_path / "data") / "gsm8k.parquet").is_file()


def test_names_resolve_by_key_alias_or_data_source():
    assert data_sets.resolve("HuggingFaceH4/MATH-500").key == "math500"
    assert data_sets.resolve("cwgrpo/minerva") is data_sets.get("minerva_math")
    assert data_sets.resolve("math5OO") is None
    with pytest.raises(KeyError, match="unknown data set 'nope'; known: open_rs, aime24"):
        data_sets.get("nope")


def test_the_recipes_yaml_validates_on_the_registrys_sets_and_budgets_one_group():
    """The recipe's defaults (for a run without examples/train.sh, which passes the list itself)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO / "recipe" / "cwgrpo" / "config"), version_base=None):
        cfg = compose("cwgrpo_trainer")
    assert "[" + ",".join(cfg.data.val_files) + "]" == data_sets.val_files("data")
    n, data = cfg.actor_rollout_ref.rollout.n, cfg.data
    assert cfg.actor_rollout_ref.actor.ppo_max_token_len_per_gpu == n * (data.max_prompt_length + data.max_response_length)


def test_the_command_line_prints_the_hydra_list(capsys):
    assert data_sets.main(["val-files", "/d/"]) == 0
    assert capsys.readouterr().out.strip() == data_sets.val_files("/d")
    assert data_sets.main(["nope"]) == 2
