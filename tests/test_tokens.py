"""The token log (cwgrpo_verl.tokens) and the report's page built from it (cwgrpo_verl.report.tokens)."""

import json
from html.parser import HTMLParser

import pytest
import torch

from cwgrpo_verl.report import tokens as page
from cwgrpo_verl.report.cli import main as report
from cwgrpo_verl.tokens import MAX_TEXT, WINDOW, append, due, extreme_positions, log_path, token_records


def brute_force_top(cov, mask, k, largest):
    """The k (row, position) of valid tokens with the largest |cov| (or smallest value), by a plain loop."""
    items = [(abs(float(cov[i, t])) if largest else -float(cov[i, t]), i, t)
             for i in range(cov.shape[0]) for t in range(cov.shape[1]) if mask[i, t]]
    return sorted(items, reverse=True)[:k]


@pytest.mark.parametrize("seed", range(5))
def test_the_selected_tokens_are_the_most_extreme(seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(6, 9, generator=g) > 0.3
    cov, weights = torch.randn(6, 9, generator=g, dtype=torch.float64), torch.rand(6, 9, generator=g)
    picked = extreme_positions(cov, mask, 5, weights)
    expected = brute_force_top(cov, mask, 5, largest=True)
    assert [abs(float(cov[r, t])) for r, t in picked["abs_cov"]] == [v for v, _, _ in expected]
    assert all(mask[r, t] for sel in picked.values() for r, t in sel)
    low = sorted(float(weights[i, t]) for i in range(6) for t in range(9) if mask[i, t])[:5]
    assert [float(weights[r, t]) for r, t in picked["low_weight"]] == low
    assert extreme_positions(cov, mask, 1000)["abs_cov"].__len__() == int(mask.sum())  # k above the valid tokens


def test_records_carry_the_token_in_its_context_and_stay_bounded():
    text = "x" * 400 + "AB" + "y" * 400
    ids = [ord(c) for c in text]
    decode = lambda seq: "".join(chr(i) for i in seq)  # noqa: E731
    mask = torch.ones(1, len(ids), dtype=torch.bool)
    cov = torch.zeros(1, len(ids))
    cov[0, 400] = -2.0
    records = token_records(7, extreme_positions(cov, mask, 1), responses=[ids], decode=decode, uids=["u"],
                            advantages=torch.full((1, len(ids)), 0.5), log_prob=torch.full((1, len(ids)), -1.0),
                            cov=cov, rewards=[1.0], prompts=[[ord("q")] * 500])
    (r,) = records
    assert (r["step"], r["selection"], r["token"], r["position"], r["cov"], r["reward"]) == (7, "abs_cov", "A", 400, -2.0, 1.0)
    assert r["before"] == "x" * WINDOW and r["after"] == "B" + "y" * (WINDOW - 1)
    assert len(r["prompt_end"]) == MAX_TEXT and r["weight"] is None
    assert len(json.dumps(r)) < 1000


def test_due_steps():
    assert [s for s in range(1, 31) if due(s, 10, first=s == 1)] == [1, 10, 20, 30]
    assert [s for s in range(7, 31) if due(s, 10, first=s == 7)] == [7, 10, 20, 30]  # a run resumed at step 7
    assert not any(due(s, 0, first=s == 1) for s in range(1, 31))


def _log(tmp_path, name, tokens_by_step):
    """A metrics log and its token log, with random covariances."""
    metrics = tmp_path / f"{name}.jsonl"
    metrics.write_text("".join(json.dumps({"step": s, "data": {"actor/entropy": 0.5, "cov/std": 0.1}}) + "\n"
                               for s in tokens_by_step))
    g = torch.Generator().manual_seed(len(name))
    for step, words in tokens_by_step.items():
        ids = list(range(len(words)))
        mask = torch.ones(1, len(ids), dtype=torch.bool)
        cov = torch.randn(1, len(ids), generator=g)
        append(log_path(metrics), token_records(
            step, extreme_positions(cov, mask, 3, weights=torch.rand(1, len(ids), generator=g)), responses=[ids],
            decode=lambda seq: "".join(words[i] for i in seq), uids=["p1"], advantages=torch.ones(1, len(ids)),
            log_prob=-torch.ones(1, len(ids)), cov=cov, weights=torch.ones(1, len(ids)), rewards=[0.0]))
    return metrics


class _Marks(HTMLParser):
    """The text of every <mark> and the runs' headings."""

    def __init__(self):
        super().__init__()
        self.marks, self.headings, self._in = [], [], None

    def handle_starttag(self, tag, attrs):
        self._in = tag

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "mark":
            self.marks.append(data)
        elif self._in == "h3":
            self.headings.append(data)


def test_the_page_shows_every_logged_token_of_every_run(tmp_path):
    words = ["<b>", " the", " answer", " is", " \\boxed{4}", "\n", "&amp;"]
    grpo = _log(tmp_path, "grpo", {1: words, 10: words[::-1]})
    cw = _log(tmp_path, "cwgrpo", {1: words})
    out = tmp_path / "report"
    assert report(["--run", f"GRPO={grpo}", "--run", f"CW-GRPO={cw}", "--out", str(out), "--tokens"]) == 0
    parsed = _Marks()
    parsed.feed((out / "tokens.html").read_text())
    logged = [r for path in (grpo, cw) for r in page.load_tokens(log_path(path))]
    shown = [m.replace("⏎", "\n") for m in parsed.marks]
    for record in logged:
        assert record["token"] in shown, record["token"]  # escaped in the page, read back as the same text
    assert "GRPO" in parsed.headings and "CW-GRPO" in parsed.headings
    md = (out / "tokens.md").read_text()
    assert "| GRPO | 10 | 3 |" in md and "CW-GRPO: token | times" in md


def test_model_output_cannot_inject_markup(tmp_path):
    metrics = _log(tmp_path, "run", {1: ["<script>alert(1)</script>", "<b>x", "ok"]})
    out = tmp_path / "report"
    assert report(["--run", f"R={metrics}", "--out", str(out), "--tokens"]) == 0
    body = (out / "tokens.html").read_text()
    assert "<script>" not in body and "&lt;script&gt;" in body and "<b>x" not in body


def test_without_a_token_log_the_flag_says_where_it_looked(tmp_path, capsys):
    metrics = tmp_path / "run.jsonl"
    metrics.write_text(json.dumps({"step": 1, "data": {"actor/entropy": 0.5}}) + "\n")
    assert report(["--run", f"R={metrics}", "--out", str(tmp_path / "out"), "--tokens"]) == 1
    assert str(tmp_path / "run.tokens.jsonl") in capsys.readouterr().err
