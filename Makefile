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

demo: setup
	$(BIN)/cpbench synth exemplar-001 --overwrite

test: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) data/synth .pytest_cache
