"""``python -m cwgrpo_verl.evaluate`` with its CPU backend on the tiny model: one log in verl's file-logger format
with the evaluation's settings, every response with its score beside it, nothing until it is complete."""

import json

import pytest

from cwgrpo_verl import data_sets, evaluate
from cwgrpo_verl.reward import compute_score
from tools.cpu import tiny


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    work = tmp_path_factory.mktemp("evaluate")
    model, data = tiny.build_model(work / "model"), tiny.write_data(work / "data", eval_rows=2)
    out = work / "evals" / "step_7.t0.6-p0.95-n3-len6.jsonl"
    evaluate.main(["--model", str(model), "--data", str(data), "--out", str(out), "--step", "7", "--samples", "3",
                   "--max-new-tokens", "6", "--backend", "hf"])
    return out


def test_the_log_holds_mean_at_n_per_set_and_the_settings(evaluated):
    (record,) = [json.loads(line) for line in evaluated.read_text().splitlines()]
    assert record["step"] == 7
    assert sorted(record["data"]) == sorted(f"val-core/cwgrpo/{s}/acc/mean@3" for s in data_sets.evaluation_keys())
    settings = record["evaluation"]
    assert {k: settings[k] for k in evaluate.COMPARED} == {
        "max_new_tokens": 6, "temperature": 0.6, "top_p": 0.95, "samples": 3, "reward": evaluate.REWARD_MODE}
    assert settings["problems"] == {s: 2 for s in data_sets.evaluation_keys()} and settings["backend"] == "hf"
    assert not list(evaluated.parent.glob(".*.partial"))


def test_every_response_is_kept_with_the_score_that_made_the_accuracy(evaluated):
    """Each response scored again by the project's reward gives its recorded verdict, and their mean per set is the
    logged accuracy."""
    generations = [json.loads(line) for line in evaluate.generations_path(evaluated).read_text().splitlines()]
    assert len(generations) == len(data_sets.evaluation_keys()) * 2 * 3
    (record,) = [json.loads(line) for line in evaluated.read_text().splitlines()]
    for name in data_sets.evaluation_keys():
        rows = [g for g in generations if g["set"] == name]
        again = [compute_score(g["data_source"], g["response"], g["ground_truth"])["acc"] for g in rows]
        assert again == [g["acc"] for g in rows]
        assert record["data"][f"val-core/cwgrpo/{name}/acc/mean@3"] == pytest.approx(sum(again) / len(again))
    assert all(len(g["response"]) > 0 for g in generations)


@pytest.mark.parametrize("argv, message", [
    (["--temperature", "0"], "--temperature: expected a number in (0, inf)"), (["--top-p", "1.5"], "--top-p: expected a number in (0, 1]"),
    (["--sets", "aime24,math5OO"], "--sets: unknown math5OO; choose from aime24,"), (["--samples", "0"], "--samples: expected a whole number >= 1"),
])
def test_bad_arguments_are_refused(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--model", "m", "--data", str(tmp_path), "--out", str(tmp_path / "x.jsonl"), *argv])
    assert message in capsys.readouterr().err


def test_a_missing_set_names_the_file_and_the_command_that_writes_it(tmp_path):
    with pytest.raises(SystemExit, match=r"no aime24.parquet \(write it with examples/prepare_data.sh\)"):
        evaluate.load_problems(tmp_path, ["aime24"])
