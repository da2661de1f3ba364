# The two commands of the README: `make serve` and `make test`. Everything else is a helper
# (`make docs` builds the documentation site).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 0.0.0.0
PORT ?= 8000
export FLOWERS_MODEL_STORE ?= model_store

.PHONY: serve test check docs docs-serve train bench cluster docker-smoke samples clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installed markers: re-install only when pyproject.toml changes.  setuptools warns on every
# editable install, whatever its mode (lenient: a folder named like the package may shadow it;
# compat: the mode is going away; strict: keep build/): the one line before it says why that is
# expected here.
EDITABLE_NOTE := @echo "editable install: setuptools' warning below about app/ shadowing the package is expected (app/ is the package)"
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(EDITABLE_NOTE)
	$(BIN)/python -m pip install --quiet -e '.[openvino]'
	touch $@

$(VENV)/.installed-ray: pyproject.toml | $(BIN)/python
	$(EDITABLE_NOTE)
	$(BIN)/python -m pip install --quiet -e '.[openvino,ray]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(EDITABLE_NOTE)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-ray

## serve: install, train the default model if the store has none, serve on http://localhost:8000
serve: $(VENV)/.installed
	$(BIN)/python -m app.serve --train-if-empty --host $(HOST) --port $(PORT)

# axe-core, which the browser tests run inside the pages (tests/web/test_accessibility.py), from
# the npm registry at a pinned version and digest.
AXE_VERSION := 4.14.1
AXE_SHA256 := 29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c
AXE := .cache/axe-core/axe.min.js

$(AXE):
	mkdir -p .cache/npm
	cd .cache/npm && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null
	tar -xzf .cache/npm/axe-core-$(AXE_VERSION).tgz -C .cache/npm package/axe.min.js
	echo "$(AXE_SHA256)  .cache/npm/package/axe.min.js" | sha256sum --check --quiet
	mkdir -p $(dir $@) && cp .cache/npm/package/axe.min.js $@

## test: install the dev dependencies and run the whole test suite
test: $(VENV)/.installed-dev $(AXE)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## check: lint, format check and type check
check: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Mermaid, which draws the architecture page's diagrams, from the npm registry at a pinned version
# and digest: the site loads nothing from another host.
MERMAID_VERSION := 11.12.1
MERMAID_SHA256 := 198b19442f86f0b46a17e56d3abf744c3a28a3427e66fa8dada3b589a77babcc
MERMAID := docs/assets/mermaid.min.js

$(MERMAID):
	mkdir -p .cache/npm
	cd .cache/npm && npm pack --silent mermaid@$(MERMAID_VERSION) >/dev/null
	tar -xzf .cache/npm/mermaid-$(MERMAID_VERSION).tgz -C .cache/npm package/dist/mermaid.min.js
	echo "$(MERMAID_SHA256)  .cache/npm/package/dist/mermaid.min.js" | sha256sum --check --quiet
	mkdir -p $(dir $@) && cp .cache/npm/package/dist/mermaid.min.js $@

## docs: build the documentation site into site/ (strict: a broken link or a missing page fails)
docs: $(VENV)/.installed-dev $(MERMAID)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## docs-serve: serve the documentation site with live reload on http://localhost:8001
docs-serve: $(VENV)/.installed-dev $(MERMAID)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8001

## train: train a new version (ARGS="--epochs 5 ...")
train: $(VENV)/.installed
	$(BIN)/python -m app.train $(ARGS)

## samples: copy the examples' sample photos into ./samples (from a flower_photos folder)
samples:
	scripts/sample-photos.sh $(ARGS)

## bench: the benchmark harness (bench/README.md)
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench $(ARGS)

## cluster: a 2-node Ray cluster on this machine serving deploy/ray/serve.yaml; Ctrl-C stops it
cluster: $(VENV)/.installed-ray
	$(BIN)/python -m app.cluster.local up deploy/ray/serve.yaml

## docker-smoke: build the image and test it with a real Docker engine
docker-smoke:
	scripts/docker-smoke.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site .cache
