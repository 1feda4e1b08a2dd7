"""Tests for data_prep: evaluation sets, Open-RS, validation, determinism, decontamination, verl RLHFDataset."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cwgrpo_verl import data_sets, reward
from data_prep import common, decontaminate, eval_sets, open_rs
from data_prep.common import (
    EVAL_INSTRUCTION,
    SYSTEM_PROMPT,
    DataPrepError,
    ground_truth_for,
    last_boxed,
)
from data_prep.convert import check_rows, convert, row_message

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "open_rs_sample.jsonl"
EXPECTED_ROWS = {"aime24": 30, "math500": 500, "amc23": 40, "minerva": 272, "olympiadbench": 675}
LOCAL_FILES = {d.key: f"{d.local_stem}.jsonl" for d in data_sets.EVALUATION}
# the fixture's planted MATH-500 item (row 6, 0-based position 5)
PLANTED_POSITION = 5


def _shared_data_dir() -> Path:
    env = os.environ.get("CWGRPO_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = _shared_data_dir()
    missing = [f for f in LOCAL_FILES.values() if not (d / f).is_file()]
    if not d.is_dir() or missing:
        pytest.skip(f"real evaluation sets not found in {d} (missing {missing or 'folder'}); set CWGRPO_SHARED_DATA")
    return d


@pytest.fixture(scope="session")
def eval_out(shared_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval_sets")
    assert eval_sets.main(["--out", str(out), "--source-dir", str(shared_data)]) == 0
    return out


def read_parquet_rows(path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def _checked(set_name: str, src: Path, messages_fn=common.eval_messages, split: str = "test"):
    """(verl rows, row error messages) of a source, without writing anything."""
    rows, errors = [], []
    for c in check_rows(set_name, src, split_label=split, messages_fn=messages_fn):
        if c.error is None:
            rows.append(c.row)
        else:
            errors.append(row_message(str(src), c.rownum, c.error))
    return rows, errors


def _jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write_jsonl(path: Path, rows: list) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return path


# ----------------------------------------------------------------------------------------------
# unit helpers
# ----------------------------------------------------------------------------------------------


def test_last_boxed_nested_and_variants():
    assert last_boxed(r"so $\boxed{\frac{1}{2}}$ and then \boxed{\left( 3, \frac{\pi}{2} \right)}.") == (
        r"\left( 3, \frac{\pi}{2} \right)"
    )
    assert last_boxed(r"$\framebox{204}$ minutes") == "204"
    assert last_boxed(r"\fbox{7}") == "7"
    assert last_boxed(r"answer \boxed 5.") == "5"
    assert last_boxed(r"\boxed{\{1,2\}}") == r"\{1,2\}"
    assert last_boxed("no box here") is None
    assert last_boxed(r"\boxed{unbalanced") is None
    assert last_boxed(r"\boxed{}") is None


def test_ground_truth_for_each_set():
    """(ground_truth = the gold string the paper's scorer parsed, bare answer, source field)."""
    assert ground_truth_for("amc23", {"answer": 27.0}) == ("27", "27", "answer")
    assert ground_truth_for("amc23", {"answer": -1.0})[0] == "-1"
    assert ground_truth_for("amc23", {"answer": 0.5})[0] == "0.5"
    assert ground_truth_for("amc23", {"answer": "27.0"})[0] == "27"
    assert ground_truth_for("aime24", {"answer": "025"}) == ("025", "25", "answer")
    assert ground_truth_for("aime24", {"answer": 204})[0] == "204"
    sol = r"x $\boxed{\frac12}$"
    assert ground_truth_for("math500", {"solution": sol, "answer": r"\frac12"}) == (sol, r"\frac12", "solution")
    assert ground_truth_for("math500", {"solution": "no box", "answer": "7"}) == (r"\boxed{7}", "7", "answer")
    sol = r"s=\boxed{1.6} \mathrm{~cm}"
    assert ground_truth_for("minerva", {"solution": sol}) == (sol, "1.6", "solution")
    assert ground_truth_for("olympiadbench", {"final_answer": ["$2n-2$"]}) == ("$2n-2$", "2n-2", "final_answer[0]")
    assert ground_truth_for("olympiadbench", {"final_answer": ["$69$,$84$"]})[1] == "69,84"
    # OlympiadBench row 76: the full stop after the math is not part of the answer a model boxes
    assert ground_truth_for("olympiadbench", {"final_answer": ["$(-\\infty, 0) \\cup\\{1\\}$."]})[1] == \
        "(-\\infty, 0) \\cup\\{1\\}"
    assert ground_truth_for("olympiadbench", {"answer": "$2^{1009}$"}) == ("$2^{1009}$", "2^{1009}", "answer")
    assert ground_truth_for("olympiadbench", {"answer": "$x+1$."})[1] == "x+1"  # the hub's column, too
    assert ground_truth_for("open_rs", {"solution": r"so \boxed{54}", "answer": "54"}) == (r"so \boxed{54}", "54", "solution")
    assert ground_truth_for("open_rs", {"solution": "it is 9", "answer": "9"}) == ("it is 9", "9", "solution")
    assert ground_truth_for("open_rs", {"solution": "", "answer": "9"}) == (r"\boxed{9}", "9", "answer")
    for set_name, row in [
        ("amc23", {"answer": float("nan")}),
        ("amc23", {"answer": True}),
        ("aime24", {}),
        ("minerva", {"solution": "no box"}),
        ("olympiadbench", {"final_answer": []}),
        ("olympiadbench", {"final_answer": [3]}),
        ("open_rs", {"solution": "nothing"}),
    ]:
        with pytest.raises(common.RowError):
            ground_truth_for(set_name, row)


def test_prompts():
    assert common.train_messages("P") == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "P"},
    ]
    assert common.train_messages("P", system_prompt=False) == [{"role": "user", "content": "P"}]
    paper = common.eval_messages("What is 1+1?")
    assert len(paper) == 1 and paper[0]["role"] == "user"
    assert paper[0]["content"].startswith("Solve the following math problem efficiently and clearly.  The last line")
    assert "'Therefore, the final answer is: $\\boxed{ANSWER}$. I hope it is correct'" in paper[0]["content"]
    assert paper[0]["content"].endswith("Think step by step before answering.\n\nWhat is 1+1?")
    assert common.eval_messages("What is 1+1?", "none") == [{"role": "user", "content": "What is 1+1?"}]
    assert SYSTEM_PROMPT.startswith("A conversation between User and Assistant.")
    assert "\\boxed{{}} ." in SYSTEM_PROMPT and SYSTEM_PROMPT.endswith("NOT use other languages.")


# ----------------------------------------------------------------------------------------------
# real evaluation sets
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("set_name", data_sets.evaluation_keys())
def test_real_eval_set_converts(eval_out, set_name):
    path = eval_out / f"{set_name}.parquet"
    assert path.is_file()
    assert not (eval_out / f"{set_name}.rejects.jsonl").exists()
    table = pq.read_table(path)
    assert table.schema.equals(common.PARQUET_SCHEMA)
    rows = table.to_pylist()
    assert len(rows) == EXPECTED_ROWS[set_name]
    for i, r in enumerate(rows):
        assert r["data_source"] == data_sets.get(set_name).data_source
        assert r["ability"] == "math"
        assert r["reward_model"]["style"] == "rule"
        gt = r["reward_model"]["ground_truth"]
        assert isinstance(gt, str) and gt.strip()
        ans = r["extra_info"]["answer"]
        assert ans.strip() and "\\boxed" not in ans and not (ans.startswith("$") and ans.endswith("$"))
        assert len(r["prompt"]) == 1 and r["prompt"][0]["role"] == "user"
        content = r["prompt"][0]["content"]
        assert content.startswith(EVAL_INSTRUCTION + "\n\n")
        assert content.endswith(r["extra_info"]["problem"])
        assert r["extra_info"]["split"] == "test" and r["extra_info"]["index"] == i
        assert r["extra_info"]["dataset"] == set_name


def test_real_ground_truths(eval_out, shared_data):
    amc = read_parquet_rows(eval_out / "amc23.parquet")
    raw_amc = _jsonl_rows(shared_data / "amc23.jsonl")
    assert isinstance(raw_amc[0]["answer"], float)
    assert amc[0]["reward_model"]["ground_truth"] == "27"
    for r, raw in zip(amc, raw_amc):
        gt = r["reward_model"]["ground_truth"]
        assert not gt.endswith(".0") and float(gt) == raw["answer"] and r["extra_info"]["answer"] == gt
    aime = read_parquet_rows(eval_out / "aime24.parquet")
    raw_aime = _jsonl_rows(shared_data / "aime24.jsonl")
    assert [r["reward_model"]["ground_truth"] for r in aime] == [x["answer"] for x in raw_aime]  # "025" kept
    assert [r["extra_info"]["answer"] for r in aime] == [str(int(x["answer"])) for x in raw_aime]
    math = read_parquet_rows(eval_out / "math500.parquet")
    raw_math = _jsonl_rows(shared_data / "math500.jsonl")
    assert [r["reward_model"]["ground_truth"] for r in math] == [x["solution"] for x in raw_math]
    # the boxed answer of the solution (what lighteval extracts) equals the `answer` column on all 500 rows
    assert [r["extra_info"]["answer"] for r in math] == [x["answer"] for x in raw_math]
    assert {r["extra_info"]["gold_field"] for r in math} == {"solution"}
    assert all(r["extra_info"]["unique_id"].startswith("test/") and r["extra_info"]["level"] for r in math)
    oly = read_parquet_rows(eval_out / "olympiadbench.parquet")
    raw_oly = _jsonl_rows(shared_data / "olympiadbench.jsonl")
    for r, raw in zip(oly, raw_oly):
        assert r["reward_model"]["ground_truth"] == raw["final_answer"][0]
        gold = raw["final_answer"][0].strip()
        gold = gold[:-1] if gold.endswith("$.") else gold  # row 76: the full stop after the math
        assert r["extra_info"]["answer"] == gold.replace("$", "").strip()
        assert r["extra_info"]["problem"] == raw["question"]
    minerva = read_parquet_rows(eval_out / "minerva.parquet")
    raw_minerva = _jsonl_rows(shared_data / "minerva_math.jsonl")
    assert [r["reward_model"]["ground_truth"] for r in minerva] == [x["solution"] for x in raw_minerva]
    assert minerva[0]["extra_info"]["answer"] == "1.6"


def test_prompt_none(shared_data, tmp_path):
    assert eval_sets.main(["--out", str(tmp_path), "--source-dir", str(shared_data), "--sets", "aime24", "--prompt", "none"]) == 0
    rows = read_parquet_rows(tmp_path / "aime24.parquet")
    raw = _jsonl_rows(shared_data / "aime24.jsonl")
    assert [r["prompt"] for r in rows] == [[{"role": "user", "content": x["problem"]}] for x in raw]
    assert not (tmp_path / "math500.parquet").exists()


def _hub_variant(set_name: str, raw: list[dict]) -> list[dict]:
    """The hub schema of each set, built from real rows of the Qwen-eval jsonl copies."""
    out = []
    for r in raw:
        r = dict(r)
        if set_name == "aime24":  # hub: id, problem, solution, answer, url, year (no `question`)
            r.pop("question")
            r["year"] = "2024"
        elif set_name == "olympiadbench":  # hub adds `answer`
            r["answer"] = r["final_answer"][0]
        out.append(r)
    return out


@pytest.mark.parametrize("set_name", data_sets.evaluation_keys())
def test_hub_schema_variants_load(shared_data, tmp_path, monkeypatch, set_name):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network in tests: what a user with a cached copy sets

    raw = _jsonl_rows(shared_data / LOCAL_FILES[set_name])[:4]
    hub_rows = _hub_variant(set_name, raw)
    ref = eval_sets.prepare_eval_set(set_name, tmp_path / "ref", str(shared_data / LOCAL_FILES[set_name]))
    ref_rows = read_parquet_rows(ref)[:4]

    def same_core(rows):
        assert [r["reward_model"] for r in rows] == [r["reward_model"] for r in ref_rows]
        assert [r["prompt"] for r in rows] == [r["prompt"] for r in ref_rows]

    # 1) default source = hub id through datasets.load_dataset (patched: no network in tests)
    calls = []

    def fake_load_dataset(path, split=None, **kw):
        calls.append((path, split))
        return datasets.Dataset.from_list(hub_rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    hub_id, hub_split = data_sets.get(set_name).hub_id, data_sets.get(set_name).hub_split
    src, split, _ = eval_sets.resolve_source(set_name, None, {})
    assert (src, split) == (hub_id, hub_split)
    same_core(read_parquet_rows(eval_sets.prepare_eval_set(set_name, tmp_path / "hub", src, split)))
    assert calls == [(hub_id, hub_split)]
    # 2) a save_to_disk folder (DatasetDict with the hub split) in a --source-dir
    sd = tmp_path / "sd"
    datasets.DatasetDict({hub_split: datasets.Dataset.from_list(hub_rows)}).save_to_disk(
        str(sd / data_sets.get(set_name).local_stem)
    )
    assert eval_sets.main(["--out", str(tmp_path / "disk"), "--source-dir", str(sd), "--sets", set_name]) == 0
    same_core(read_parquet_rows(tmp_path / "disk" / f"{set_name}.parquet"))
    # 3) a parquet file and a jsonl file with the hub columns
    pq_path = tmp_path / "variant.parquet"
    datasets.Dataset.from_list(hub_rows).to_parquet(str(pq_path))
    same_core(read_parquet_rows(eval_sets.prepare_eval_set(set_name, tmp_path / "pq", str(pq_path))))
    jl = _write_jsonl(tmp_path / "variant.jsonl", hub_rows)
    same_core(read_parquet_rows(eval_sets.prepare_eval_set(set_name, tmp_path / "jl", str(jl))))
    if set_name == "aime24":
        rows = read_parquet_rows(tmp_path / "jl" / "aime24.parquet")
        assert rows[0]["extra_info"]["year"] == "2024"
    if set_name == "olympiadbench":  # only the hub `answer` column, no final_answer
        only_answer = [{k: v for k, v in r.items() if k != "final_answer"} for r in hub_rows]
        p = eval_sets.prepare_eval_set(set_name, tmp_path / "oa", str(_write_jsonl(tmp_path / "oa.jsonl", only_answer)))
        same_core(read_parquet_rows(p))


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------


def _malformed_amc(tmp_path: Path) -> Path:
    good = {"id": 0, "problem": "What is $2+3$?", "answer": 5.0, "url": "u", "question": "What is $2+3$?"}
    return _write_jsonl(
        tmp_path / "amc23_bad.jsonl",
        [
            good,  # row 1
            {k: v for k, v in good.items() if k not in ("problem", "question")},  # row 2: no problem
            {**good, "problem": "   "},  # row 3: empty
            {**good, "answer": [5]},  # row 4: wrong type
            '{"id": 4, "problem": "broken',  # row 5: invalid JSON
            {**good, "id": 5, "answer": None},  # row 6: missing answer
            {**good, "id": 6, "problem": "What is $3+9$?", "question": "What is $3+9$?", "answer": 12.0},  # row 7: good
        ],
    )


def test_malformed_rows_reported(tmp_path, capsys):
    src = _malformed_amc(tmp_path)
    rows, errors = _checked("amc23", src)
    assert len(rows) == 2 and len(errors) == 5
    assert errors[:3] + errors[4:] == [
        f"{src}:row 2: field 'problem': missing",
        f"{src}:row 3: field 'problem': empty string",
        f"{src}:row 4: field 'answer': expected a number or string, got list",
        f"{src}:row 6: field 'answer': missing",
    ]
    assert errors[3].startswith(f"{src}:row 5: field '*': invalid JSON (Unterminated string")
    out = tmp_path / "out"
    rc = eval_sets.main(["--out", str(out), "--sets", "amc23", "--source", f"amc23={src}"])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{src}:row 2: field 'problem': missing" in err and f"{src}:row 6: field 'answer': missing" in err
    assert "5 invalid row(s) of 7" in err
    assert not (out / "amc23.parquet").exists()
    with pytest.raises(DataPrepError, match="row 2: field 'problem'") as e:
        convert("amc23", src, out, split_label="test", messages_fn=common.eval_messages)
    assert "\n" not in str(e.value) and "--skip-invalid" in str(e.value) and len(e.value.details) == 5
    assert sorted(p.name for p in out.iterdir()) == []  # nothing written, no temporary file left


def test_skip_invalid_writes_rejects(tmp_path, caplog):
    src = _malformed_amc(tmp_path)
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="data_prep"):
        assert eval_sets.main(["--out", str(out), "--sets", "amc23", "--source", f"amc23={src}", "--skip-invalid"]) == 0
    assert "skipped 5 invalid row(s) of 7" in caplog.text
    rows = read_parquet_rows(out / "amc23.parquet")
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["5", "12"]
    assert [r["extra_info"]["answer"] for r in rows] == ["5", "12"]
    assert [r["extra_info"]["index"] for r in rows] == [0, 6]  # source positions survive
    rejects = _jsonl_rows(out / "amc23.rejects.jsonl")
    assert [(r["row"], r["field"]) for r in rejects] == [(2, "problem"), (3, "problem"), (4, "answer"), (5, "*"), (6, "answer")]
    assert all(r["message"].startswith(f"{src}:row {r['row']}: field '{r['field']}': ") for r in rejects)
    assert rejects[2]["data"]["answer"] == [5]
    # a later clean run removes the stale rejects file
    clean = _write_jsonl(tmp_path / "clean.jsonl", [{"problem": "What is $1+1$?", "answer": 2.0}])
    assert eval_sets.main(["--out", str(out), "--sets", "amc23", "--source", f"amc23={clean}", "--skip-invalid"]) == 0
    assert not (out / "amc23.rejects.jsonl").exists()


def test_minerva_without_box_and_olympiad_bad_final_answer(tmp_path):
    m = _write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "solution": "no box", "type": "t", "idx": 0}])
    assert _checked("minerva", m)[1] == [f"{m}:row 1: field 'solution': no \\boxed{{}} answer in solution"]
    o = _write_jsonl(tmp_path / "o.jsonl", [{"question": "q", "final_answer": []}, {"question": "q", "final_answer": "$3$"}])
    rows, errors = _checked("olympiadbench", o)
    assert errors == [f"{o}:row 1: field 'final_answer': empty list"]
    assert rows[0]["reward_model"]["ground_truth"] == "$3$" and rows[0]["extra_info"]["answer"] == "3"


# ----------------------------------------------------------------------------------------------
# determinism and atomic writes
# ----------------------------------------------------------------------------------------------


def test_deterministic_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    pa_ = open_rs.prepare_open_rs(a, source=str(FIXTURE))
    pb = open_rs.prepare_open_rs(b, source=str(FIXTURE))
    assert pa_.read_bytes() == pb.read_bytes()
    before = pa_.read_bytes()
    open_rs.prepare_open_rs(a, source=str(FIXTURE))  # overwrite in place
    assert pa_.read_bytes() == before
    assert sorted(p.name for p in a.iterdir()) == ["open_rs.parquet"]  # no temp files left
    assert b"pandas" not in before
    # a separate process (different hash seed) writes identical bytes through the CLI
    c = tmp_path / "c"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    r = subprocess.run(
        [sys.executable, "-m", "data_prep.open_rs", "--out", str(c), "--source", str(FIXTURE)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert (c / "open_rs.parquet").read_bytes() == before


def test_real_eval_bytes_deterministic(shared_data, eval_out, tmp_path):
    p = eval_sets.prepare_eval_set("olympiadbench", tmp_path, str(shared_data / "olympiadbench.jsonl"))
    assert p.read_bytes() == (eval_out / "olympiadbench.parquet").read_bytes()


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    import errno

    from data_prep import output

    path = open_rs.prepare_open_rs(tmp_path, source=str(FIXTURE))
    old = path.read_bytes()

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output.os, "replace", boom)
    smaller = _write_jsonl(tmp_path.parent / "two.jsonl", _jsonl_rows(FIXTURE)[:2])
    with pytest.raises(DataPrepError, match=r"^--out .*open_rs.parquet: cannot write \(No space left on device\)$"):
        open_rs.prepare_open_rs(tmp_path, source=str(smaller))
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["open_rs.parquet"]


# ----------------------------------------------------------------------------------------------
# Open-RS
# ----------------------------------------------------------------------------------------------


def test_open_rs_fixture_converts(tmp_path):
    assert open_rs.main(["--out", str(tmp_path), "--source", str(FIXTURE)]) == 0
    rows = read_parquet_rows(tmp_path / "open_rs.parquet")
    raw = _jsonl_rows(FIXTURE)
    assert len(rows) == len(raw) == 8
    for i, (r, x) in enumerate(zip(rows, raw)):
        assert r["data_source"] == "cwgrpo/open_rs"
        assert r["prompt"] == [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": x["problem"]}]
        assert r["reward_model"] == {"style": "rule", "ground_truth": x["solution"]}
        assert r["extra_info"]["answer"] == x["answer"]  # boxed(solution) == answer column in the fixture
        assert r["extra_info"]["split"] == "train" and r["extra_info"]["index"] == i
        assert r["extra_info"]["level"] == x["level"] and r["extra_info"]["gold_field"] == "solution"
    assert open_rs.main(["--out", str(tmp_path / "nosys"), "--source", str(FIXTURE), "--no-system-prompt"]) == 0
    rows = read_parquet_rows(tmp_path / "nosys" / "open_rs.parquet")
    assert all([m["role"] for m in r["prompt"]] == ["user"] for r in rows)


def test_open_rs_hub_default_and_invalid(tmp_path, monkeypatch, capsys):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network in tests: what a user with a cached copy sets

    raw = _jsonl_rows(FIXTURE)
    calls = []

    def fake_load_dataset(path, split=None, **kw):
        calls.append((path, split))
        return datasets.Dataset.from_list(raw + [{"problem": "", "solution": "x", "answer": "1", "level": "Easy"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert open_rs.main(["--out", str(tmp_path)]) == 1
    assert "knoveleng/open-rs:row 9: field 'problem': empty string" in capsys.readouterr().err
    assert calls == [("knoveleng/open-rs", "train")]
    assert open_rs.main(["--out", str(tmp_path), "--skip-invalid"]) == 0
    assert len(read_parquet_rows(tmp_path / "open_rs.parquet")) == 8
    assert _jsonl_rows(tmp_path / "open_rs.rejects.jsonl")[0]["row"] == 9


# ----------------------------------------------------------------------------------------------
# decontamination
# ----------------------------------------------------------------------------------------------


def _small_eval_dir(tmp_path: Path) -> Path:
    """A MATH-500-schema eval parquet holding the planted item plus two unrelated problems."""
    planted = _jsonl_rows(FIXTURE)[PLANTED_POSITION]
    rows = [
        {"problem": "Compute the number of ways to tile a $2 \\times 10$ board with dominoes.", "solution": "$\\boxed{89}$",
         "answer": "89", "subject": "Counting", "level": 3, "unique_id": "x/1"},
        {"problem": planted["problem"], "solution": planted["solution"], "answer": planted["answer"],
         "subject": "Precalculus", "level": 2, "unique_id": "test/precalculus/807.json"},
        {"problem": "Let $f(x) = x^2 + 1$. Find $f(f(2))$.", "solution": "$\\boxed{26}$", "answer": "26",
         "subject": "Algebra", "level": 1, "unique_id": "x/2"},
    ]
    src = _write_jsonl(tmp_path / "math500_small.jsonl", rows)
    d = tmp_path / "evals"
    eval_sets.prepare_eval_set("math500", d, str(src))
    return d


def test_normalise_ignores_latex_spacing():
    a = decontaminate.normalise(r"Compute $\dfrac{1}{2}\,+\left(3\right)$ , then \quad stop.")
    b = decontaminate.normalise(r"compute $\frac{1}{2} + (3)$ then stop")
    assert a == b == ["compute", "frac", "1", "2", "3", "then", "stop"]


def test_decontamination_finds_planted_duplicate_and_drops_it(tmp_path, caplog):
    evals = _small_eval_dir(tmp_path)
    train = open_rs.prepare_open_rs(tmp_path / "plain", source=str(FIXTURE))
    report = tmp_path / "report.csv"
    clean = tmp_path / "clean.parquet"
    rc = decontaminate.main(
        ["--train", str(train), "--eval", str(evals), "--report", str(report), "--drop-contaminated", "--out", str(clean)]
    )
    assert rc == 0
    rep = list(csv.DictReader(report.open()))
    flagged = [r for r in rep if r["contaminated"] == "true"]
    assert [(r["train_index"], r["eval_set"], r["eval_index"], r["score"]) for r in flagged] == [
        (str(PLANTED_POSITION), "math500", "1", "1.0000")
    ]
    kept = read_parquet_rows(clean)
    assert len(kept) == 7 and PLANTED_POSITION not in [r["extra_info"]["index"] for r in kept]
    assert _jsonl_rows(tmp_path / "clean.contaminated.jsonl")[0]["index"] == PLANTED_POSITION

    # the same through open_rs prep
    out = tmp_path / "ors"
    assert open_rs.main(
        ["--out", str(out), "--source", str(FIXTURE), "--decontaminate-against", str(evals), "--drop-contaminated"]
    ) == 0
    rows = read_parquet_rows(out / "open_rs.parquet")
    assert len(rows) == 7
    assert [r["extra_info"]["index"] for r in rows] == [0, 1, 2, 3, 4, 6, 7]
    dropped = _jsonl_rows(out / "open_rs.contaminated.jsonl")
    assert [(d["index"], d["eval_set"], d["score"]) for d in dropped] == [(PLANTED_POSITION, "math500", 1.0)]
    # report-only: nothing dropped, report written
    out2 = tmp_path / "ors2"
    assert open_rs.main(["--out", str(out2), "--source", str(FIXTURE), "--decontaminate-against", str(evals)]) == 0
    assert len(read_parquet_rows(out2 / "open_rs.parquet")) == 8
    assert (out2 / "open_rs.contamination.csv").is_file() and not (out2 / "open_rs.contaminated.jsonl").exists()


def test_decontaminate_cli_copies_kept_jsonl_lines(tmp_path, capsys):
    """A raw jsonl training file is cleaned into jsonl, its kept lines byte for byte; other --out types are refused."""
    evals = _small_eval_dir(tmp_path)
    clean = tmp_path / "clean.jsonl"
    argv = ["--train", str(FIXTURE), "--eval", str(evals), "--report", str(tmp_path / "r.csv"), "--drop-contaminated"]
    assert decontaminate.main(argv + ["--out", str(clean)]) == 0
    lines = FIXTURE.read_bytes().splitlines(keepends=True)
    assert clean.read_bytes() == b"".join(line for i, line in enumerate(lines) if i != PLANTED_POSITION)
    capsys.readouterr()
    assert decontaminate.main(argv + ["--out", str(tmp_path / "clean.parquet")]) == 1
    assert capsys.readouterr().err == (f"error: --out {tmp_path / 'clean.parquet'}: must be a file of the same type as "
                                       f"--train ({FIXTURE.name}: .parquet or .jsonl)\n")


def test_decontamination_paraphrase_and_threshold():
    planted = _jsonl_rows(FIXTURE)[PLANTED_POSITION]["problem"]
    edited = planted.replace("rectangular", "Cartesian").replace("$r > 0$", "$r>0$") + " Show your work."
    train = [decontaminate.Text("train", 0, 0, edited, "t"), decontaminate.Text("train", 1, 1, "What is 2+2?", "t")]
    ev = [decontaminate.Text("math500", 0, 0, planted, "e")]
    ov = decontaminate.find_overlaps(train, ev, n=13)
    assert len(ov) == 1 and ov[0].train.position == 0 and 0.5 <= ov[0].score < 1.0
    assert decontaminate.contaminated_positions(ov, 0.5).keys() == {0}
    assert decontaminate.contaminated_positions(ov, 0.99) == {}


def test_decontamination_real_eval_and_speed(shared_data, eval_out):
    """Open-RS scale (7000 train rows) against the ~1500 real eval rows stays fast."""
    import random

    evals = decontaminate.load_eval_texts([eval_out])
    assert len(evals) == sum(EXPECTED_ROWS.values())
    raw_evals = decontaminate.load_eval_texts([shared_data])  # raw jsonl folders work too
    assert len(raw_evals) == len(evals)
    rng = random.Random(0)
    train = []
    for i in range(7000):
        words = evals[(i * 7) % len(evals)].text.split()
        rng.shuffle(words)
        train.append(decontaminate.Text("train", i, i, " ".join(words), "synthetic"))
    planted = evals[100]  # a MATH-500 item inserted verbatim
    train[1234] = decontaminate.Text("train", 1234, 1234, planted.text, "synthetic")
    t0 = time.perf_counter()
    ov = decontaminate.find_overlaps(train, evals)
    elapsed = time.perf_counter() - t0
    bad = decontaminate.contaminated_positions(ov, 0.5)
    assert 1234 in bad and bad[1234].eval.dataset == "math500" and bad[1234].score == 1.0
    assert elapsed < 15, elapsed


# ----------------------------------------------------------------------------------------------
# end to end through verl's RLHFDataset
# ----------------------------------------------------------------------------------------------


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[PAD]": 1, "</s>": 2, "<|user|>": 3, "<|system|>": 4, "<|assistant|>": 5}
    for w in "what is the of a and to in find compute solve".split():
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="</s>")
    hf.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|> {% endif %}"
    )
    return hf


def _verl_data_config(tmp_path: Path, **overrides):
    import verl
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(verl.__file__).parent / "trainer" / "config" / "data" / "legacy_data.yaml")
    cfg.tool_config_path = None  # interpolations into actor_rollout_ref do not resolve in the data subtree
    cfg.function_tool_path = None
    cfg.cache_dir = str(tmp_path / "verl_cache")
    for k, v in overrides.items():
        cfg[k] = v
    return cfg


def test_verl_rlhf_dataset_end_to_end(tmp_path):
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    train = open_rs.prepare_open_rs(tmp_path / "train", source=str(FIXTURE))
    evals = _small_eval_dir(tmp_path)
    tok = _tiny_tokenizer()
    cfg = _verl_data_config(tmp_path, filter_overlong_prompts=True, max_prompt_length=512)

    ds = RLHFDataset(str(train), tok, cfg)
    assert len(ds) == 8
    item = ds[0]
    raw = _jsonl_rows(FIXTURE)[0]
    assert item["raw_prompt"] == [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": raw["problem"]}]
    assert item["data_source"] == "cwgrpo/open_rs"
    assert item["reward_model"]["ground_truth"] == raw["solution"] and item["extra_info"]["answer"] == "50"
    assert item["index"] == 0 and item["extra_info"]["index"] == 0
    assert item["tools_kwargs"] == {} and item["interaction_kwargs"] == {}
    assert item["dummy_tensor"].shape == (1,)
    # the prompt tokenizes through the chat template, as the agent loop / length filter will do it
    ids = tok.apply_chat_template(item["raw_prompt"], add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert len(ids) > 10 and ids[0] == tok.convert_tokens_to_ids("<|system|>")
    batch = collate_fn([ds[i] for i in range(4)])
    assert batch["dummy_tensor"].shape == (4, 1) and len(batch["raw_prompt"]) == 4

    # a tight max_prompt_length filters by the tokenized chat prompt (proves the template path runs)
    short = RLHFDataset(str(train), tok, _verl_data_config(tmp_path, filter_overlong_prompts=True, max_prompt_length=20))
    assert len(short) == 0

    vds = RLHFDataset([str(evals / "math500.parquet")], tok, cfg)
    assert len(vds) == 3 and vds[1]["raw_prompt"][0]["content"].startswith(EVAL_INSTRUCTION)


def test_verl_rlhf_dataset_all_real_eval_sets_concatenate(eval_out, tmp_path):
    """data.val_files=[all five]: the shared schema lets verl concatenate them into one dataset."""
    from verl.utils.dataset.rl_dataset import RLHFDataset

    files = [str(eval_out / f"{s}.parquet") for s in data_sets.evaluation_keys()]
    ds = RLHFDataset(files, _tiny_tokenizer(), _verl_data_config(tmp_path, filter_overlong_prompts=False))
    assert len(ds) == sum(EXPECTED_ROWS.values())
    first = {}
    for i in range(len(ds)):
        first.setdefault(ds.dataframe[i]["data_source"], i)
    assert set(first) == {data_sets.get(s).data_source for s in data_sets.evaluation_keys()}
    item = ds[first["cwgrpo/amc23"]]
    assert item["reward_model"]["ground_truth"] == "27" and item["raw_prompt"][0]["role"] == "user"


# ----------------------------------------------------------------------------------------------
# contract with the reward (cwgrpo_verl.reward)
# ----------------------------------------------------------------------------------------------


def test_reward_scores_boxed_answers(eval_out):
    """One row per set: the bare answer, boxed in a model-like response, scores 1 against our ground_truth."""
    for set_name in data_sets.evaluation_keys():
        r = read_parquet_rows(eval_out / f"{set_name}.parquet")[3]
        out = reward.compute_score(
            r["data_source"], reward.model_like_response(r["extra_info"]["answer"]), r["reward_model"]["ground_truth"]
        )
        assert out["acc"] == 1.0, (set_name, r["extra_info"]["answer"], out)
