"""Run a measurement and record its output for docs/results.md, with a digest of the code it measured.

    python benchmarks/record.py loss_cpu    # or reward_cpu, smoke_step_time, token_log_step_time; --list
    python benchmarks/record.py all

Writes ``docs/results/<name>.md``: the command, the machine, a sha256 of the measured sources, and the output,
and copies it into docs/results.md between its ``<!-- result:<name> -->`` markers. ``make docs-check``
(tests/test_results.py) fails when a measured source changed after the recording (rerun this) or when the page's
copy differs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
PAGE = REPO / "docs" / "results.md"  # quotes every record between its markers
PY = sys.executable

MEASUREMENTS = {  # name: (command, the sources it measures: files, or folders of .py files)
    name: ([PY, *command.split()], sources.split()) for name, (command, sources) in {
        "loss_cpu": ("benchmarks/bench_loss.py --device cpu",
                     "benchmarks/bench_loss.py cwgrpo_verl/core.py cwgrpo_verl/metrics.py"),
        "reward_cpu": ("benchmarks/bench_reward.py", "benchmarks/bench_reward.py cwgrpo_verl/reward"),
        "smoke_step_time": ("-m tools.smoke --method grpo,cwgrpo --steps 6",
                            "cwgrpo_verl/core.py cwgrpo_verl/metrics.py cwgrpo_verl/groups.py cwgrpo_verl/loss.py "
                            "cwgrpo_verl/scope.py recipe/cwgrpo/trainer.py tools/smoke.py tools/cpu"),
        "token_log_step_time": ("-m tools.smoke --method cwgrpo --token-log-every 0,1 --steps 6",
                                "cwgrpo_verl/tokens.py cwgrpo_verl/scope.py recipe/cwgrpo/trainer.py tools/smoke.py"),
    }.items()
}


def digest(sources: list[str]) -> str:
    sha = hashlib.sha256()
    for source in sources:
        path = REPO / source
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            sha.update(str(file.relative_to(REPO)).encode() + b"\0" + file.read_bytes() + b"\0")
    return sha.hexdigest()[:16]


def record(name: str) -> Path:
    command, sources = MEASUREMENTS[name]
    load = os.getloadavg()[0]  # before the measurement: how busy the machine was
    start = time.monotonic()
    out = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{' '.join(command)} failed ({out.returncode}):\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    body = "\n".join(line for line in out.stdout.strip().splitlines() if not line.startswith("Writing model"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(f"<!-- measured by `python benchmarks/record.py {name}`: python {' '.join(command[1:])} -->\n"
                    f"<!-- sources {digest(sources)}: {', '.join(sources)} -->\n"
                    f"```\n# {machine}, load {load:.1f} before; {time.monotonic() - start:.0f} s\n{body}\n```\n")
    block = re.compile(rf"(<!-- result:{name} -->\n).*?(<!-- /result:{name} -->)", re.S)  # the page's copy
    PAGE.write_text(block.sub(lambda m: m[1] + path.read_text() + m[2], PAGE.read_text(), count=1))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", choices=[*MEASUREMENTS, "all"])
    parser.add_argument("--list", action="store_true", help="list the measurements and their commands")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for name, (command, sources) in MEASUREMENTS.items():
            print(f"{name}: {' '.join(command[1:])}  (sources: {', '.join(sources)})")
        return 0
    for name in MEASUREMENTS if args.name == "all" else [args.name]:
        print(f"recorded {record(name).relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
