# embedrec: `make run` runs the main job, `make test` the tests. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= results/latest
# Offline machines keep unmodified MovieLens copies in ../shared/data; elsewhere embedrec downloads.
ifeq ($(origin EMBEDREC_DATA), undefined)
ifneq ($(wildcard ../shared/data),)
export EMBEDREC_DATA := $(abspath ../shared/data)
endif
endif

.PHONY: run test bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,serve]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/embedrec compare --out $(OUT)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) results .pytest_cache
