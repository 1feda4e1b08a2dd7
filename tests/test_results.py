"""docs/results.md's measurements are recorded by a command in the repo (benchmarks/record.py) from the current code."""

import re
import sys

import pytest
from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import record  # noqa: E402

PAGE = record.PAGE.read_text()
pytestmark = pytest.mark.docs  # make docs-check: recorded artefacts against the code, not behaviour


@pytest.mark.parametrize("name", list(record.MEASUREMENTS))
def test_the_record_measured_the_current_code(name):
    path = record.RESULTS / f"{name}.md"
    assert path.exists(), f"no {path.relative_to(REPO)}: run python benchmarks/record.py {name}"
    recorded = re.search(r"<!-- sources (\w+):", path.read_text()).group(1)
    sources = record.MEASUREMENTS[name][1]
    assert recorded == record.digest(sources), (
        f"{', '.join(sources)} changed after {path.relative_to(REPO)} was measured: "
        f"rerun python benchmarks/record.py {name}")


@pytest.mark.parametrize("name", list(record.MEASUREMENTS))
def test_the_results_page_shows_the_record(name):
    block = re.search(rf"<!-- result:{name} -->\n(.*?)<!-- /result:{name} -->", PAGE, re.S)
    assert block, f"docs/results.md has no <!-- result:{name} --> block"
    assert block.group(1) == (record.RESULTS / f"{name}.md").read_text(), (
        f"docs/results.md's {name} block differs from docs/results/{name}.md: copy the record into it")


def test_a_changed_source_is_caught(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(record, "REPO", tmp_path)
    before = record.digest(["a.py"])
    (tmp_path / "a.py").write_text("x = 2\n")
    assert record.digest(["a.py"]) != before
