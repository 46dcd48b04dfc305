# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv if missing and install the project with pinned versions (constraints.txt).

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Keep Prefect's home and its ephemeral API database inside the project directory,
# and give the ephemeral server time to start on a cold machine.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export DO_NOT_TRACK ?= 1

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11+) on PATH, or run: make PYTHON=python3 ..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,hf]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/resonanz demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,bench]'
	$(BIN)/python -m bench.pipeline

clean:
	rm -rf $(VENV) .prefect resonanz.duckdb resonanz.duckdb.wal reports
