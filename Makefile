# vla-gen-bench: the two commands a new user (and CI) runs. Both do all set-up themselves (scripts/setup.sh is
# idempotent: the second run takes seconds).
VENV ?= .venv
PY := $(VENV)/bin/python
VGB := $(VENV)/bin/vgb
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE ?= 1
export MS_SKIP_ASSET_DOWNLOAD_PROMPT ?= 1
PYTEST_ARGS ?=
DEMO_DIR ?= runs/demo

.PHONY: setup test test-fast demo lint bench

setup:
	@scripts/setup.sh

# The full suite (fast + slow simulation tests). pytest exit code 5 ("no tests collected") is not a failure.
test: setup
	@$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# Inner loop: everything but the slow simulation tests.
test-fast: setup
	@$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# Set-up, then a small real evaluation with the scripted oracle and the random baseline, then a report.
demo: setup
	@$(VGB) assets build
	@$(VGB) render --out $(DEMO_DIR)/sheet.png --seeds 8
	@$(VGB) run-episode --policy scripted --seed 0 --video $(DEMO_DIR)/scripted_seed0.mp4 >/dev/null
	@$(VGB) run-episodes --policy scripted --episodes 10 --out $(DEMO_DIR)/scripted.jsonl
	@$(VGB) run-episodes --policy random --episodes 10 --out $(DEMO_DIR)/random.jsonl
	@$(VGB) summarize $(DEMO_DIR)/scripted.jsonl $(DEMO_DIR)/random.jsonl --out $(DEMO_DIR)/report.md
	@echo "demo outputs in $(DEMO_DIR)/: sheet.png scripted_seed0.mp4 scripted.jsonl random.jsonl report.md"

lint: setup
	@$(VENV)/bin/ruff check vla_gen_bench tests benchmarks && $(VENV)/bin/ruff format --check vla_gen_bench tests benchmarks

bench: setup
	@$(PY) benchmarks/sim_throughput.py
