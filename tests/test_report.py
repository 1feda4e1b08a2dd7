"""The report CLI on logs written by verl's own loggers (``verl.utils.tracking.Tracking``), checked by hand.

The fixtures in ``tests/fixtures/logs/`` are produced by :func:`generate_fixtures` (regenerate them with
``python tests/test_report.py``); ``test_committed_fixtures_match_verl`` fails if verl's format drifts.
"""

from __future__ import annotations

import contextlib
import io
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
# cov_pos_top / cov_neg_top per fraction over steps 1..4
GRPO_POS = {"0.01pct": [11.5, 13.5, 12.0, 12.0], "1pct": [3.3] * 4, "20pct": [0.36, 0.58, 0.36, 0.58],
            "40pct": [0.22, 0.33, 0.22, 0.33], "100pct": [0.04, 0.06, 0.04, 0.06]}
CW_POS = {"0.01pct": [4.0, 3.0, 2.0, 1.0], "1pct": [1.0] * 4, "20pct": [0.2] * 4, "40pct": [0.1] * 4,
          "100pct": [0.01] * 4}
CW_NEG = {"0.01pct": [-2.0, -1.0, -1.0, -2.0], "1pct": [-1.0] * 4, "20pct": [-0.2] * 4, "40pct": [-0.1] * 4,
          "100pct": [-0.01] * 4}


def _val(acc, n=1, extra=True):
    out = {f"val-core/{ds}/acc/mean@{n}": np.float64(a) for ds, a in zip(SETS, acc)}
    if extra:  # what verl also logs next to the core metric
        out.update({f"val-aux/{ds}/reward/mean@{n}": np.float64(2 * a) for ds, a in zip(SETS, acc)})
    return out


def _train(step, entropy, prefix, pos, neg):
    out = {"training/global_step": step, "actor/entropy": np.float64(entropy),
           "actor/pg_loss": np.float64(-0.01 * step),
           "timing_s/step": 12.5, f"{prefix}weight_mean": np.float64(1.0), f"{prefix}num_tokens": np.float32(4096)}
    for frac in FRACS:
        out[f"{prefix}cov_pos_top_{frac}"] = np.float64(pos[frac][step - 1])
        out[f"{prefix}cov_neg_top_{frac}"] = np.float64(neg[frac][step - 1])
    return out


def _log_steps():
    """(experiment, [(step, metrics)]) exactly as verl's trainer calls logger.log (val merged into the step)."""
    grpo_neg = {f: [-v / 2 for v in vals] for f, vals in GRPO_POS.items()}
    grpo = [(0, _val(BASE_ACC))] + [(s, _train(s, GRPO_ENTROPY[s - 1], "cw/", GRPO_POS, grpo_neg)) for s in range(1, 5)]
    grpo[2][1].update(_val(GRPO_ACC_STEP2))
    grpo[4][1].update(_val(GRPO_ACC))
    cw = [(0, _val(BASE_ACC, n=4))]
    cw += [(s, _train(s, CW_ENTROPY[s - 1], "actor/cw/", CW_POS, CW_NEG)) for s in range(1, 5)]
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


def _cli(logs, out, *extra):
    return report.main(["--base", f"Base={logs['base_eval']}", "--run", f"GRPO={logs['grpo']}",
                        "--run", f"CW-GRPO={logs['cw_grpo']}", "--out", str(out), *extra])


def test_committed_fixtures_match_verl(logs):
    for name in ("base_eval.jsonl", "grpo.jsonl", "cw_grpo.log"):
        assert (FIXTURES / name).read_bytes() == Path(logs[name.split(".")[0]]).read_bytes(), name


def test_formats_agree(logs):
    jsonl, console, tb = (report.load_run(logs[k]) for k in ("grpo", "cw_grpo", "grpo_tb"))
    assert sorted(jsonl) == sorted(tb) == sorted(console) == [0, 1, 2, 3, 4]
    assert jsonl[4]["val-core/cwgrpo/aime24/acc/mean@1"] == 0.333
    assert jsonl[3]["actor/entropy"] == 0.45 and jsonl[1]["training/global_step"] == 1
    assert console[4]["val-core/cwgrpo/amc23/acc/mean@4"] == 0.775  # parsed from np.float64(0.775)
    assert console[2]["actor/cw/cov_pos_top_0.01pct"] == 3.0 and console[1]["actor/cw/num_tokens"] == 4096
    assert "x" not in console[1] and len(console[4]) == len(jsonl[4])  # worker noise ignored
    assert set(tb[4]) == set(jsonl[4])
    assert all(tb[s][k] == pytest.approx(v, rel=1e-6) for s in jsonl for k, v in jsonl[s].items())


def test_table2_hand_computed(logs, tmp_path, capsys):
    assert _cli(logs, tmp_path) == 0
    md = (tmp_path / "table2.md").read_text().splitlines()
    assert md[0] == "| Method | AIME24 | MATH-500 | AMC23 | Minerva | OlympiadBench | Avg | Δ vs Base |"
    # avg (28.8+82.8+62.9+26.5+43.3)/5 = 48.86; (33.3+85+67.5+27.2+49.9)/5 = 52.58; (30+87+77.5+29.8+52)/5 = 55.26
    assert md[2] == "| Base | 28.8 | 82.8 | 62.9 | 26.5 | 43.3 | 48.9 | — |"
    assert md[3] == "| GRPO | 33.3 | 85.0 | 67.5 | 27.2 | 49.9 | 52.6 | +3.7 |"
    assert md[4] == "| CW-GRPO | 30.0 | 87.0 | 77.5 | 29.8 | 52.0 | 55.3 | +6.4 |"
    assert "GRPO @ step 4" in md[-1] and "Base @ step 0" in md[-1]
    csv = pd.read_csv(tmp_path / "table2.csv").set_index("run")
    assert list(csv.index) == ["Base", "GRPO", "CW-GRPO"]
    assert csv.loc["GRPO", "Avg"] == pytest.approx(52.58, abs=1e-3)
    assert csv.loc["CW-GRPO", "Δ Avg"] == pytest.approx(6.40, abs=1e-3)
    assert csv.loc["CW-GRPO", "Δ AMC23"] == pytest.approx(14.6, abs=1e-3)
    assert csv.loc["CW-GRPO", "step"] == 4 and np.isnan(csv.loc["Base", "Δ Avg"])
    assert "warning" not in capsys.readouterr().err


def test_table2_at_step_with_missing_validation(logs, tmp_path, capsys):
    assert _cli(logs, tmp_path, "--step", "2") == 0
    md = (tmp_path / "table2.md").read_text().splitlines()
    assert md[2].startswith("| Base | 28.8 |")  # the base run always uses its last validation
    assert md[3] == "| GRPO | 30.0 | 84.0 | 65.0 | 27.0 | 48.0 | 50.8 | +1.9 |"  # 254/5 = 50.8, 50.8-48.86 = 1.94
    assert md[4] == "| CW-GRPO | — | — | — | — | — | — | — |"
    assert "'CW-GRPO' has no validation metrics" in capsys.readouterr().err


def test_table1_tail_means(logs, tmp_path):
    assert _cli(logs, tmp_path, "--tail-steps", "2") == 0
    md = (tmp_path / "table1.md").read_text().splitlines()
    assert md[0] == "| Tokens | GRPO positive | GRPO negative | CW-GRPO positive | CW-GRPO negative |"
    # first 2 steps: GRPO (11.5+13.5)/2 = 12.5, neg = -pos/2; CW (4+3)/2 = 3.5, (-2-1)/2 = -1.5
    assert md[2] == "| top 0.01% | 12.500 | -6.250 | 3.500 | -1.500 |"
    assert md[4] == "| top 20% | 0.470 | -0.235 | 0.200 | -0.200 |"
    tails = report.tail_table({n: report.load_run(logs[k]) for n, k in [("GRPO", "grpo"), ("CW", "cw_grpo")]})
    assert tails["GRPO"]["0.01pct"] == pytest.approx((12.25, -6.125))  # all 4 steps
    assert tails["CW"]["0.01pct"] == pytest.approx((2.5, -1.5))
    assert tails["GRPO"]["40pct"] == pytest.approx((0.275, -0.1375))
    csv = pd.read_csv(tmp_path / "table1.csv").set_index("tokens")
    assert csv.loc["top 100%", "GRPO positive"] == pytest.approx(0.05)


def test_entropy_png(logs, tmp_path):
    import matplotlib.image as mpimg

    assert _cli(logs, tmp_path) == 0
    png = tmp_path / "entropy.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    image = mpimg.imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 1000  # two panels (entropy, val accuracy)
    assert image[..., :3].std() > 0.05 and len(np.unique(image[..., :3].reshape(-1, 3), axis=0)) > 50


def test_robustness(logs, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    lines = Path(logs["grpo"]).read_text().splitlines()
    bad.write_text("\n".join(lines[:2] + ['{"step": 2, "data": {"actor/entropy": 0.4'] + lines[2:]) + "\n")
    assert report.main(["--run", f"X={bad}", "--out", str(tmp_path / "o")]) == 2
    assert f"{bad}:3:" in capsys.readouterr().err
    assert report.main(["--run", f"X={bad}", "--out", str(tmp_path / "o"), "--skip-bad-lines"]) == 0
    assert "(skipped)" in capsys.readouterr().err
    bad_console = tmp_path / "bad.log"
    bad_console.write_text("hello\n(TaskRunner pid=1) step:1 - actor/entropy:0.5 - actor/pg_loss:tensor(1.)\n")
    with pytest.raises(report.LogParseError, match=r"bad\.log:2: .*actor/pg_loss"):
        report.load_run(bad_console)
    # no validation at all; an unknown data source; a data source with only a reward metric
    from verl.utils.tracking import FileLogger

    with _env(VERL_FILE_LOGGER_PATH=str(tmp_path / "odd.jsonl")), contextlib.redirect_stdout(io.StringIO()):
        logger = FileLogger("p", "e")
        logger.log({"actor/entropy": 0.5}, step=1)
        logger.log({"val-core/my/bench/acc/mean@1": 0.25, "val-core/cwgrpo/aime24/reward/mean@1": 0.5}, step=2)
        logger.finish()
    novals = tmp_path / "novals.jsonl"
    novals.write_text(Path(logs["grpo"]).read_text().splitlines()[1] + "\n")
    odd = tmp_path / "odd.jsonl"
    assert report.main(["--run", f"Odd={odd}", "--run", f"NoVal={novals}", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "'NoVal' has no validation metrics" in err and "using val-core/cwgrpo/aime24/reward/mean@1" in err
    md = (tmp_path / "table2.md").read_text().splitlines()
    assert md[0] == "| Method | AIME24 | my/bench | Avg | Δ |"
    assert md[2] == "| Odd | 50.0 | 25.0 | 37.5 | — |" and md[3] == "| NoVal | — | — | — | — |"
    assert "| NoVal positive | NoVal negative |" in (tmp_path / "table1.md").read_text()  # step 1 has the tail


def test_module_cli(tmp_path, monkeypatch, capsys):
    """``python -m cwgrpo_verl.report`` on the committed fixtures (in-process: a new interpreter re-imports verl)."""
    import runpy

    args = ["--base", f"Base={FIXTURES / 'base_eval.jsonl'}", "--run", f"GRPO={FIXTURES / 'grpo.jsonl'}",
            "--run", f"CW-GRPO={FIXTURES / 'cw_grpo.log'}", "--out", str(tmp_path / "r")]
    monkeypatch.setattr(sys, "argv", ["python -m cwgrpo_verl.report", *args])
    monkeypatch.delitem(sys.modules, "cwgrpo_verl.report")  # as a fresh `-m` run sees it
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("cwgrpo_verl.report", run_name="__main__")
    assert exit_info.value.code == 0
    assert "| CW-GRPO | 30.0 | 87.0 | 77.5 | 29.8 | 52.0 | 55.3 | +6.4 |" in capsys.readouterr().out
    expected = {"table1.csv", "table1.md", "table2.csv", "table2.md", "entropy.png"}
    assert {p.name for p in (tmp_path / "r").iterdir()} == expected


if __name__ == "__main__":  # regenerate the committed fixtures
    print({k: str(v) for k, v in generate_fixtures(FIXTURES).items()})
