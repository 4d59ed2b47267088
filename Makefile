# Two commands for a fresh machine (see README):
#   make run    - install everything into .venv and start the dashboard (http://127.0.0.1:8501)
#   make test   - install everything (Debian's chromium too, when root and missing) and run lint + all tests
# Nothing here needs a GPU; everything is installed from the package registries (pip, apt).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Extra arguments for `streamlit run`, e.g. make run ARGS="--server.port 8502"
ARGS   ?=
# Extra arguments for pytest, e.g. make test PYTEST_ARGS="-x -k architectures"
PYTEST_ARGS ?=

.PHONY: run test lint unit e2e bench install browser venv clean

# The virtual environment. Debian's python3 ships venv separately (python3-venv): install it when root.
$(PY):
	$(PYTHON) -m venv $(VENV) || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    rm -rf $(VENV) && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv \
	    && $(PYTHON) -m venv $(VENV); \
	  else echo "python3 -m venv failed: install python3-venv (e.g. sudo apt-get install python3-venv)" >&2; exit 1; fi; }

venv: $(PY)

# Reinstalls when a requirements file changes; the stamp is only written once pip succeeded.
$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m streamlit run app.py $(ARGS)

browser:
	bash scripts/install_chromium.sh

lint: $(STAMP)
	$(PY) -m ruff check .

test: $(STAMP) browser lint
	$(PY) -m pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

e2e: $(STAMP) browser
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

# Every bench/bench_*.py in turn; each rewrites its own section of docs/benchmarks.md.
# One that fails does not stop the others; the failures are named at the end (and make fails).
bench: $(STAMP)
	@failed=""; for f in bench/bench_*.py; do \
	  [ -e "$$f" ] || continue; m=$$(basename $$f .py); echo "== bench.$$m"; \
	  $(PY) -m bench.$$m || failed="$$failed $$m"; done; \
	if [ -n "$$failed" ]; then echo "benchmarks that failed:$$failed" >&2; exit 1; fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
