"""Evaluation mode against the paper's own scorer: lighteval's verdicts at commit ed084813.

``tests/fixtures/reward_parity/cases.json.gz`` holds model-like responses of our own over gold answers of the
five sets (right, wrong, equivalent forms, long responses with an early box, percent, decimals, tuples,
intervals, sets, units, text) and the verdict lighteval's ``extractive_match`` gave each of them, produced by
``generate.py`` next to it in a scratch environment with lighteval itself. The scoring code runs in this process
(no pool), so a disagreement shows the extracted values of both sides.

Every one of the 1,662 cases is checked (about 11 s on an idle core). The fixture also records the
environment that produced it (``provenance``: lighteval's commit, the package versions, the data files' sha256),
and a test checks that it is the paper's.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

from cwgrpo_verl.reward.scoring import check_answer, eval_gold, eval_prediction

FIXTURE = Path(__file__).parent / "fixtures" / "reward_parity"


def _load():
    spec = importlib.util.spec_from_file_location("reward_parity_generate", FIXTURE / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)  # stdlib only at import time: lighteval is imported inside run_lighteval()
    doc = json.loads(gzip.decompress((FIXTURE / "cases.json.gz").read_bytes()))
    return gen, doc.get("provenance"), doc["golds"], doc["cases"]


GEN, PROVENANCE, GOLDS, CASES = _load()


def test_fixture_covers_what_the_issue_lists():
    kinds = {c["kind"] for c in CASES}
    assert {"long_early_box", "long_early_box_wrong", "percent_vs_plain", "irrational_5dp", "tuple_decimal_angle",
            "interval_wrong_side", "set_reordered", "unit", "text_name", "wrong_boxed"} <= kinds
    assert {c["set"] for c in CASES} == {"aime24", "amc23", "math500", "minerva", "olympiadbench", "handwritten"}
    longs = [GEN.join(c["parts"]) for c in CASES if c["kind"] == "long_early_box"]
    assert longs and min(len(t) for t in longs) > 16_384
    assert 0.3 < sum(c["lighteval"] for c in CASES) / len(CASES) < 0.9  # both verdicts are well represented


def test_fixture_records_the_papers_scoring_environment():
    """The verdicts come from the paper's environment (see generate.py): lighteval at commit ed084813, on
    latex2sympy2_extended 1.0.6 (ANTLR 4.13.2) and sympy 1.13.1, as recorded by the generator that produced them."""
    prov = PROVENANCE
    assert prov, "the fixture does not record its generator's environment: rerun generate.py"
    assert prov["lighteval_repo"] == "huggingface/lighteval"
    assert prov["lighteval_commit"] == "ed084813e0bd12d82a06d9f913291fdbee774905" == GEN.LIGHTEVAL_COMMIT
    assert prov["lighteval_blobs"] == GEN.LIGHTEVAL_BLOBS  # the imported scoring modules were that commit's
    packages = prov["packages"]
    assert packages["latex2sympy2_extended"] == "1.0.6"
    assert packages["sympy"] == "1.13.1"
    assert packages["antlr4-python3-runtime"] == "4.13.2"
    assert {"lighteval", "mpmath", "python"} <= set(packages)
    assert set(prov["data"]) == set(GEN.FILES.values())
    assert all(len(digest) == 64 for digest in prov["data"].values())  # sha256 of each data file read


def test_evaluation_mode_gives_lighteval_verdicts():
    wrong = []
    for case in CASES:
        gold, text = GOLDS[case["gold"]], GEN.join(case["parts"])
        got = check_answer("eval", case["gold_kind"], gold, text)
        if float(got["acc"]) != case["lighteval"]:
            ours = {"pred": [str(x) for x in eval_prediction(text)],
                    "gold": [str(x) for x in eval_gold(gold, case["gold_kind"])]}
            wrong.append((case["id"], case["set"], case["kind"], case["lighteval"], case["extracted"], ours))
    assert len(CASES) == 1662
    assert not wrong, f"{len(wrong)}/{len(CASES)} verdicts differ from lighteval's: {wrong[:5]}"


@pytest.mark.parametrize("kind", ["long_early_box", "long_early_box_wrong"])
def test_an_early_box_in_a_long_response_is_what_counts(kind):
    """The issue's first kind of disagreement: a boxed answer early in a response over 16,384 characters."""
    cases = [c for c in CASES if c["kind"] == kind]
    for case in cases:
        got = check_answer("eval", case["gold_kind"], GOLDS[case["gold"]], GEN.join(case["parts"]))
        assert float(got["acc"]) == case["lighteval"] == (1.0 if kind == "long_early_box" else 0.0), case["id"]
