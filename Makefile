# One entry point for users and CI. `make test` is the README's test command; .ci/run calls it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: setup test smoke demo bench clean

setup: $(VENV)/.installed

# torch first (the build your machine needs), then the package with uv: the same packages as pip resolves, in
# less than half the time (setup.cfg pins verl; uv keeps the torch already installed). --compile-bytecode as pip
# does: where PYTHONDONTWRITEBYTECODE is set, every process would otherwise compile verl's imports anew (+5 s each)
$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)" uv
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -e ".[test]"
	touch $@

test: setup
	$(PY) -m pytest -q --durations=15

# verl's real trainer for 2 steps of the paper's script on this CPU: make smoke ARGS="--method grpo,cwgrpo"
smoke: setup
	$(PY) -m cwgrpo_verl.smoke $(ARGS)

demo: setup
	$(PY) -m cwgrpo_verl.demo $(ARGS)

bench: setup
	$(PY) benchmarks/bench_loss.py
	$(PY) benchmarks/bench_reward.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
