# The two commands of the README: `make book` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
PROFILE ?= cpu
ONLY   ?=
# Chapters executed at once (each a separate process, one thread per kernel): this machine has 2 cores.
JOBS   ?= 2
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.emgeom-installed
# Every subprocess, notebook kernels included, must never wait on a model hub.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: book run test unit lint bench lock clean help

help:
	@echo "make book [PROFILE=cpu|smoke|gpu] [ONLY='01_toy_superposition ...'] [JOBS=2]  execute chapters, build HTML"
	@echo "make test                                  ruff, unit tests, every chapter under the smoke profile"
	@echo "make lint                                  ruff"
	@echo "make bench                                 scoring throughput vs a full forward pass; the last build's timeline"

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "emgeom needs Python >= 3.11, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m emgeom.book run --profile $(PROFILE) --jobs $(JOBS) --no-progress $(if $(ONLY),--only $(ONLY),)

book: run
	$(BIN)/jupyter-book build . -W --keep-going
	@echo ""
	@echo "Book built: open file://$(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(BIN)/ruff check lib tests notebooks benchmarks
	$(BIN)/ruff format --check lib tests benchmarks
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

bench: $(STAMP)
	$(BIN)/python benchmarks/score_throughput.py
	$(BIN)/python benchmarks/build_times.py

lint: $(STAMP)
	$(BIN)/ruff check lib tests notebooks benchmarks
	$(BIN)/ruff format --check lib tests benchmarks

# Re-resolve the lock from pyproject.toml in a throwaway venv (needs the package registry).
lock:
	rm -rf /tmp/emgeom-lock && $(PYTHON) -m venv /tmp/emgeom-lock
	/tmp/emgeom-lock/bin/pip install --quiet torch==2.13.0 -e '.[dev]'
	{ sed -n '1,/^# Regenerate/p' requirements.lock; /tmp/emgeom-lock/bin/pip freeze --exclude-editable \
	  | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/'; } > requirements.lock.new && mv requirements.lock.new requirements.lock

clean:
	rm -rf _build book/generated notebooks/*.ipynb
