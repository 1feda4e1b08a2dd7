"""``tokens.html`` and ``tokens.md`` from the recipe's token logs (:mod:`cwgrpo_verl.tokens`; docs/report.md, "The
extreme tokens"): the largest-|covariance| tokens of each logged step, in context, escaped (it is model output)."""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path

from cwgrpo_verl.report.logs import LogError
from cwgrpo_verl.tokens import log_path

TOP_STRINGS = 20  # rows of the frequency table
_SELECTION_TITLES = {"abs_cov": "largest |covariance|", "low_weight": "most down-weighted (CW-GRPO)"}


def token_log_for(run_log: str | Path) -> Path:
    """The token log beside a run's metrics log (a ``#K`` or ``#resume`` selector is ignored: it holds every step)."""
    return log_path(Path(str(run_log).split("#", 1)[0]))


def load_tokens(path: Path, strict: bool = True) -> list[dict]:
    """The records of a token log, in file order; a line that is not a record is an error (or skipped)."""
    records = []
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                        raise ValueError("not a token record")
                    records.append(record)
                except ValueError as error:
                    if strict:
                        raise LogError(f"{path}:{number}: {error}") from None
    except OSError as error:
        raise LogError(f"{path}: cannot read ({error.strerror or error})") from None
    return records


def steps(records: list[dict]) -> dict[int, dict[str, list[dict]]]:
    """``{step: {selection: records by rank}}``; a step logged twice (a resumed run) keeps its last records."""
    out: dict[int, dict[str, list[dict]]] = {}
    for record in records:
        picks = out.setdefault(record["step"], {}).setdefault(record.get("selection", "abs_cov"), [])
        if record.get("rank") == 0:
            picks.clear()
        picks.append(record)
    return dict(sorted(out.items()))


def frequencies(records: list[dict], selection: str = "abs_cov", top: int = TOP_STRINGS) -> list[tuple[str, int]]:
    """The most common token strings among a run's selected tokens, over every logged step."""
    picked = [r["token"] for by in steps(records).values() for r in by.get(selection, [])]
    return Counter(picked).most_common(top)


def _visible(text: str, token_id: int | None = None) -> str:
    """A token with its whitespace made visible (line breaks and tabs always, spaces when that is all it is),
    escaped for HTML; a token that decodes to nothing (part of a multi-byte character) shows its id."""
    if not text and token_id is not None:
        return f"⟨{token_id}⟩"
    if not text.strip():
        text = text.replace(" ", "␣")
    return html.escape(text.replace("\n", "⏎").replace("\t", "⇥"))


def _numbers(r: dict) -> str:
    parts = [f"cov {r['cov']:+.3g}", f"A {r['advantage']:+.3g}", f"logp {r['log_prob']:.3g}"]
    if r.get("weight") is not None:
        parts.append(f"w {r['weight']:.3g}")
    if r.get("reward") is not None:
        parts.append(f"reward {r['reward']:g}")
    parts.append(f"prompt {str(r['uid'])[:8]} · token {r['position']}/{r['response_tokens']}")
    return " · ".join(parts)


def _token_html(r: dict) -> str:
    sign = "pos" if r["cov"] >= 0 else "neg"
    return (f'<li class="tok"><span class="ctx">{html.escape(r["before"])}</span><mark class="{sign}">'
            f'{_visible(r["token"], r.get("token_id"))}</mark><span class="ctx">{html.escape(r["after"])}</span>'
            f'<div class="nums">{html.escape(_numbers(r))}</div></li>')


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.runs { display: grid; gap: 1em; }
.run h3 { margin: 0.2em 0; }
ol { padding-left: 1.4em; margin: 0.3em 0; }
.tok { margin: 0.35em 0; font-family: ui-monospace, monospace; font-size: 0.85em; white-space: pre-wrap;
       word-break: break-all; }
.ctx { color: #666; }
mark { padding: 0 2px; border-radius: 3px; font-weight: bold; }
mark.pos { background: #f7b2a8; } mark.neg { background: #a8c8f7; }
.nums { color: #444; font-family: system-ui, sans-serif; font-size: 0.85em; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 2px 8px; }
td.s { font-family: ui-monospace, monospace; white-space: pre; }
"""


def render_html(runs: dict[str, list[dict]]) -> str:
    grid = f'<div class="runs" style="grid-template-columns: repeat({len(runs)}, minmax(0, 1fr))">'

    def side_by_side(inner: dict[str, str], head: str = "") -> list[str]:
        runs_html = (f'<div class="run"><h3>{html.escape(name)}</h3>{body}</div>' for name, body in inner.items())
        return [head + grid, *runs_html, "</div>"]

    by_run = {name: steps(records) for name, records in runs.items()}
    parts = ["<!doctype html>", '<html><head><meta charset="utf-8"><title>Extreme tokens</title>',
             f"<style>{_STYLE}</style></head><body>", "<h1>Extreme tokens</h1>",
             "<p>Per logged step, the tokens with the largest |covariance| between their centred log-probability and "
             "their centred advantage (red: positive, blue: negative), in their response's text; for CW-GRPO also the "
             "tokens it down-weighted most. <i>w</i> is the token's CW weight.</p>",
             "<h2>Most frequent extreme token strings</h2>"]
    parts += side_by_side({name: "<table><tr><th>token</th><th>times</th></tr>" + "".join(
        f'<tr><td class="s">{_visible(s)}</td><td>{n}</td></tr>' for s, n in frequencies(records)) + "</table>"
        for name, records in runs.items()})
    for step in sorted({s for by in by_run.values() for s in by}):
        parts.append(f"<h2>Step {step}</h2>")
        for selection, title in _SELECTION_TITLES.items():
            picks = {name: by.get(step, {}).get(selection, []) for name, by in by_run.items()}
            if any(picks.values()):
                parts += side_by_side({name: "<ol>" + ("".join(map(_token_html, p)) or "<li>not logged</li>") + "</ol>"
                                       for name, p in picks.items()}, head=f"<h3>{title}</h3>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _md(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\n", "⏎").replace("|", "\\|") + "`" if text else "``"


def render_markdown(runs: dict[str, list[dict]]) -> str:
    names = list(runs)
    lines = ["# Extreme tokens", "", "Most frequent token strings among each logged step's largest-|covariance| "
             "tokens (tokens.html shows them in context).", ""]
    tables = {name: frequencies(records) for name, records in runs.items()}
    lines += ["| " + " | ".join(f"{n}: token | times" for n in names) + " |",
              "| " + " | ".join("--- | ---" for _ in names) + " |"]
    for i in range(max((len(t) for t in tables.values()), default=0)):
        cells = [f"{_md(tables[n][i][0])} | {tables[n][i][1]}" if i < len(tables[n]) else " | " for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| run | step | tokens | largest \\|cov\\| | the five largest |", "| --- | --- | --- | --- | --- |"]
    for name in names:
        for step, by in steps(runs[name]).items():
            picks = by.get("abs_cov", [])
            if picks:
                top = ", ".join(_md(r["token"]) for r in picks[:5])
                lines.append(f"| {name} | {step} | {len(picks)} | {max(abs(r['cov']) for r in picks):.3g} | {top} |")
    return "\n".join(lines) + "\n"
