# Set-up and everyday commands. Every target bootstraps .venv from the pinned lock file.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
# Rules call `python`: the project environment comes first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test test-fast lint bench clean-results quick slurm cluster-test

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete --configfile config/config.yaml

quick: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete --configfile config/quick.yaml

# On a SLURM cluster (README "On a SLURM cluster"): make slurm CONFIG=config/paper.yaml
# SITE_PROFILES="--profile my-site".
CONFIG ?= config/config.yaml
slurm: $(STAMP)
	$(BIN)/snakemake --profile profiles/slurm $(SITE_PROFILES) --configfile $(CONFIG)

# profiles/slurm on a throw-away single-node SLURM started here (installs Debian's SLURM as root).
cluster-test: $(STAMP)
	$(BIN)/python -m pytest -q -s -rs tests/test_slurm.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint --cores 1

bench: $(STAMP)
	$(BIN)/python bench/train_throughput.py

clean-results:
	rm -rf results .snakemake
