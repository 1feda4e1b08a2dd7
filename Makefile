# One entry point for users and CI. `make test` is the README's test command; .ci/run calls it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: setup test demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

test: setup
	$(PY) -m pytest -q

demo: setup
	$(PY) -m cwgrpo_verl.demo $(ARGS)

bench: setup
	$(PY) benchmarks/bench_loss.py
	$(PY) benchmarks/bench_reward.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
