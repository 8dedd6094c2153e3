# cpbench: `make demo` runs the main job, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
# CPU build of torch (lies on local disk here). On a CUDA machine: make TORCH='torch' demo
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: setup demo test clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

SLIDE := data/synth/exemplar-001.ome.tif

$(SLIDE): | setup
	$(BIN)/cpbench synth exemplar-001 --overwrite

# the main job: synthetic slide (once), quick suite on it with the reference model, site, report
demo: setup $(SLIDE)
	$(BIN)/asv machine --yes > /dev/null
	$(BIN)/asv run --python=same --quick --set-commit-hash HEAD
	$(BIN)/asv publish
	$(BIN)/cpbench report

test: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) data/synth .pytest_cache
