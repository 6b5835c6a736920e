# Set-up and the two entry points of the README: `make demo` and `make test`.
# Every pip call passes the CPU torch constraints (constraints.txt).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := -c constraints.txt
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup demo experiment test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
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

clean:
	rm -rf $(VENV) build *.egg-info
