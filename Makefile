# One entry point for users and CI. `make test` is the README's test command; .ci/run calls it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: setup test docs-check smoke demo bench pins tokens-screenshot clean

setup: $(VENV)/.installed

# torch first (the build your machine needs), then the package with uv: the same packages as pip resolves, in
# less than half the time (setup.cfg pins verl; uv keeps the torch already installed). --compile-bytecode as pip
# does: where PYTHONDONTWRITEBYTECODE is set, every process would otherwise compile verl's imports anew (+5 s each)
$(VENV)/.installed: setup.cfg pyproject.toml requirements/cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)" uv
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -c requirements/cpu.txt -e ".[test]"
	touch $@

# The versions verl[vllm,fsdp]==0.9.1 resolves on a GPU node (requirements/gpu.txt), and the same without torch's own
# packages for the CPU environment (requirements/cpu.txt): resolved by uv, nothing installed
TORCH_FAMILY = ^(torch|torchvision|torchaudio|torchcodec)==
pins: setup
	$(VENV)/bin/uv pip compile setup.cfg requirements/gpu.in --extra test --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --no-header --quiet -o requirements/gpu.txt
	grep -vE '$(TORCH_FAMILY)' requirements/gpu.txt > requirements/cpu.txt

test: setup
	$(PY) -m pytest -q --durations=15

# the recorded measurements, README blocks and the demo's committed numbers against the code (not in `make test`:
# they go stale on any edit of what they measure, until the benchmark or demo is re-run)
docs-check: setup
	$(PY) -m pytest -q -m docs

# verl's real trainer for 2 steps of the paper's script on this CPU: make smoke ARGS="--method grpo,cwgrpo"
smoke: setup
	$(PY) -m tools.smoke $(ARGS)

demo: setup
	$(PY) -m tools.demo $(ARGS)

# the README's picture of the extreme-token page: the demo's published page (python -m tools.demo --docs docs),
# shot by headless Chromium from Debian's packages (apt-get install chromium)
tokens-screenshot:
	chromium --headless --no-sandbox --hide-scrollbars --window-size=1280,1100 \
		--screenshot=$(CURDIR)/docs/tokens.png file://$(CURDIR)/docs/demo_tokens.html
	$(PY) -c "from pathlib import Path; from tools.demo.report import stamp_screenshot; \
		stamp_screenshot(Path('docs/tokens.png'), Path('docs/demo_tokens.html'))"

bench: setup
	$(PY) benchmarks/bench_loss.py
	$(PY) benchmarks/bench_reward.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
