# Set-up and the two entry points of the README: `make demo` and `make test`.
# Every pip call passes the CPU torch constraints (constraints.txt).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := -c constraints.txt
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup demo experiment test lint docs docs-serve docs-reference clean

# The install takes ~2 GB in the venv plus pip's temporary files: say so before pip fails
# half-way with "No space left on device" (as a CI run on a full disk once did).
DISK_NEED_GB ?= 3
define CHECK_DISK
import os, shutil, sys, tempfile
venv, need = os.path.abspath(sys.argv[1]), float(sys.argv[2])
place = venv
while not os.path.exists(place):
    place = os.path.dirname(place)
for where in dict.fromkeys([place, tempfile.gettempdir()]):
    free = shutil.disk_usage(where).free / 1e9
    if free < need:
        sys.exit(f"Error: {free:.1f} GB free on {where}; installing vdi needs about {need:g} GB "
                 "(torch CPU, open_clip, spaCy, stanza, and pip's temporary files)\n"
                 "Hint: free some space there (or set VENV=... / TMPDIR=... to a disk with room) "
                 "and run make again")
endef
export CHECK_DISK

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c "$$CHECK_DISK" "$(VENV)" "$(DISK_NEED_GB)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools $(CONSTRAINTS)
	$(PIP) install -q $(CONSTRAINTS) -e '.[all,dev]'
	touch $@

demo: setup
	bash examples/demo.sh

# The paper's experiments in miniature (~6 h on 2 cores, resumable): examples/experiment-results/.
experiment: setup
	$(BIN)/python examples/experiment.py $(EXPERIMENT_ARGS)

# pytest exits 5 when it collected nothing: that fails the suite too.
test: setup
	@$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: setup
	$(BIN)/ruff check .

# The documentation site (mkdocs.yml, pages in docs/): built strictly, as tests/test_docs.py
# does; docs-serve serves it with live reload at http://127.0.0.1:8000/. docs-reference
# rewrites the generated pages (docs/reference/) after a change to the CLI or the hooks.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

docs-reference: setup
	$(BIN)/python -m vdi_cli.docs_reference

clean:
	rm -rf $(VENV) build site *.egg-info
