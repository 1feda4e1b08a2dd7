"""Tests for cwgrpo_verl.reward: training reward, evaluation rules, robustness, verl integration, self-check.

Parity with lighteval's verdicts: test_reward_parity.py; the worker pool's faults: test_reward_pool.py;
linear-time candidate search: test_reward_candidates.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import SHARED_DATA

from cwgrpo_verl import data_sets
from cwgrpo_verl import reward as R
from cwgrpo_verl.processes import alive as process_alive
from cwgrpo_verl.reward import compute_score

TOWER = "The answer is $\\boxed{10^{10^{10^{10}}}}$"
KEYS_TYPES = {"score": float, "acc": float, "format": float, "pred": str, "reason": str, "timed_out": float}

MATH = data_sets.get("math500").data_source
OPEN_RS = data_sets.get("open_rs").data_source


def _resp(answer: str, think: bool = True) -> str:
    head = "<think>\nWe compute carefully.\n</think>\n" if think else ""
    return head + f"Therefore, the final answer is: $\\boxed{{{answer}}}$. I hope it is correct."


def _check_shape(res: dict) -> None:
    assert set(res) == set(KEYS_TYPES)
    for k, t in KEYS_TYPES.items():
        assert type(res[k]) is t, (k, res[k])


# ---------------------------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("source", [OPEN_RS, MATH])
def test_correct_and_wrong(source):
    gold = "Adding up, we get $\\boxed{\\frac{3}{4}}$."
    right = compute_score(source, _resp("\\frac{3}{4}"), gold)
    assert right["acc"] == 1.0 and right["reason"] == "ok" and right["pred"]
    also_right = compute_score(source, _resp("0.75"), gold)
    assert also_right["acc"] == 1.0
    wrong = compute_score(source, _resp("\\frac{4}{3}"), gold)
    assert wrong["acc"] == 0.0 and wrong["reason"] == "ok"


def test_amc_float_gold_accepts_integer():
    gold = "27.0"  # AMC's float answer as a string
    assert gold == "27.0"
    for ans in ("27", "27.0", "27.00000"):
        assert compute_score(data_sets.get("amc23").data_source, _resp(ans), gold)["acc"] == 1.0, ans
    assert compute_score(data_sets.get("amc23").data_source, _resp("28"), gold)["acc"] == 0.0
    # a float / list / numpy gold as stored by a parquet round trip
    assert compute_score(data_sets.get("amc23").data_source, _resp("27"), 27.0)["acc"] == 1.0
    assert compute_score(data_sets.get("amc23").data_source, _resp("27"), [27.0])["acc"] == 1.0
    assert compute_score(data_sets.get("amc23").data_source, _resp("27"), np.array(["27.0"], dtype=object))["acc"] == 1.0


def test_aime_leading_zeros_and_last_box_wins():
    src = data_sets.get("aime24").data_source
    assert compute_score(src, _resp("025"), "25")["acc"] == 1.0
    text = "<think>\nmaybe $\\boxed{7}$?\n</think>\nThe final answer is $\\boxed{25}$"
    assert compute_score(src, text, "25")["acc"] == 1.0
    text = "<think>\nmaybe $\\boxed{25}$?\n</think>\nThe final answer is $\\boxed{7}$"
    assert compute_score(src, text, "25")["acc"] == 0.0


# ---------------------------------------------------------------------------------------------- format / weights


@pytest.mark.parametrize(
    "text,expected",
    [
        ("<think>\nreasoning\n</think>\n\\boxed{5}", 1.0),
        ("reasoning\n</think>\n\\boxed{5}", 1.0),  # <think> comes from the chat template
        ("<think>reasoning</think> \\boxed{5}", 0.0),  # no newlines around the tag
        ("\\boxed{5}", 0.0),
        ("a\n</think>\nb\n</think>\n\\boxed{5}", 0.0),  # twice
    ],
)
def test_format_reward(text, expected):
    res = compute_score(OPEN_RS, text, "$5$")
    assert res["format"] == expected
    assert res["acc"] == 1.0
    assert res["score"] == 1.0 + expected


def test_weights_and_accuracy_only():
    text = _resp("5")
    assert compute_score(OPEN_RS, text, "$5$")["score"] == 2.0
    assert compute_score(OPEN_RS, text, "$5$", format_weight=0.0)["score"] == 1.0  # 7B recipe
    assert compute_score(OPEN_RS, text, "$6$", format_weight=0.0)["score"] == 0.0
    assert compute_score(OPEN_RS, text, "$6$")["score"] == 1.0  # format only
    assert compute_score(OPEN_RS, text, "$5$", acc_weight=2.0, format_weight=0.5)["score"] == 2.5
    # eval mode: score is accuracy only, format still reported
    res = compute_score(MATH, text, "$5$")
    assert res["score"] == 1.0 and res["format"] == 1.0


# ---------------------------------------------------------------------------------------------- train vs eval


def test_train_vs_eval_differences():
    gold = "The value is $\\boxed{5}$"
    plain = "<think>\nx\n</think>\nThe answer is 5"
    # train: LaTeX only, anchors required -> nothing extracted; eval: expression extraction finds 5
    assert compute_score(OPEN_RS, plain, gold)["reason"] == "no_pred"
    assert compute_score(MATH, plain, gold)["acc"] == 1.0
    assert compute_score("anything", plain, gold, mode="eval")["acc"] == 1.0
    assert compute_score(MATH, plain, gold, mode="train")["acc"] == 0.0
    # rounding: 5 decimals in eval, 6 in training
    assert compute_score(MATH, _resp("1.234559"), "$1.234564$")["acc"] == 1.0
    assert compute_score(OPEN_RS, _resp("1.234559"), "$1.234564$")["acc"] == 0.0


def test_eval_raw_string_gold_fallback():
    # an OlympiadBench gold without $...$ cannot be extracted as LaTeX: exact string match only (lighteval)
    src = data_sets.get("olympiadbench").data_source
    assert compute_score(src, _resp("3"), "3")["acc"] == 1.0
    assert compute_score(src, _resp("4"), "3")["acc"] == 0.0
    assert compute_score(src, _resp("yes"), "yes")["acc"] == 1.0
    assert compute_score(src, _resp("Yes"), "yes")["acc"] == 0.0


def test_no_gold_and_no_pred():
    res = compute_score(OPEN_RS, _resp("3"), None)
    assert res["reason"] == "no_gold" and res["acc"] == 0.0 and res["score"] == 1.0  # format only
    res = compute_score(OPEN_RS, _resp("3"), "there is no math in this solution")
    assert res["reason"] == "no_gold" and res["acc"] == 0.0
    res = compute_score(MATH, "<think>\nI give up\n</think>\n", "$3$")
    assert res["reason"] == "no_pred" and res["score"] == 0.0


def test_a_data_source_chooses_the_mode():
    """Evaluation sets (by name, alias or key) get lighteval's verdict, anything else the training reward."""
    text = "<think>\nx\n</think>\nSo $\\boxed{2}$"
    assert compute_score(MATH, text, "$2$")["score"] == 1.0  # evaluation: accuracy only
    assert compute_score("HuggingFaceH4/MATH-500", text, "$2$")["score"] == 1.0
    assert compute_score(OPEN_RS, text, "$2$")["score"] == 2.0  # training: accuracy + format


# ---------------------------------------------------------------------------------------------- robustness


def test_timeout_kills_worker_and_recovers():
    compute_score(MATH, _resp("1"), "$1$")  # warm
    t0 = time.monotonic()
    res = compute_score(MATH, TOWER, "$3$", timeout_s=1.0)
    dt = time.monotonic() - t0
    assert dt < 2.0, dt
    assert res["reason"] == "timeout" and res["score"] == 0.0 and res["acc"] == 0.0 and res["timed_out"] == 1.0
    _check_shape(res)
    killed = R.worker_pids()["last_killed"]
    assert killed is not None and not process_alive(killed)  # nothing keeps computing
    assert killed not in R.worker_pids()["workers"]
    ok = compute_score(MATH, _resp("3"), "$3$")
    assert ok["acc"] == 1.0
    assert all(process_alive(p) for p in R.worker_pids()["workers"])


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_pathological_inputs_bounded(mode):
    cases = [
        "\\boxed{(10^{8})!}",
        "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
        "x" * 1_000_000 + "\\boxed{3}",
        "{" * 300_000 + "}" * 300_000,
    ]
    for text in cases:
        t0 = time.monotonic()
        res = compute_score(MATH, text, "$3$", mode=mode, timeout_s=1.0)
        assert time.monotonic() - t0 < 2.0
        _check_shape(res)


def test_huge_and_null_inputs():
    res = compute_score(MATH, "blah " * 400_000 + _resp("3"), "$3$")
    assert res["acc"] == 1.0
    res = compute_score(MATH, "\x00" * 1000 + _resp("3") + "\x00", "$3\x00$")
    assert res["acc"] == 1.0
    # the whole response is read, as lighteval did: a box 30k characters before the end counts
    early = "\\boxed{3}" + " and then some more thinking" * 1100
    assert len(early) > 30_000
    assert compute_score(MATH, early, "$3$")["acc"] == 1.0
    assert compute_score(MATH, early, "$3$", max_chars=16384)["reason"] == "no_pred"  # opt-in tail only
    for weird in (None, 123, b"\\boxed{3}", "", "\\", "$$$$", "\\boxed{", "}" * 100):
        _check_shape(compute_score(MATH, weird, "$3$"))
        _check_shape(compute_score(OPEN_RS, weird, "$3$"))


def test_keys_and_types_are_stable():
    results = [
        compute_score(MATH, _resp("3"), "$3$"),
        compute_score(MATH, _resp("4"), "$3$"),
        compute_score(OPEN_RS, _resp("3"), "$3$"),
        compute_score(OPEN_RS, "nothing", "$3$"),
        compute_score(OPEN_RS, "nothing", None),
        compute_score(MATH, TOWER, "$3$", timeout_s=0.5),
        compute_score(data_sets.get("aime24").data_source, _resp("25"), "25", extra_info={"index": 1}),
    ]
    for res in results:
        _check_shape(res)
    assert {r["reason"] for r in results} >= {"ok", "no_pred", "no_gold", "timeout"}


def test_non_main_threads_concurrently():
    items = [(str(i), str(i if i % 3 else i + 1)) for i in range(24)]

    def one(item):
        gold, ans = item
        return compute_score(MATH, _resp(ans), f"${gold}$")["acc"]

    with ThreadPoolExecutor(max_workers=6) as ex:
        accs = list(ex.map(one, items))
    assert accs == [0.0 if i % 3 == 0 else 1.0 for i in range(24)]

    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", compute_score(MATH, TOWER, "$3$", timeout_s=0.5)))
    th.start()
    th.join(10)
    assert out["r"]["reason"] == "timeout"


def test_inside_running_event_loop():
    async def main():
        direct = compute_score(MATH, _resp("3"), "$3$")  # blocking call inside the loop thread
        timed = compute_score(MATH, TOWER, "$3$", timeout_s=0.5)
        loop = asyncio.get_running_loop()
        futs = [loop.run_in_executor(None, lambda a=a: compute_score(MATH, _resp(a), "$3$")) for a in ("3", "4")]
        return direct, timed, await asyncio.gather(*futs)

    direct, timed, (a, b) = asyncio.run(main())
    assert direct["acc"] == 1.0 and timed["reason"] == "timeout"
    assert a["acc"] == 1.0 and b["acc"] == 0.0


def test_fuzz_never_raises():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    alphabet = st.sampled_from(list("0123456789+-*/^_{}()[]$\\ abcxyz.,=!\n") + ["\\boxed{", "\\frac", "</think>"])

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=st.lists(alphabet, max_size=60).map("".join), gold=st.lists(alphabet, max_size=20).map("".join))
    def run(text, gold):
        for src in (MATH, OPEN_RS, data_sets.get("aime24").data_source):
            _check_shape(compute_score(src, text, gold, timeout_s=2.0))

    assert hypothesis is not None
    run()


# ---------------------------------------------------------------------------------------------- verl integration


def test_verl_loader_and_naive_manager():
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.utils.import_utils import load_extern_object

    assert load_extern_object("pkg://cwgrpo_verl.reward", "compute_score") is compute_score
    cfg = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": "pkg://cwgrpo_verl.reward",
                    "name": "compute_score",
                    "reward_kwargs": {"format_weight": 0.0, "timeout_s": 3.0},
                }
            }
        }
    )
    fn = get_custom_reward_fn(cfg)
    res = fn(data_source=OPEN_RS, solution_str=_resp("5"), ground_truth="$5$", extra_info={"index": 0})
    assert res["score"] == 1.0 and res["format"] == 1.0  # accuracy only

    # end to end through verl's naive reward manager (decode -> run_in_executor -> compute_score)
    import torch
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

    class CharTokenizer:
        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(int(i)) for i in ids if int(i) > 0)

    texts = [_resp("5"), _resp("6"), TOWER]
    width = max(len(t) for t in texts)
    responses = torch.zeros(len(texts), width, dtype=torch.long)
    mask = torch.zeros(len(texts), 2 + width, dtype=torch.long)
    for i, t in enumerate(texts):
        responses[i, : len(t)] = torch.tensor([ord(c) for c in t])
        mask[i, : 2 + len(t)] = 1
    batch = DataProto.from_dict(
        tensors={"responses": responses, "attention_mask": mask},
        non_tensors={
            "data_source": np.array([MATH, OPEN_RS, MATH], dtype=object),
            "reward_model": np.array([{"ground_truth": "$5$"}] * 3, dtype=object),
            "extra_info": np.array([{"index": i} for i in range(3)], dtype=object),
        },
    )
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        manager = NaiveRewardManager(OmegaConf.create({}), CharTokenizer(), fn)
        outs = loop.run_until_complete(asyncio.gather(*(manager.run_single(batch[i : i + 1]) for i in range(3))))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    assert [o["reward_score"] for o in outs] == [1.0, 0.0, 0.0]
    assert outs[2]["reward_extra_info"]["reason"] == "timeout"
    for o in outs:
        _check_shape(o["reward_extra_info"])


# ---------------------------------------------------------------------------------------------- self-check

def prepared(source_dir, out):
    """The evaluation parquets as examples/prepare_data.sh writes them (data_prep.eval_sets)."""
    from data_prep.eval_sets import main as eval_sets

    assert eval_sets(["--out", str(out), "--source-dir", str(source_dir)]) == 0
    return out


@pytest.mark.slow
def test_self_check_every_gold_answer(tmp_path):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"evaluation data not found at {SHARED_DATA} (set CWGRPO_SHARED_DATA)")
    data = prepared(SHARED_DATA, tmp_path)  # all rows: python -m cwgrpo_verl.reward --self-check data/
    report = R.self_check(data, workers=2)  # every row: about 10 s
    lines = []
    unexpected = []
    for key, r in report.items():
        lines.append(f"{key}: {r['passed']}/{r['n']}")
        unexpected += [(key, *failure) for failure in r["failures"] if failure not in r["known"]]
        assert len(r["known"]) <= 1  # the one defect the self-check forgives
    print("self-check pass rates: " + ", ".join(lines))
    assert report["math500"]["n"] == 500 and report["olympiadbench"]["n"] == 675
    assert not unexpected, unexpected


def test_self_check_boxes_the_answer_without_the_full_stop_after_the_math():
    """OlympiadBench row 76's gold is "$(-\\infty, 0) \\cup\\{1\\}$.": boxed with its full stop, no parser reads
    the answer (lighteval neither), so the bare answer data prep writes for the self-check leaves it out."""
    from data_prep.common import ground_truth_for

    gold = "$(-\\infty, 0) \\cup\\{1\\}$."
    _, answer, _ = ground_truth_for("olympiadbench", {"final_answer": [gold]})
    assert compute_score("cwgrpo/olympiadbench", R.model_like_response(answer), gold)["acc"] == 1.0
    assert compute_score("cwgrpo/olympiadbench", R.model_like_response(answer + "."), gold)["acc"] == 0.0


def test_self_check_command_line(tmp_path, monkeypatch, capsys):
    """``python -m cwgrpo_verl.reward --self-check data/`` (run here through runpy, as ``-m`` does) on the parquet
    files data preparation writes: exit 0 when every boxed gold scores 1, 1 otherwise."""
    import runpy
    import sys

    rows = {
        "aime24.jsonl": [{"problem": "p", "answer": "204"}],
        "amc23.jsonl": [{"problem": "p", "answer": 27.0}],
        "math500.jsonl": [{"problem": "p", "solution": "so $\\boxed{\\frac{1}{2}}$", "answer": "\\frac{1}{2}"}],
        "minerva_math.jsonl": [{"problem": "p", "solution": "hence $\\boxed{7.5}$"}],
        "olympiadbench.jsonl": [{"question": "p", "final_answer": ["$(1,2)$"]}],
    }
    source = tmp_path / "source"
    source.mkdir()
    for name, items in rows.items():
        (source / name).write_text("".join(json.dumps(r) + "\n" for r in items))
    data = prepared(source, tmp_path / "data")

    def run_cli() -> int:
        monkeypatch.setattr(sys, "argv", ["cwgrpo_verl.reward", "--self-check", str(data), "--workers", "1"])
        with pytest.raises(SystemExit) as done:
            runpy.run_module("cwgrpo_verl.reward", run_name="__main__", alter_sys=True)
        return done.value.code

    assert run_cli() == 0
    assert "math500           1/   1" in capsys.readouterr().out
    (source / "olympiadbench.jsonl").write_text(json.dumps({"question": "p", "final_answer": ["$221,$8$"]}) + "\n")
    prepared(source, data)  # unmatchable: the known data defect of the real set is reported, and forgiven
    assert run_cli() == 0
    out = capsys.readouterr().out
    assert "olympiadbench     0/   1" in out and "(a known data defect)" in out
    (source / "olympiadbench.jsonl").write_text(json.dumps({"question": "p", "final_answer": ["$5,$6$"]}) + "\n")
    prepared(source, data)  # another malformed gold
    assert run_cli() == 1
    out = capsys.readouterr().out
    assert "olympiadbench     0/   1" in out and "(a known data defect)" not in out


def test_a_number_too_long_to_convert_is_an_unparsed_candidate_not_an_error():
    """4,500 digits with thousands separators: more than Python converts to an int; scored like any non-answer."""
    number = "1" + ",000" * 1500
    res = compute_score(data_sets.get("math500").data_source, f"The final answer is {number}. I hope it is correct.", "$3$")
    assert res["acc"] == 0.0 and res["reason"] != "error", res


def test_model_output_is_never_run_as_code(tmp_path):
    """Answers that would run code if anything along the way eval'd them (sympy's parse_expr does, on what the
    expression pattern lets through: digits, spaces and operators only)."""
    marker = tmp_path / "ran"
    call = f"__import__('os').system('touch {marker}')"
    payloads = [f"$\\boxed{{{call}}}$", f"The final answer is {call}. I hope it is correct.", f"answer: 1+{call}",
                f"$\\boxed{{1+2*({call})}}$", f"$\\boxed{{\\text{{{call}}}}}$", f"= (1 + 2) * 3 {call} 4"]
    for mode in ("eval", "train"):
        for payload in payloads:
            res = compute_score(data_sets.get("math500").data_source, f"<think>\nx\n</think>\n{payload}", "$3$", mode=mode)
            assert res["acc"] == 0.0, (payload, res)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------- options and golds


def test_a_misspelt_keyword_is_refused_naming_it():
    """Case 5: `format_wieght=0.0` was swallowed, and the sample scored 2.0 instead of the 1.0 asked for."""
    with pytest.raises(ValueError) as error:
        compute_score(OPEN_RS, _resp("5"), "$5$", format_wieght=0.0)
    message = str(error.value)
    assert message.startswith("cwgrpo reward: unknown keyword argument(s) format_wieght (a typo in reward_kwargs?); "
                              "known: mode, acc_weight, format_weight, timeout_s, max_chars, gold_kind, workers")
    assert "reward_router_address" in message
    assert compute_score(OPEN_RS, _resp("5"), "$5$", format_weight=0.0)["score"] == 1.0


def test_what_verl_passes_is_accepted_by_name():
    """verl 0.9.1's reward-loop managers add these two when a reward model router is configured."""
    res = compute_score(data_source=OPEN_RS, solution_str=_resp("5"), ground_truth="$5$", extra_info={"index": 0},
                        reward_router_address="127.0.0.1:8000", reward_model_tokenizer=None)
    assert res["score"] == 2.0
    assert R.VERL_EXTRA_KWARGS == ("reward_router_address", "reward_model_tokenizer")


def test_a_typo_reaches_the_caller_through_verls_loader_and_the_smoke_wrapper():
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from tools.cpu.smoke_reward import compute_score as smoke_score

    cfg = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": "pkg://cwgrpo_verl.reward", "name": "compute_score", "reward_kwargs": {"format_wieght": 0.0}}}})
    with pytest.raises(ValueError, match="format_wieght"):
        get_custom_reward_fn(cfg)(data_source=OPEN_RS, solution_str=_resp("5"), ground_truth="$5$", extra_info={})
    assert smoke_score(MATH, _resp("5"), "$5$", None, format_weight=0.0, timeout_s=3.0)["acc"] == 1.0
    with pytest.raises(ValueError, match="format_wieght"):
        smoke_score(MATH, _resp("5"), "$5$", None, format_wieght=0.0)


@pytest.mark.parametrize("gold", [{"answer": "5"}, [{"answer": "5"}], object(), True, [[5]], {5}])
def test_a_gold_that_is_not_text_or_a_number_is_no_gold(gold):
    """A dict's or an object's str() was used as the gold (acc 0, reason ok): a row error passed as a wrong answer."""
    for source in (OPEN_RS, MATH):
        res = compute_score(source, _resp("5"), gold)
        assert (res["acc"], res["reason"]) == (0.0, "no_gold"), (gold, res)
    amc = data_sets.get("amc23").data_source  # numbers, numpy's included, are golds
    assert compute_score(amc, _resp("5"), np.int64(5))["acc"] == 1.0
    assert compute_score(amc, _resp("5"), np.array([5.0]))["acc"] == 1.0


def test_an_unknown_data_source_is_warned_about_once(caplog):
    """A misspelt data source silently fell back to the training scorer."""
    name = f"cwgrpo/math5OO-{time.monotonic_ns()}"  # a name this process has not warned about
    with caplog.at_level("WARNING", logger="cwgrpo_verl.reward"):
        results = [compute_score(name, _resp("5"), "$5$") for _ in range(3)]
        compute_score(name, _resp("5"), "$5$", mode="eval")  # an explicit mode: nothing to warn about
        compute_score("HuggingFaceH4/MATH-500", _resp("5"), "$5$")  # an alias: known
    warnings = [r.getMessage() for r in caplog.records if r.name == "cwgrpo_verl.reward"]
    assert warnings == [f"cwgrpo reward: unknown data_source {name!r}: scored with the training reward (evaluation "
                        "sets: cwgrpo/aime24, cwgrpo/math500, cwgrpo/amc23, cwgrpo/minerva, cwgrpo/olympiadbench; "
                        "reward_kwargs.mode=train or eval chooses explicitly)"]
    assert all(r["score"] == 2.0 for r in results)  # still the documented fallback: the training reward


@pytest.mark.parametrize("workers", [10**6, R.MAX_WORKERS + 1])
def test_a_pool_larger_than_the_cap_is_refused(workers, monkeypatch):
    """`workers=10**6` was accepted (and would fork until the machine ran out)."""
    with pytest.raises(ValueError, match=f"workers must be an integer from 1 to {R.MAX_WORKERS}, got {workers}"):
        compute_score(MATH, _resp("3"), "$3$", workers=workers)
    monkeypatch.setenv("CWGRPO_REWARD_WORKERS", str(workers))
    with pytest.raises(ValueError, match="CWGRPO_REWARD_WORKERS must be an integer from 1"):
        R.default_workers()
