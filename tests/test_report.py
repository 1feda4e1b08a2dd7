"""The report CLI on logs written by verl's own loggers (``verl.utils.tracking.Tracking``), checked by hand.

The fixtures in ``tests/fixtures/logs/`` are produced by :func:`generate_fixtures` (regenerate them with
``python tests/test_report.py``); ``test_committed_fixtures_match_verl`` fails if verl's format drifts.
Every failure of the issue "sturdy command-line tools" has a test here that reproduces it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cwgrpo_verl import report

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "logs"
SETS = ["cwgrpo/aime24", "cwgrpo/math500", "cwgrpo/amc23", "cwgrpo/minerva", "cwgrpo/olympiadbench"]
# Table 2 of the paper (1.5B) as fractions: base, GRPO, CW-GRPO; GRPO at step 2 is made up.
BASE_ACC = [0.288, 0.828, 0.629, 0.265, 0.433]
GRPO_ACC = [0.333, 0.850, 0.675, 0.272, 0.499]
GRPO_ACC_STEP2 = [0.300, 0.840, 0.650, 0.270, 0.480]
CW_ACC = [0.300, 0.870, 0.775, 0.298, 0.520]
FRACS = ["0.01pct", "1pct", "20pct", "40pct", "100pct"]
GRPO_ENTROPY = [0.60, 0.52, 0.45, 0.40]
CW_ENTROPY = [0.60, 0.58, 0.57, 0.56]
# covariance tail (top q / bottom q means) per fraction over steps 1..4, as the recipe trainer logs it (cov/*)
GRPO_POS = {"0.01pct": [11.5, 13.5, 12.0, 12.0], "1pct": [3.3] * 4, "20pct": [0.36, 0.58, 0.36, 0.58],
            "40pct": [0.22, 0.33, 0.22, 0.33], "100pct": [0.04, 0.06, 0.04, 0.06]}
GRPO_NEG = {f: [-v / 2 for v in vals] for f, vals in GRPO_POS.items()}
CW_POS = {"0.01pct": [4.0, 3.0, 2.0, 1.0], "1pct": [1.0] * 4, "20pct": [0.2] * 4, "40pct": [0.1] * 4,
          "100pct": [0.01] * 4}
CW_NEG = {"0.01pct": [-2.0, -1.0, -1.0, -2.0], "1pct": [-1.0] * 4, "20pct": [-0.2] * 4, "40pct": [-0.1] * 4,
          "100pct": [-0.01] * 4}
LOSS_POS = 99.0  # what the cw_grpo loss logs itself (actor/cw/cov_*): Table 1 must prefer cov/*


def _val(acc, n=1, extra=True):
    out = {f"val-core/{ds}/acc/mean@{n}": np.float64(a) for ds, a in zip(SETS, acc)}
    if extra:  # what verl also logs next to the core metric
        out.update({f"val-aux/{ds}/reward/mean@{n}": np.float64(2 * a) for ds, a in zip(SETS, acc)})
    return out


def _train(step, entropy, pos, neg, loss_stats=False, prefix="cov/", stem=""):
    """One training step's metrics: the trainer's observe-only cov/* (every method) and, for cw_grpo, the loss's."""
    out = {"training/global_step": step, "actor/entropy": np.float64(entropy),
           "actor/pg_loss": np.float64(-0.01 * step),
           "timing_s/step": 12.5, f"{prefix}{stem}mean": np.float64(pos["100pct"][step - 1]),
           f"{prefix}{stem}std": np.float64(0.5), f"{prefix}num_tokens": np.float32(4096)}
    for frac in FRACS:
        out[f"{prefix}{stem}pos_top_{frac}"] = np.float64(pos[frac][step - 1])
        out[f"{prefix}{stem}neg_top_{frac}"] = np.float64(neg[frac][step - 1])
    if loss_stats:
        out.update({f"actor/cw/cov_{s}_top_{f}": np.float64(LOSS_POS) for s in ("pos", "neg") for f in FRACS})
        out["actor/cw/weight_mean"] = np.float64(1.0)
    return out


def _log_steps():
    """(experiment, [(step, metrics)]) exactly as verl's trainer calls logger.log (val merged into the step)."""
    grpo = [(0, _val(BASE_ACC))] + [(s, _train(s, GRPO_ENTROPY[s - 1], GRPO_POS, GRPO_NEG)) for s in range(1, 5)]
    grpo[2][1].update(_val(GRPO_ACC_STEP2))
    grpo[4][1].update(_val(GRPO_ACC))
    cw = [(0, _val(BASE_ACC, n=4))]
    cw += [(s, _train(s, CW_ENTROPY[s - 1], CW_POS, CW_NEG, loss_stats=True)) for s in range(1, 5)]
    cw[4][1].update(_val(CW_ACC, n=4))
    return {"base_eval": [(0, _val(BASE_ACC))], "grpo": grpo, "cw_grpo": cw}


@contextlib.contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def _tracking(experiment, backends, steps):
    from verl.utils.tracking import Tracking

    tracker = Tracking(project_name="cwgrpo", experiment_name=experiment, default_backend=backends)
    for step, data in steps:
        tracker.log(data=data, step=step)
    tracker.finish()


def file_log(path: Path, steps) -> Path:
    """Write ``steps`` with verl's own file logger to ``path``."""
    with _env(VERL_FILE_LOGGER_PATH=str(path)), contextlib.redirect_stdout(io.StringIO()):
        _tracking("x", ["file"], steps)
    return path


def generate_fixtures(out: Path, tensorboard: bool = False) -> dict[str, Path]:
    """Write base_eval.jsonl and grpo.jsonl (file logger), cw_grpo.log (console logger, as Ray prints it)."""
    out.mkdir(parents=True, exist_ok=True)
    runs = _log_steps()
    with _env(VERL_FILE_LOGGER_ROOT=str(out)), contextlib.redirect_stdout(io.StringIO()):
        for experiment in ("base_eval", "grpo"):
            _tracking(experiment, ["file"], runs[experiment])  # -> <root>/<project>/<experiment>.jsonl
    paths = {name: out / f"{name}.jsonl" for name in ("base_eval", "grpo")}
    for name, path in paths.items():
        (out / "cwgrpo" / f"{name}.jsonl").replace(path)
    (out / "cwgrpo").rmdir()
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        _tracking("cw_grpo", ["console"], runs["cw_grpo"])
    noise = ["{'trainer': {'logger': ['console'], 'project_name': 'cwgrpo'}}",  # verl pprints its config first
             "(TaskRunner pid=4242) Training Progress:  25%|##5       | 1/4 [00:12<00:37, 12.50s/it]",
             "\x1b[36m(WorkerDict pid=4343)\x1b[0m [Rank 0] some worker message: x:1 - y:2"]
    lines = noise + [f"\x1b[36m(TaskRunner pid=4242)\x1b[0m {line}" for line in captured.getvalue().splitlines()]
    paths["cw_grpo"] = out / "cw_grpo.log"
    paths["cw_grpo"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    if tensorboard:
        paths["grpo_tb"] = out / "tb_grpo"
        with _env(TENSORBOARD_DIR=str(paths["grpo_tb"])), contextlib.redirect_stdout(io.StringIO()):
            _tracking("grpo", ["tensorboard"], runs["grpo"])
    return paths


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return generate_fixtures(tmp_path_factory.mktemp("logs"), tensorboard=True)


@pytest.fixture(scope="module")
def default_report(logs, tmp_path_factory):
    """(output directory, stderr) of one default CLI run on the three fixtures, shared by the tests that read it."""
    out = tmp_path_factory.mktemp("report")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert _cli(logs, out) == 0
    return out, err.getvalue()


def _cli(logs, out, *extra):
    """The training logs as runs (Table 1, the figure, the training-time validation) and, for Tables 2 and 3, as
    evaluations too (their validation scores, without recorded settings)."""
    runs = [("GRPO", logs["grpo"]), ("CW-GRPO", logs["cw_grpo"])]
    return report.main(["--base", f"Base={logs['base_eval']}", *(a for n, p in runs for a in ("--run", f"{n}={p}")),
                        *(a for n, p in runs for a in ("--eval", f"{n}={p}")), "--out", str(out), *extra])


def _one_line_error(capsys, *parts):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for part in parts:
        assert part in err, err
    return err


def test_committed_fixtures_match_verl(logs):
    for name in ("base_eval.jsonl", "grpo.jsonl", "cw_grpo.log"):
        assert (FIXTURES / name).read_bytes() == Path(logs[name.split(".")[0]]).read_bytes(), name


def test_formats_agree(logs):
    jsonl, console, tb = (report.load_run(logs[k]) for k in ("grpo", "cw_grpo", "grpo_tb"))
    assert sorted(jsonl) == sorted(tb) == sorted(console) == [0, 1, 2, 3, 4]
    assert jsonl[4]["val-core/cwgrpo/aime24/acc/mean@1"] == 0.333
    assert jsonl[3]["actor/entropy"] == 0.45 and jsonl[1]["training/global_step"] == 1
    assert console[4]["val-core/cwgrpo/amc23/acc/mean@4"] == 0.775  # parsed from np.float64(0.775)
    assert console[2]["cov/pos_top_0.01pct"] == 3.0 and console[1]["cov/num_tokens"] == 4096
    assert console[2]["actor/cw/cov_pos_top_0.01pct"] == LOSS_POS
    assert "x" not in console[1] and len(console[4]) == len(_log_steps()["cw_grpo"][4][1])  # worker noise ignored
    assert set(tb[4]) == set(jsonl[4])
    assert all(tb[s][k] == pytest.approx(v, rel=1e-6) for s in jsonl for k, v in jsonl[s].items())


def test_report_reads_the_keys_the_trainer_writes():
    """The cov/* names the report reads are the ones the recipe trainer's covariance_metrics emits."""
    import torch

    from cwgrpo_verl.scope import covariance_metrics, group_covariance

    mask = torch.ones(4, 3, dtype=torch.bool)
    cov = group_covariance(-torch.rand(4, 3), torch.tensor([[1.0] * 3, [-1.0] * 3] * 2), mask, [0, 0, 1, 1])
    logged = covariance_metrics(cov, mask)
    source = report.COV_SOURCES[0]
    assert {source.key(sign, frac) for sign in ("pos", "neg") for frac in FRACS} <= set(logged)
    assert set(FRACS) == set(report.tables.TAIL_FRACTIONS)


def test_table2_hand_computed(default_report):
    tmp_path, err = default_report
    md = (tmp_path / "table2.md").read_text().splitlines()
    assert md[0] == "| Method | AIME24 | MATH-500 | AMC23 | Minerva | OlympiadBench | Avg | Δ vs Base |"
    # avg (28.8+82.8+62.9+26.5+43.3)/5 = 48.86; (33.3+85+67.5+27.2+49.9)/5 = 52.58; (30+87+77.5+29.8+52)/5 = 55.26
    assert md[2] == "| Base | 28.8 | 82.8 | 62.9 | 26.5 | 43.3 | 48.9 | — |"
    assert md[3] == "| GRPO | 33.3 | 85.0 | 67.5 | 27.2 | 49.9 | 52.6 | +3.7 |"
    assert md[4] == "| CW-GRPO | 30.0 | 87.0 | 77.5 | 29.8 | 52.0 | 55.3 | +6.4 |"
    assert "GRPO @ step 4" in md[-2] and "Base @ step 0" in md[-2] and md[-1].startswith("Settings: not recorded")
    csv = pd.read_csv(tmp_path / "table2.csv").set_index("run")
    assert list(csv.index) == ["Base", "GRPO", "CW-GRPO"]
    assert csv.loc["GRPO", "Avg"] == pytest.approx(52.58, abs=1e-3)
    assert csv.loc["CW-GRPO", "Δ Avg"] == pytest.approx(6.40, abs=1e-3)
    assert csv.loc["CW-GRPO", "Δ AMC23"] == pytest.approx(14.6, abs=1e-3)
    assert csv.loc["CW-GRPO", "step"] == 4 and np.isnan(csv.loc["Base", "Δ Avg"])
    assert "warning" not in err


def test_table2_at_step_with_missing_validation(logs, tmp_path, capsys):
    assert _cli(logs, tmp_path, "--step", "2") == 0
    md = (tmp_path / "table2.md").read_text().splitlines()
    assert md[2].startswith("| Base | 28.8 |")  # the base run always uses its last validation
    assert md[3] == "| GRPO | 30.0 | 84.0 | 65.0 | 27.0 | 48.0 | 50.8 | +1.9 |"  # 254/5 = 50.8, 50.8-48.86 = 1.94
    assert md[4] == "| CW-GRPO | — | — | — | — | — | — | — |"
    assert "'CW-GRPO' has no validation metrics" in capsys.readouterr().err


def test_table3_every_checkpoint_of_every_run(logs, default_report, tmp_path, capsys):
    md = (default_report[0] / "table3.md").read_text().splitlines()
    assert md[0] == "| Method | Step | AIME24 | MATH-500 | AMC23 | Minerva | OlympiadBench | Avg |"
    assert md[2:8] == ["| Base | 0 | 28.8 | 82.8 | 62.9 | 26.5 | 43.3 | 48.9 |",
                       "| GRPO | 0 | 28.8 | 82.8 | 62.9 | 26.5 | 43.3 | 48.9 |",
                       "| GRPO | 2 | 30.0 | 84.0 | 65.0 | 27.0 | 48.0 | 50.8 |",
                       "| GRPO | 4 | 33.3 | 85.0 | 67.5 | 27.2 | 49.9 | 52.6 |",
                       "| CW-GRPO | 0 | 28.8 | 82.8 | 62.9 | 26.5 | 43.3 | 48.9 |",
                       "| CW-GRPO | 4 | 30.0 | 87.0 | 77.5 | 29.8 | 52.0 | 55.3 |"]
    csv = pd.read_csv(default_report[0] / "table3.csv")
    assert list(zip(csv["run"], csv["step"])) == [("Base", 0), ("GRPO", 0), ("GRPO", 2), ("GRPO", 4),
                                                  ("CW-GRPO", 0), ("CW-GRPO", 4)]
    assert csv.loc[3, "AMC23"] == pytest.approx(67.5)
    assert _cli(logs, tmp_path, "--checkpoints", "4,2") == 0
    md = (tmp_path / "table3.md").read_text().splitlines()
    assert [line.split(" | ")[:2] for line in md[2:7]] == [["| Base", "0"], ["| GRPO", "2"], ["| GRPO", "4"],
                                                          ["| CW-GRPO", "2"], ["| CW-GRPO", "4"]]
    assert md[5] == "| CW-GRPO | 2 | — | — | — | — | — | — |"  # asked for, not validated: kept
    assert "run 'CW-GRPO' did not validate at step 2 (it did at 0, 4)" in capsys.readouterr().err


def test_table1_every_method_side_by_side_with_entropy(logs, tmp_path, capsys):
    """GRPO (file logger), CW-GRPO (console: cov/* preferred to the loss's own), an older CW log (fallback, said),
    a run without covariance statistics (a column of dashes, said), Clip-Cov (tensorboard)."""
    old_cw = file_log(tmp_path / "old_cw.jsonl", [(s, _train(s, CW_ENTROPY[s - 1], CW_POS, CW_NEG, prefix="actor/cw/",
                                                             stem="cov_")) for s in range(1, 5)])
    no_cov = file_log(tmp_path / "no_cov.jsonl", [(s, {"actor/entropy": 0.5}) for s in range(1, 5)])
    tb = tmp_path / "tb"
    with _env(TENSORBOARD_DIR=str(tb)), contextlib.redirect_stdout(io.StringIO()):
        _tracking("clip_cov", ["tensorboard"], [(s, _train(s, 0.3, CW_POS, CW_NEG)) for s in range(1, 5)])
    assert _cli(logs, tmp_path / "o", "--tail-steps", "2", "--run", f"Old-CW={old_cw}", "--run", f"NoCov={no_cov}",
                "--run", f"Clip-Cov={tb}") == 0
    err = capsys.readouterr().err
    md = (tmp_path / "o" / "table1.md").read_text().splitlines()
    assert md[0] == ("| Tokens | GRPO positive | GRPO negative | CW-GRPO positive | CW-GRPO negative | Old-CW positive "
                     "| Old-CW negative | NoCov positive | NoCov negative | Clip-Cov positive | Clip-Cov negative |")
    # first 2 steps: GRPO (11.5+13.5)/2 = 12.5, neg = -pos/2; CW (4+3)/2 = 3.5, (-2-1)/2 = -1.5
    assert md[2] == "| top 0.01% | 12.500 | -6.250 | 3.500 | -1.500 | 3.500 | -1.500 | — | — | 3.500 | -1.500 |"
    assert md[4] == "| top 20% | 0.470 | -0.235 | 0.200 | -0.200 | 0.200 | -0.200 | — | — | 0.200 | -0.200 |"
    summary = md[md.index("| Method | steps | entropy (nats, mean of actor/entropy) | statistics |") + 2:]
    # entropy over steps 1-2: GRPO (0.60+0.52)/2 = 0.56; CW (0.60+0.58)/2 = 0.59
    assert summary[0].startswith("| GRPO | 1-2 | 0.560 | cov/*: per prompt group")
    assert summary[1].startswith("| CW-GRPO | 1-2 | 0.590 | cov/*:")
    assert summary[2].startswith("| Old-CW | 1-2 | 0.590 | actor/cw/cov_*: the cw_grpo loss's")
    assert summary[3] == "| NoCov | — | 0.500 | — |" and summary[4].startswith("| Clip-Cov | 1-2 | 0.300 | cov/*:")
    assert "run 'Old-CW' has no cov/* statistics (an older log): Table 1 uses its actor/cw/cov_*" in err
    assert "run 'NoCov' logs no covariance statistics" in err
    assert "run 'GRPO' has covariance statistics" not in err  # steps 1-2 are all there
    csv = pd.read_csv(tmp_path / "o" / "table1.csv")
    grpo = csv[csv.run == "GRPO"].set_index("fraction")
    assert tuple(grpo.loc["40pct", ["positive", "negative"]]) == pytest.approx((0.275, -0.1375))
    assert grpo.loc["1pct", "entropy_mean"] == pytest.approx(0.56) and grpo.loc["1pct", "num_steps"] == 2
    assert set(csv.run) == {"GRPO", "CW-GRPO", "Old-CW", "NoCov", "Clip-Cov"} and len(csv) == 5 * 5
    columns = {c.run: c for c in report.table1({n: report.load_run(logs[k]) for n, k in
                                                 [("GRPO", "grpo"), ("CW", "cw_grpo")]})[0]}
    assert columns["GRPO"].cells["0.01pct"] == pytest.approx((12.25, -6.125))  # all 4 steps
    assert columns["CW"].cells["0.01pct"] == pytest.approx((2.5, -1.5))


def test_table1_says_when_a_run_is_shorter_than_the_window(logs, tmp_path):
    runs = {"Base": report.load_run(logs["base_eval"]), "GRPO": report.load_run(logs["grpo"])}
    columns, notes = report.table1(runs, base="Base", tail_steps=50)
    assert [c.run for c in columns] == ["GRPO"] and columns[0].steps == [1, 2, 3, 4]
    assert notes == ["run 'GRPO' has covariance statistics at 4 of the first 50 steps only"]
    text = report.write.write_table1(columns, 50, "Base", tmp_path)
    assert "over the first 50 steps of each run" in text and text == (tmp_path / "table1.md").read_text()


def test_entropy_png(default_report):
    import matplotlib.image as mpimg

    png = default_report[0] / "entropy.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    image = mpimg.imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 1000  # two panels (entropy, val accuracy)
    rgb = (image[..., :3] * 255).astype(np.int64)
    assert rgb.std() > 10 and len(np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])) > 50


# --- failures: each reproduces one of the issue, and now ends in a one-line message --------------------------------

def test_nan_written_by_verl_is_refused_not_averaged(logs, tmp_path, capsys):
    """verl's file logger writes NaN/inf as null; the old report averaged inf into the table."""
    steps = [(s, _train(s, GRPO_ENTROPY[s - 1], GRPO_POS, GRPO_NEG)) for s in range(1, 5)]
    steps[2][1]["actor/entropy"] = np.float64("inf")
    steps[1][1]["actor/grad_norm"] = np.float64("nan")  # not read by the report: no reason to refuse the log
    bad = file_log(tmp_path / "inf.jsonl", steps)
    assert '"actor/entropy":null' in bad.read_text().splitlines()[2]
    assert report.main(["--run", f"X={bad}", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, f"{bad}:3: metric 'actor/entropy' is null (verl's file logger writes NaN and infinity")
    assert report.main(["--run", f"X={bad}", "--out", str(tmp_path / "o"), "--skip-bad-lines"]) == 0
    assert f"{bad}:3: metric 'actor/entropy' is null" in capsys.readouterr().err
    summary = (tmp_path / "o" / "table1.md").read_text().splitlines()[-1]
    assert summary.startswith(f"| X | 1-4 | {(0.60 + 0.52 + 0.40) / 3:.3f} |")  # the inf step left out, never inf


@pytest.mark.parametrize("line, reason", [
    ('{"step": Infinity, "data": {"actor/entropy": 0.5}}', "step inf is not a finite integer"),
    ('{"step": 3, "data": {"actor/entropy": Infinity}}', "metric 'actor/entropy' is inf (not finite)"),
    ('{"step": 3, "data": {"val-core/cwgrpo/aime24/acc/mean@1": NaN}}', "metric 'val-core/cwgrpo/aime24/acc/mean@1' "
                                                                        "is nan (not finite)"),
    ('{"step": 3, "data": {"actor/entropy": "0.5"}}', "metric 'actor/entropy' is not a number: '0.5'"),
    ('{"step": 3, "data": {"actor/entropy": 0.4', "not JSON"),
    ('{"step": 3, "data": {"actor/entropy": ' + "1" * 5000 + "}}", "not JSON"),
    ('{"step": 3, "data": ' + "[" * 100_000 + "]" * 100_000 + "}", "not JSON"),
    (b'{"step": 3, "data": {"actor/entropy": 0.4, "note": "\xff"}}', "not valid UTF-8 (byte 0xff at column 53)"),
])
def test_bad_jsonl_line_names_file_and_line_and_can_be_skipped(logs, tmp_path, capsys, line, reason):
    lines = Path(logs["grpo"]).read_bytes().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(lines[:3] + [line if isinstance(line, bytes) else line.encode()] + lines[3:]) + b"\n")
    assert report.main(["--run", f"X={bad}", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, f"{bad}:4: {reason}", "--skip-bad-lines")
    assert report.load_run(bad, strict=False, used=report.tables.reads()) == report.load_run(logs["grpo"])
    assert f"warning: {bad}:4: {reason}" in capsys.readouterr().err  # the CLI run with the flag: test_nan_...


def test_bad_console_lines(tmp_path, capsys):
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"hello \xff\n(TaskRunner pid=1) step:1 - actor/entropy:0.5 - actor/pg_loss:tensor(1.)\n"
                    b"(TaskRunner pid=1) step:2 - actor/entropy:tensor(0.4)\n"
                    b"(TaskRunner pid=1) step:3 - actor/entropy:0.3 \xfe\n")
    steps = report.load_run(bad, strict=False, used=report.tables.reads())
    assert steps == {1: {"actor/entropy": 0.5}, 2: {}}  # an unread metric ignored, the undecodable line skipped
    assert "bad.log:2" not in capsys.readouterr().err
    with pytest.raises(report.LogError, match=r"bad\.log:3: metric 'actor/entropy' is not a number: 'tensor\(0.4\)'"):
        report.load_run(bad, used=report.tables.reads())
    bad.write_bytes(b"(TaskRunner pid=1) step:3 - actor/entropy:0.3 \xfe\n")
    with pytest.raises(report.LogError, match=r"bad\.log:1: not valid UTF-8"):
        report.load_run(bad)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"\n\n", "no verl metrics in it"),
    (b"run,step,acc\nGRPO,1,0.5\n", "no verl metrics in it"),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "no verl metrics in it"),
])
def test_empty_or_non_log_input_fails(tmp_path, capsys, content, reason):
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    assert report.main(["--run", f"X={path}", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, f"{path}: {reason}")
    assert not (tmp_path / "o").exists()


def test_unreadable_inputs_fail_with_one_line(tmp_path, capsys):
    assert report.main(["--run", f"X={tmp_path / 'missing.jsonl'}", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "missing.jsonl: no such file or directory")
    assert report.main(["--run", f"X={tmp_path}", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, f"{tmp_path}: directory holds no tensorboard event files")
    nothing = file_log(tmp_path / "timing.jsonl", [(1, {"timing_s/step": 3.0})])
    assert report.main(["--run", f"X={nothing}", "--out", str(tmp_path / "o")]) == 1
    _one_line_error(capsys, "no input holds a metric the report reads", "nothing to report")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert report.main(["--run", f"X={FIXTURES / 'grpo.jsonl'}", "--out", str(a_file / "o")]) == 2
    _one_line_error(capsys, f"--out {a_file / 'o'}: cannot create it")


def _two_attempts(tmp_path):
    """Attempt 1: steps 0-4 (checkpoint at 2); attempt 2 resumed from 2: validation at 2, then 3-5 (new values)."""
    first = file_log(tmp_path / "a1.jsonl", _log_steps()["grpo"])
    second_steps = [(2, _val(GRPO_ACC_STEP2))] + [(s, {"actor/entropy": 0.1 * s}) for s in (3, 4, 5)]
    second_steps[-1][1].update(_val(CW_ACC))
    second = file_log(tmp_path / "a2.jsonl", second_steps)
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes(first.read_bytes() + second.read_bytes())  # `cat a1.jsonl a2.jsonl > joined.jsonl`
    return joined


def test_two_runs_in_one_file_are_told_apart(tmp_path, capsys):
    joined = _two_attempts(tmp_path)
    assert report.main(["--run", f"X={joined}", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, f"{joined}:6: step 2 after step 4: this file holds 2 runs (#1 steps 0-4 (lines 1-5); "
                            "#2 steps 2-5 (lines 6-9)); read one with", f"{joined}#resume")
    segments = report.read_segments(joined)
    assert [sorted(s.steps) for s in segments] == [[0, 1, 2, 3, 4], [2, 3, 4, 5]]
    second, note = report.select(segments, "2", joined)
    assert sorted(second) == [2, 3, 4, 5] and "run #2 of 2" in note
    resumed, _ = report.select(segments, "resume", joined)
    assert sorted(resumed) == [0, 1, 2, 3, 4, 5]
    assert resumed[1]["actor/entropy"] == GRPO_ENTROPY[0] and resumed[4] == {"actor/entropy": 0.4}  # attempt 2 wins
    assert resumed[2]["actor/entropy"] == GRPO_ENTROPY[1] and resumed[2]["val-core/cwgrpo/aime24/acc/mean@1"] == 0.3
    assert report.main(["--run", f"X={joined}#resume", "--out", str(tmp_path / "o")]) == 0
    assert "X: " in capsys.readouterr().err
    validation = (tmp_path / "o" / "validation.md").read_text()  # the training-time view of its validation
    assert "| X | 2 | 30.0 |" in validation and "| X | 5 | 30.0 | 87.0 |" in validation and "| X | 4 |" not in validation
    assert not (tmp_path / "o" / "table3.md").exists()  # Tables 2 and 3 come from evaluations only
    assert report.main(["--run", f"X={joined}#3", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, f"{joined}#3: this file holds 2 run(s)")


def test_two_runs_that_log_the_same_step_are_told_apart(tmp_path):
    """Two evaluation-only runs appended to one file both log step 0: two runs, not one overwritten by the other."""
    joined = tmp_path / "evals.jsonl"
    joined.write_bytes(file_log(tmp_path / "e1.jsonl", [(0, _val(GRPO_ACC_STEP2))]).read_bytes()
                       + file_log(tmp_path / "e2.jsonl", [(0, _val(CW_ACC))]).read_bytes())
    segments = report.read_segments(joined)
    assert [sorted(s.steps) for s in segments] == [[0], [0]]
    with pytest.raises(report.LogError, match="this file holds 2 runs"):
        report.select(segments, None, joined)
    # one run that logs one step in two records with different metrics stays one run
    one = file_log(tmp_path / "one.jsonl", [(0, _val(CW_ACC)), (0, {"actor/entropy": 0.5}), (1, {"actor/entropy": 0.4})])
    assert [sorted(s.steps) for s in report.read_segments(one)] == [[0, 1]]


def test_bad_arguments_are_usage_errors(tmp_path, capsys):
    for argv, message in [(["--tail-steps", "0"], "--tail-steps: expected a whole number >= 1"),
                          (["--checkpoints", "50,x"], "--checkpoints: expected comma-separated whole numbers >= 1"),
                          (["--step", "-1"], "--step must be 'last' or a step number"),
                          (["--val-key-pattern", "("], "--val-key-pattern: not a regular expression"),
                          (["--run", "nopath"], "expected NAME=PATH")]:
        with pytest.raises(SystemExit) as exit_info:
            report.main(["--run", f"X={FIXTURES / 'grpo.jsonl'}", "--out", str(tmp_path), *argv])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_wandb_history_rows(tmp_path, capsys):
    """Rows as wandb's ``run.scan_history()`` yields them (``_step``, wandb's own ``_`` keys, None = not logged),
    dumped with json.dumps: the same tables as from the file logger."""
    rows = []
    for step, data in _log_steps()["grpo"]:
        row = {"_step": step, "_runtime": 10.0 * step, "_timestamp": 1.7e9 + step, "actor/entropy": None}
        row.update({k: float(v) for k, v in data.items()})
        rows.append(row)
    path = tmp_path / "grpo.wandb.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    from_wandb, from_file = report.load_run(path), report.load_run(FIXTURES / "grpo.jsonl")
    assert from_wandb == from_file


def test_module_cli(tmp_path, monkeypatch, capsys):
    """``python -m cwgrpo_verl.report`` on the committed fixtures (in-process: a new interpreter re-imports verl)."""
    import runpy

    args = ["--base", f"Base={FIXTURES / 'base_eval.jsonl'}", "--run", f"GRPO={FIXTURES / 'grpo.jsonl'}",
            "--run", f"CW-GRPO={FIXTURES / 'cw_grpo.log'}", "--eval", f"GRPO={FIXTURES / 'grpo.jsonl'}",
            "--out", str(tmp_path / "r")]
    monkeypatch.setattr(sys, "argv", ["python -m cwgrpo_verl.report", *args])
    monkeypatch.delitem(sys.modules, "cwgrpo_verl.report.__main__", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("cwgrpo_verl.report", run_name="__main__")
    assert exit_info.value.code == 0
    assert "| CW-GRPO | 4 | 30.0 | 87.0 | 77.5 | 29.8 | 52.0 | 55.3 |" in capsys.readouterr().out  # validation.md
    expected = {f"{t}.{ext}" for t in ("table1", "table2", "table3", "validation") for ext in ("md", "csv")}
    expected.add("entropy.png")
    assert {p.name for p in (tmp_path / "r").iterdir()} == expected


# --- hostile input: no lost files, no wrong numbers -----------------------------------------------------------------

def _jsonl_log(path: Path, records) -> Path:
    path.write_text("".join(json.dumps({"step": step, "data": data}) + "\n" for step, data in records))
    return path


@pytest.mark.parametrize("far", [10**9, 10**30])
def test_far_apart_steps_cost_memory_by_the_steps_logged(tmp_path, capsys, far):
    """Case 3: one log with step 1 and step 1e9 built a list of every step in between (MemoryError; OverflowError at
    1e30), after writing some tables and not others."""
    log = _jsonl_log(tmp_path / "far.jsonl", [(1, {"actor/entropy": 0.5, "cov/pos_top_1pct": 1.0}),
                                              (far, {"actor/entropy": 0.4, "cov/pos_top_1pct": 2.0})])
    assert report.main(["--run", f"X={log}", "--out", str(tmp_path / "o")]) == 0
    summary = (tmp_path / "o" / "table1.md").read_text().splitlines()[-1]
    assert summary.startswith(f"| X | 1-{far} (2 steps) | 0.450 |"), summary
    assert report.write._steps([3, 4, 5]) == "3-5" and report.write._steps([1, 3]) == "1-3 (2 steps)"


def test_a_failed_run_leaves_the_earlier_report_as_it_was(logs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    assert _cli(logs, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args):
        raise OSError(28, "No space left on device", "entropy.png")

    monkeypatch.setattr(report.cli, "plot_entropy", broken)
    assert _cli(logs, out, "--step", "2") == 2
    _one_line_error(capsys, f"--out {out}: cannot write (No space left on device: entropy.png)")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # table2 at step 2 was not half written


def test_run_names_with_a_pipe_stay_in_their_column_and_line_breaks_are_refused(logs, tmp_path, capsys):
    """Case 4: a run name with `|` shifted its values one column right of their headers and dropped the Δ column."""
    assert report.main(["--base", f"Base={logs['base_eval']}", "--run", f"GRPO|lr 1e-6={logs['grpo']}",
                        "--eval", f"GRPO|lr 1e-6={logs['grpo']}",
                        "--out", str(tmp_path / "o")]) == 0
    md = (tmp_path / "o" / "table2.md").read_text().splitlines()
    assert md[3] == r"| GRPO\|lr 1e-6 | 33.3 | 85.0 | 67.5 | 27.2 | 49.9 | 52.6 | +3.7 |"
    cells = lambda line: len(line.replace(r"\|", "").split("|"))  # noqa: E731
    assert all(cells(line) == cells(md[0]) for line in md[1:4])
    table1 = (tmp_path / "o" / "table1.md").read_text()
    assert r"| Tokens | GRPO\|lr 1e-6 positive | GRPO\|lr 1e-6 negative |" in table1
    assert list(pd.read_csv(tmp_path / "o" / "table2.csv")["run"]) == ["Base", "GRPO|lr 1e-6"]
    capsys.readouterr()
    for name in ("GRPO\nlr", "GRPO\rx", "a\tb"):
        with pytest.raises(SystemExit) as exit_info:
            report.main(["--run", f"{name}={logs['grpo']}", "--out", str(tmp_path / "p")])
        assert exit_info.value.code == 2
        assert f"run name {name!r}: a control character" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_outputs_of_an_earlier_run_that_this_run_does_not_write_are_removed(logs, tmp_path, capsys):
    """table1.* and entropy.png of an earlier run stayed beside the new tables of an evaluation-only run."""
    out = tmp_path / "o"
    (out / "notes.txt").parent.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _cli(logs, out) == 0
    assert report.main(["--base", f"Base={logs['base_eval']}", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "table2.csv", "table2.md", "table3.csv", "table3.md"]
    assert (f"removed table1.md, table1.csv, validation.md, validation.csv, entropy.png of an earlier report from "
            f"{out}") in err
    assert (out / "notes.txt").read_text() == "mine"  # not a file of the report's: left alone


def test_a_log_inside_out_named_as_an_output_is_refused(logs, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    log = out / "table2.md"
    log.write_bytes(Path(logs["grpo"]).read_bytes())
    with pytest.raises(SystemExit) as exit_info:
        report.main(["--run", f"GRPO={log}", "--out", str(out)])
    assert exit_info.value.code == 2
    assert f"GRPO={log}: is {log}, an output of this report (--out)" in capsys.readouterr().err
    assert log.read_bytes() == Path(logs["grpo"]).read_bytes()


@pytest.mark.parametrize("name, content", [
    ("flag.jsonl", '{"step": 1, "data": {"actor/entropy": true}}\n'),
    ("flag.log", "(TaskRunner pid=1) step:1 - actor/entropy:True\n"),
])
def test_booleans_are_not_numbers(tmp_path, capsys, name, content):
    """JSON `true` (and a console `True`) was read as 1.0."""
    path = tmp_path / name
    path.write_text(content)
    assert report.main(["--run", f"X={path}", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, f"{path}:1: metric 'actor/entropy' is not a number: 'True'")
    steps = report.load_run(path, strict=False, used=report.tables.reads())
    assert steps == {1: {}}


def test_accuracy_outside_zero_to_one_is_flagged_not_rescaled(tmp_path, capsys):
    """A percentage logged as 37.5 was shown as 3750.0 with no warning."""
    log = _jsonl_log(tmp_path / "pct.jsonl", [(10, {"val-core/cwgrpo/aime24/acc/mean@1": 37.5,
                                                    "val-core/cwgrpo/math500/acc/mean@1": 0.8})])
    assert report.main(["--eval", f"X={log}", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert ("warning: run 'X', val-core/cwgrpo/aime24/acc/mean@1 at step 10: 37.5 is outside [0, 1] (verl logs "
            "accuracy as a fraction): shown as logged x 100, marked †") in err
    assert err.count("37.5 is outside") == 1  # Table 2 and Table 3 say it once
    md = (tmp_path / "o" / "table2.md").read_text().splitlines()
    assert md[2] == "| X | 3750.0† | 80.0 | 1915.0† | — |"
    assert md[-1].startswith("† logged outside [0, 1]") and md[-2].startswith("Settings: not recorded")
    assert "| X | 10 | 3750.0† | 80.0 | 1915.0† |" in (tmp_path / "o" / "table3.md").read_text()
    csv = pd.read_csv(tmp_path / "o" / "table2.csv", keep_default_na=False)
    assert csv.loc[0, "AIME24"] == 3750.0 and csv.loc[0, "out_of_range"] == "AIME24"


def test_a_datasets_typo_is_warned_about(logs, tmp_path, capsys):
    """`--datasets cwgrpo/math5OO` gave a column of dashes without a warning."""
    assert _cli(logs, tmp_path / "o", "--datasets", "cwgrpo/aime24,cwgrpo/math5OO") == 0
    err = capsys.readouterr().err
    assert err.count("warning: --datasets 'cwgrpo/math5OO': no run logs validation metrics for it (logged: "
                     "cwgrpo/aime24, cwgrpo/math500, cwgrpo/amc23, cwgrpo/minerva, cwgrpo/olympiadbench): its "
                     "column shows —") == 1
    assert "'cwgrpo/aime24'" not in err
    assert (tmp_path / "o" / "table2.md").read_text().splitlines()[2] == "| Base | 28.8 | — | — | — |"


if __name__ == "__main__":  # regenerate the committed fixtures
    print({k: str(v) for k, v in generate_fixtures(FIXTURES).items()})


# --- evaluations: Tables 2 and 3 from examples/evaluate_checkpoints.sh's logs ---------------------------------------

def _evaluation(path: Path, step: int, acc, **settings) -> Path:
    """A log as python -m cwgrpo_verl.evaluate writes it."""
    recorded = {"max_new_tokens": 32768, "temperature": 0.6, "top_p": 0.95, "samples": 1,
                "reward": "eval", **settings}
    record = {"step": step, "data": {k: float(v) for k, v in _val(acc, extra=False).items()}, "evaluation": recorded}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record) + "\n")
    return path


def test_a_folder_of_evaluations_gives_tables_2_and_3_with_their_settings(tmp_path, capsys):
    evals = tmp_path / "evals"
    _evaluation(evals / "step_100.t0.6-p0.95-n1-len32768.jsonl", 100, GRPO_ACC_STEP2)
    _evaluation(evals / "step_200.t0.6-p0.95-n1-len32768.jsonl", 200, CW_ACC)
    (evals / "step_200.t0.6-p0.95-n1-len32768.generations.jsonl").write_text('{"response": "x"}\n')  # not a log
    base = _evaluation(tmp_path / "base" / "step_0.t0.6-p0.95-n1-len32768.jsonl", 0, BASE_ACC)
    assert report.main(["--base", f"Base={base.parent}", "--eval", f"CW-GRPO={evals}", "--out", str(tmp_path / "o")]) == 0
    table2 = (tmp_path / "o" / "table2.md").read_text().splitlines()
    assert table2[3] == "| CW-GRPO | 30.0 | 87.0 | 77.5 | 29.8 | 52.0 | 55.3 | +6.4 |"  # its last checkpoint
    assert table2[-1] == "Settings: max_new_tokens 32768, temperature 0.6, top_p 0.95, samples 1, reward eval."
    table3 = (tmp_path / "o" / "table3.md").read_text().splitlines()
    assert [line.split(" | ")[:2] for line in table3[2:5]] == [["| Base", "0"], ["| CW-GRPO", "100"],
                                                              ["| CW-GRPO", "200"]]


def test_evaluations_with_different_settings_are_refused_unless_asked_for(tmp_path, capsys):
    """Unlike evaluations (4096 against 32768 tokens, a training run's validation) in one table: refused, saying
    what differs; --mixed-settings puts them together and the table says it."""
    evals = _evaluation(tmp_path / "cw" / "step_100.jsonl", 100, CW_ACC, max_new_tokens=4096).parent
    base = _evaluation(tmp_path / "base" / "step_0.jsonl", 0, BASE_ACC)
    args = ["--base", f"Base={base}", "--eval", f"CW-GRPO={evals}", "--out", str(tmp_path / "o")]
    assert report.main(args) == 2
    err = capsys.readouterr().err
    assert "were made with different settings" in err and "max_new_tokens: 32768 (Base @ 0); 4096 (CW-GRPO @ 100)" in err
    assert not (tmp_path / "o").exists()
    assert report.main([*args, "--mixed-settings"]) == 0
    assert "Settings: max_new_tokens: 32768 (Base @ 0); 4096 (CW-GRPO @ 100)." in (tmp_path / "o" / "table2.md").read_text()
    training_validation = _jsonl_log(tmp_path / "train.jsonl", [(100, {k: float(v) for k, v in _val(CW_ACC).items()})])
    assert report.main(["--base", f"Base={base}", "--eval", f"CW-GRPO={training_validation}", "--out",
                        str(tmp_path / "p")]) == 2
    assert "not recorded (CW-GRPO @ 100)" in capsys.readouterr().err


def test_two_evaluations_of_one_step_in_a_folder_are_refused_and_a_glob_picks_one(tmp_path, capsys):
    evals = tmp_path / "evals"
    _evaluation(evals / "step_100.t0.6-p0.95-n1-len32768.jsonl", 100, CW_ACC)
    _evaluation(evals / "step_100.t0.6-p0.95-n8-len32768.jsonl", 100, GRPO_ACC, samples=8)
    assert report.main(["--eval", f"CW-GRPO={evals}", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "step 100 is also evaluated in", "choose with a glob")
    assert report.main(["--eval", f"CW-GRPO={evals}/step_*-n8-*.jsonl", "--out", str(tmp_path / "o")]) == 0
    assert "| CW-GRPO | 33.3 | 85.0 |" in (tmp_path / "o" / "table2.md").read_text()
