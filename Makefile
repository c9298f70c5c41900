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

.PHONY: setup test test-fast demo lint bench lerobot test-lerobot

setup:
	@scripts/setup.sh

# The full suite (fast + slow simulation tests). pytest exit code 5 ("no tests collected") is not a failure.
# Each test has a timeout (pyproject.toml); a suite that still runs after TEST_LIMIT is interrupted (SIGINT: pytest
# prints where it was), so CI never waits on a hang.
TEST_LIMIT ?= 75m
test: setup
	@timeout --signal=INT --kill-after=60 $(TEST_LIMIT) $(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# Inner loop: everything but the slow simulation tests.
test-fast: setup
	@$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# Set-up, then a small real evaluation (scripted oracle = upper bound, random = chance) on the smoke suite, with
# the full report for each and a side-by-side comparison.
DEMO_EPISODES ?= 3
demo: setup
	@$(VGB) assets build
	@$(VGB) render --suite default --out $(DEMO_DIR)/variants.png
	@$(VGB) render --suite skills --no-strips --out $(DEMO_DIR)/families.png
	@$(VGB) evaluate --policy scripted --suite smoke --episodes $(DEMO_EPISODES) --out $(DEMO_DIR)/scripted
	@$(VGB) evaluate --policy random --suite smoke --episodes $(DEMO_EPISODES) --videos 1 --out $(DEMO_DIR)/random
	@$(VGB) compare $(DEMO_DIR)/scripted $(DEMO_DIR)/random --out $(DEMO_DIR)/compare.md
	@echo "demo outputs in $(DEMO_DIR)/: variants.png, families_<family>.png (one sheet per task family), scripted/ and random/ (report.html, report.md, summary.csv, videos/), compare.md"

lint: setup
	@$(VENV)/bin/ruff check vla_gen_bench tests benchmarks && $(VENV)/bin/ruff format --check vla_gen_bench tests benchmarks

bench: setup
	@$(PY) benchmarks/sim_throughput.py
	@$(PY) benchmarks/policy_latency.py
	@$(PY) benchmarks/eval_throughput.py

# LeRobot bridge (vla_gen_bench/lerobot/): LeRobot's own environment, .venv-lerobot (pinned, idempotent; the first
# run downloads ~3 GB and takes ~10 minutes, so `make test` skips the tests that need it), and those tests.
lerobot:
	@scripts/setup_lerobot.sh

test-lerobot: setup lerobot
	@$(PY) -m pytest -q -p no:cacheprovider -m lerobot tests/lerobot $(PYTEST_ARGS)
