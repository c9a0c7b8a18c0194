# The two README commands: `make book` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FORCE ?=

.PHONY: book test setup golden html clean

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# Execute every stale chapter at the default scale (gpu if CUDA, else cpu), publish its run,
# regenerate the dashboard and build _build/html. FORCE=1 re-executes every chapter.
book: $(STAMP)
	$(PY) -m companion build $(if $(FORCE),--force,)

html: $(STAMP)
	$(PY) -m companion build --no-html && $(VENV)/bin/jupyter-book build . -W -n --keep-going

test: $(STAMP)
	$(PY) -m pytest -q

# Regenerate the nbval goldens (chapters executed at smoke scale).
golden: $(STAMP)
	$(PY) tests/make_goldens.py

clean:
	rm -rf _build
