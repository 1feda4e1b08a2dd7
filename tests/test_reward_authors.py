"""Training mode against the authors' own reward: CW-GRPO's accuracy_reward and format_reward on math-verify 0.5.2.

``tests/fixtures/authors_reward/cases.json.gz`` holds model-like completions of our own over full MATH-500
solutions (right, wrong, several boxes, bare boxes, <think>/<answer> tags, unboxed answers, equivalent and
approximate forms, units, percent, case, tuples, intervals, long R1-style reasoning, truncation) and the verdicts
of the authors' functions (WangCheng0116/CW-GRPO@4259d83, src/open_r1/rewards.py) on math-verify 0.5.2,
latex2sympy2_extended 1.0.6 and sympy 1.13.1, produced by ``generate.py`` next to it in a scratch environment
(its docstring has the commands). The scoring runs in this process (no pool), so a disagreement shows both
extractions. Where the authors' gold does not parse their reward returned None and their trainer stopped
(``torch.tensor`` of a None); here the sample scores 0 with ``reason=no_gold`` (docs/reward.md).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

from cwgrpo_verl.reward import format_reward
from cwgrpo_verl.reward.scoring import check_answer, train_gold, train_prediction

FIXTURE = Path(__file__).parent / "fixtures" / "authors_reward"


def _load():
    spec = importlib.util.spec_from_file_location("authors_reward_generate", FIXTURE / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)  # the standard library only at import time
    doc = json.loads(gzip.decompress((FIXTURE / "cases.json.gz").read_bytes()))
    return gen, doc["provenance"], doc["golds"], doc["cases"]


GEN, PROVENANCE, GOLDS, CASES = _load()


def test_the_fixture_records_the_authors_environment_and_covers_what_changed_since():
    assert PROVENANCE["authors_commit"].startswith("4259d83")
    assert PROVENANCE["packages"]["math-verify"] == "0.5.2" and PROVENANCE["packages"]["latex2sympy2_extended"] == "1.0.6"
    kinds = {c["kind"] for c in CASES}
    assert {"form_unit_word_cm", "bare_boxes_close_wrong_right", "form_irrational_6dp", "form_text_upper",
            "form_list_and", "hand_gold_percent_pred_decimal", "long_inter_boxes_right_last",
            "hand_gold_unparseable_text"} <= kinds
    assert any(c["acc"] is None for c in CASES)  # the authors' reward returned None (gold not parsed)
    assert 0.3 < sum(c["acc"] or 0.0 for c in CASES) / len(CASES) < 0.9 and len(CASES) > 4000


def test_training_mode_gives_the_authors_verdict_on_every_case():
    wrong = []
    for case in CASES:
        gold, text = GOLDS[case["gold"]]["solution"].strip(), GEN.join(case["parts"])
        got = check_answer("train", "latex", gold, text) if gold else {"acc": False, "reason": "no_gold"}
        want = case["acc"] or 0.0  # None (gold not parsed): acc 0 and reason no_gold here
        if float(got["acc"]) != want or (case["acc"] is None) != (got["reason"] == "no_gold"):
            ours = {"pred": [str(x) for x in train_prediction(text)],
                    "gold": [str(x) for x in train_gold(gold)] if gold else []}
            wrong.append((case["id"], case["kind"], case["acc"], case["extracted"], ours))
    assert not wrong, f"{len(wrong)}/{len(CASES)} verdicts differ from the authors': {wrong[:5]}"


def test_format_reward_is_the_authors():
    assert all(format_reward(GEN.join(c["parts"])) == c["format"] for c in CASES)
