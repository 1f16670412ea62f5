# The book's front door. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= default
REMOTE ?= origin
N ?=
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help env data book chapters chapter figures html publish workflow workflow-slurm test test-fast lab clean clean-all

help:  ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: PROFILE=smoke|default|full (now $(PROFILE)), N=chapter number for 'make chapter'"

$(STAMP): requirements.txt requirements-lock.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt -c requirements-lock.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

env: $(STAMP)  ## create .venv and install the pinned dependencies (idempotent)

data: $(STAMP)  ## write the simulated personal epigenome of PROFILE to data/simulated/
	$(PY) -m allelic.simulate --preset $(PROFILE)

chapters: $(STAMP)  ## execute every chapter with papermill (PROFILE), skipping unchanged ones
	$(PY) -m allelic.run --profile $(PROFILE)

chapter: $(STAMP)  ## execute one chapter: make chapter N=02
	@test -n "$(N)" || { echo "usage: make chapter N=02"; exit 2; }
	$(PY) -m allelic.run --profile $(PROFILE) --chapters $(N)

html: $(STAMP)  ## render the executed chapters as HTML (build/_build/html/index.html, or under ALLELIC_BUILD_DIR)
	$(PY) -m allelic.run --render

book: chapters html  ## execute all chapters on the embedded simulator and render the book

publish:  ## push the rendered book (build/_build/html) to the gh-pages branch of REMOTE (ghp-import)
	@git remote get-url $(REMOTE) >/dev/null 2>&1 || { echo "make publish: no git remote '$(REMOTE)' to push gh-pages to (git remote add $(REMOTE) URL, or REMOTE=name)" >&2; exit 2; }
	@test -f build/_build/html/index.html || { echo "make publish: build/_build/html/index.html is missing; run make book first" >&2; exit 2; }
	@$(MAKE) --no-print-directory env
	$(VENV)/bin/ghp-import --no-jekyll --push --force --remote $(REMOTE) --message "Rendered book ($(PROFILE) profile)" build/_build/html

# the workflow's profile: smoke unless PROFILE is given on the command line
WPROFILE := $(if $(filter command line environment,$(origin PROFILE)),$(PROFILE),smoke)
SNAKEMAKE := $(VENV)/bin/snakemake -s workflow/Snakefile

workflow: $(STAMP)  ## run the heavy steps and the book with Snakemake on this machine (smoke unless PROFILE=...)
	$(SNAKEMAKE) --profile workflow/profiles/local --config profile=$(WPROFILE)

workflow-slurm: $(STAMP)  ## list the jobs the SLURM profile would submit (dry run; drop -n on a cluster)
	$(SNAKEMAKE) --profile workflow/profiles/slurm --config profile=$(WPROFILE) -n --quiet rules

figures: $(STAMP)  ## rebuild the paper figures from saved results (no refitting)
	$(PY) -m allelic.figures

test: $(STAMP)  ## run the test suite (library, notebooks in the smoke profile, book build)
	$(PY) -m pytest

test-fast: $(STAMP)  ## the tests without the notebook and book executions
	$(PY) -m pytest -m "not notebooks and not slow"

lab: $(STAMP)  ## open the notebooks in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

clean:  ## remove executed notebooks, results and the rendered book
	rm -rf build results

clean-all: clean  ## also remove the simulated data and the virtual environment
	rm -rf data/simulated $(VENV)
