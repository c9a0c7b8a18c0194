# The two README commands: `make book` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FORCE ?=
# The book's repository (https://github.com/OWNER/REPO): adds the repository, issue and launch
# buttons and names it in the notebooks readers download; empty for a local build.
REPO_URL ?=
BRANCH ?= main
REPO := $(if $(REPO_URL),--repo-url $(REPO_URL) --branch $(BRANCH),)

.PHONY: book test setup golden html check-site stamp clean

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
	$(PY) -m companion build $(if $(FORCE),--force,) $(REPO)

# The HTML from the committed chapters, executing nothing (what the Pages workflow publishes).
html: $(STAMP)
	$(PY) -m companion html $(REPO)

# Every page of _build/html in headless Chromium (1280 and 390 px); screenshots in _build/screens.
check-site: $(STAMP)
	$(PY) -m companion check-site _build/html --screens _build/screens

# Name REPO_URL in every chapter's install cell (Colab opens the committed notebooks); then commit.
stamp: $(STAMP)
	$(PY) -m companion stamp $(REPO_URL) --branch $(BRANCH)

test: $(STAMP)
	$(PY) -m pytest -q

# Regenerate the nbval goldens (chapters executed at smoke scale).
golden: $(STAMP)
	$(PY) tests/make_goldens.py

clean:
	rm -rf _build
