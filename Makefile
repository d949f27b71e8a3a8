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

.PHONY: run test bench browser clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,serve,docs]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/embedrec compare --models dot,biased,mlp,mean,bias,pop --out $(OUT)

test: $(BIN)/.installed browser
	$(BIN)/python -m pytest -q

# The browser tests drive Debian's Chromium with Playwright (never a downloaded browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium (sudo apt-get install chromium) for the browser tests"; exit 1; fi; }

bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@command -v wrk >/dev/null 2>&1 || apt-get install -y -qq wrk >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python benchmarks/reference.py
	$(BIN)/python benchmarks/kernels.py
	$(BIN)/python benchmarks/recommend.py
	$(BIN)/python benchmarks/serve_load.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/distributed.py
	$(BIN)/python benchmarks/tune.py
	$(BIN)/python benchmarks/ranking.py
	$(BIN)/python benchmarks/topn.py

clean:
	rm -rf $(VENV) results .pytest_cache
