# cpbench: `make demo` runs the main job, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
# CPU build of torch (lies on local disk here). On a CUDA machine: make TORCH='torch' demo
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
SITE_VENDOR := data/vendor/asv-site

.PHONY: setup demo bench example optimizations test test-parallel test-pythons test-synapse-min test-cellpose4 test-cellpose30 browser clean
setup: $(VENV)/.installed $(SITE_VENDOR)/.done

$(VENV)/.installed: pyproject.toml
	$(PYTHON) tools/free_space.py $(VENV) 3 "$(VENV) (torch, Cellpose, asv: about 2 GB)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# the asv site's JavaScript/CSS libraries, fetched once from the npm registry (pinned by sha512) so
# that the published site needs no network (cpbench offline-site)
$(SITE_VENDOR)/.done: | $(VENV)/.installed
	$(BIN)/cpbench site-assets --vendor $(SITE_VENDOR)
	touch $@

# headless Chromium for the offline-site test (Debian's chromium; needs root to install)
browser:
	@command -v chromium > /dev/null || command -v chromium-browser > /dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; } || \
	  { echo "chromium is missing and cannot be installed here: apt-get install -y chromium (as root)"; exit 1; }

SLIDE := data/synth/exemplar-001.ome.tif

$(SLIDE): | setup
	$(BIN)/cpbench synth exemplar-001 --overwrite

# the Cellpose releases asv walks (asv.conf.json "repo"), fetched once with pip
HISTORY := data/cellpose

$(HISTORY)/.git: | setup
	$(BIN)/cpbench cellpose-history --out $(HISTORY)

# the main job, in phases that print as they finish (tools/demo.sh says what and how long up front):
# setup, the slide and the history (once), every stage at 512 px (its table shown at once), then 256 and
# 1024 px, the offline asv site and the report in reports/ (git-ignored; reports/example/ is untouched)
demo:
	@MAKE="$(MAKE)" VENV=$(VENV) bash tools/demo.sh

# the whole quick suite (every quick-grid parameter, blockwise segmentation, every process peak) in .venv,
# recorded as the installed Cellpose's commit in the history; then the site and the report
bench: setup $(SLIDE) $(HISTORY)/.git
	$(BIN)/asv machine --yes > /dev/null
	commit=$$($(BIN)/cpbench cellpose-history --out $(HISTORY) --commit-of installed) && \
	  $(BIN)/asv run --python=same --quick --set-commit-hash $$commit
	$(BIN)/asv publish
	$(BIN)/cpbench offline-site --html .asv/html --vendor $(SITE_VENDOR)
	$(BIN)/cpbench report

# the committed example (reports/example/): the asv results of this machine's runs (every .asv/results*:
# the quick suite's and the sweeps') copied beside it with the release name of each commit, and the report regenerated
# from the results there (with none here, from the committed ones alone). Only this target writes there;
# tests/report/test_example.py checks the regeneration.
EXAMPLE := reports/example
example: setup
	@ls -d .asv/results* > /dev/null 2>&1 || echo "make example: no asv results in .asv/results* here; regenerating from the committed ones"
	for d in $$(ls -d .asv/results*/ 2> /dev/null); do d=$${d%/}; rm -rf $(EXAMPLE)/$${d#.asv/} && cp -r $$d $(EXAMPLE)/$${d#.asv/} && \
	  $(BIN)/python -c "import sys; from pathlib import Path; from cpbench.report.select import save_commit_names; save_commit_names(Path(sys.argv[1]))" $(EXAMPLE)/$${d#.asv/}; done
	$(BIN)/cpbench report $$(for d in $(EXAMPLE)/results*/; do echo --results $${d%/}; done) \
	  $$(for f in $(EXAMPLE)/segment/*.seams.json; do [ ! -f $$f ] || echo --seams $$f; done) \
	  $$([ ! -d $(EXAMPLE)/profiles ] || echo --profiles $(EXAMPLE)/profiles) \
	  $$([ ! -d reports/optimizations/results ] || echo --optimizations reports/optimizations) --out $(EXAMPLE)

# the optimizations document (reports/optimizations.md): this machine's asv results of our patches
# (.asv/optimize-results, from tools/optimize_measure.sh) copied into reports/optimizations/results with the
# name of each commit (release tag or patch branch), beside the deep-dives and whole-slide records the
# script put there; then the document regenerated. Only this target and that script write there.
OPT_DIR := reports/optimizations
optimizations: setup
	@[ -f .asv/optimize-results/benchmarks.json ] || { echo "make optimizations: no asv results in .asv/optimize-results; run tools/optimize_measure.sh first"; exit 1; }
	rm -rf $(OPT_DIR)/results && mkdir -p $(OPT_DIR) && cp -r .asv/optimize-results $(OPT_DIR)/results
	$(BIN)/python -c "from pathlib import Path; from cpbench.report.select import save_commit_names; save_commit_names(Path('$(OPT_DIR)/results'))"
	$(BIN)/cpbench optimize --report
	@echo "the example's guidelines state the patches too: make example (it reads $(OPT_DIR))"

# pytest in two passes: the tests that measure nothing on two workers (pytest-xdist; a file's tests stay
# on one worker, so its fixtures are built once), then those marked serial (asv timings and memory
# probes) alone; then the other interpreters' and releases' venvs, two targets at a time (mostly pip).
test: setup browser
	$(MAKE) -j 2 -O test-parallel $(CP4_VENV)/.installed
	$(BIN)/python -m pytest -m serial
	$(MAKE) -j 2 -O test-pythons test-synapse-min test-cellpose4 test-cellpose30

# the first pass, while .venv-cellpose4 installs beside it (mostly unpacking torch)
test-parallel: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not serial"

# the interpreter-sensitive tests (the history build: tarfile; the command line: cpbench --help, synth, info)
# under the other Pythons pyproject.toml allows: Debian 12's own 3.11.2 (the oldest; tarfile has no
# extraction filters before 3.11.4) and the newest 3.12 here. Each in a venv of its own (build/venv-X.Y.Z,
# kept) with what those tests import: no torch, no Cellpose. PYTHONS="..." to choose.
PYTHONS    ?= /usr/bin/python3 $(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3)))
# (setuptools: the tests' sdists are built without isolation; pyproject.toml's ranges apply as constraints)
SMOKE_DEPS := numpy scipy numba tifffile imagecodecs zarr tqdm packaging matplotlib setuptools "pytest>=7"
test-pythons:
	@if [ -z "$(strip $(PYTHONS))" ]; then echo "test-pythons: no other Python found; set PYTHONS=\"/path/to/python3 ...\""; \
	  [ -z "$$CI" ] || exit 1; exit 0; fi
	@for py in $(PYTHONS); do \
	  [ -x "$$py" ] || { echo "test-pythons: $$py does not exist; set PYTHONS to interpreters this machine has"; exit 1; }; \
	  v=$$($$py -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') && env=build/venv-$$v && \
	  if [ ! -f $$env/.installed ]; then rm -rf $$env && $$py -m venv $$env && \
	    $$env/bin/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep=chr(10))" > $$env/constraints.txt && \
	    $$env/bin/python -m pip install --quiet -c $$env/constraints.txt "numpy<2.1" $(SMOKE_DEPS) && \
	    $$env/bin/python -m pip install --quiet --no-deps -e . && touch $$env/.installed || exit 1; fi; \
	  echo "history and command-line tests under $$py (Python $$v)"; \
	  $$env/bin/python -m pytest -p no:cacheprovider -q tests/history/test_history.py tests/test_cli.py || exit 1; \
	done

# the fetch tests again with the LOWEST synapseclient pyproject.toml allows (the main venv has the
# newest), in a throwaway venv with only what those tests import
SYNAPSE_MIN  := $(shell sed -n 's/.*"synapseclient>=\([0-9.]*\),.*/\1/p' pyproject.toml)
SYNAPSE_VENV := .venv-synapse-min
test-synapse-min:
	rm -rf $(SYNAPSE_VENV)
	$(PYTHON) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SYNAPSE_VENV)/bin/python -m pip install --quiet "synapseclient==$(SYNAPSE_MIN)" numpy pytest
	$(SYNAPSE_VENV)/bin/python -c "import synapseclient; print('fetch tests with synapseclient', synapseclient.__version__)"
	PYTHONPATH=src CPBENCH_EXPECT_SYNAPSECLIENT=$(SYNAPSE_MIN) \
	  $(SYNAPSE_VENV)/bin/python -m pytest -p no:cacheprovider tests/fetch
	rm -rf $(SYNAPSE_VENV)

# the stage adapter and the model registry again under Cellpose 4, in a venv with the dependency set
# of every asv environment (benchmarks/requirements.txt: torch's CUDA build, about 5 GB, kept between
# runs); cpbench from src/ as in asv's environments
CELLPOSE4 ?= 4.2.1.1
CP4_VENV  := .venv-cellpose4
test-cellpose4: $(CP4_VENV)/.installed
	PYTHONPATH=src $(CP4_VENV)/bin/python -m pytest -p no:cacheprovider tests/stages tests/models tests/measure/test_identities.py \
	  tests/optimize/test_flow_qc.py

$(CP4_VENV)/.installed: benchmarks/requirements.txt
	$(PYTHON) tools/free_space.py $(CP4_VENV) 7 "$(CP4_VENV) (torch's CUDA build and Cellpose 4: about 5.5 GB)"
	$(PYTHON) -m venv $(CP4_VENV)
	$(CP4_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CP4_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements.txt "cellpose==$(CELLPOSE4)" "pytest>=7"
	$(CP4_VENV)/bin/python -c "import cellpose.models; from importlib.metadata import version as v; print('stage tests with cellpose', v('cellpose'), 'torch', v('torch'))"
	touch $@

# the stage tests under the first and last 3.0 releases (other follow-flows, get-masks and run_net
# than 3.1): each release is laid over .venv with PYTHONPATH (pip --target, no dependencies: 3.0
# needs nothing 3.1 does not)
CELLPOSE30 ?= 3.0 3.0.11
test-cellpose30: setup
	for v in $(CELLPOSE30); do \
	  $(BIN)/python -m pip install --quiet --no-deps --upgrade --target build/cellpose-$$v "cellpose==$$v" && \
	  PYTHONPATH=build/cellpose-$$v:src $(BIN)/python -m pytest -p no:cacheprovider -q tests/stages || exit 1; \
	done

clean:
	rm -rf $(VENV) $(SYNAPSE_VENV) $(CP4_VENV) build/venv-* data/synth $(HISTORY) $(SITE_VENDOR) .pytest_cache build/cellpose-*
