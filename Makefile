# Two commands for a fresh machine (see README):
#   make run    - install everything into .venv and start the dashboard
#   make test   - install everything (Debian's chromium too, when root and missing) and run lint + all tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint unit e2e bench install clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m streamlit run app.py

browser:
	bash scripts/install_chromium.sh

lint: $(STAMP)
	$(PY) -m ruff check .

test: $(STAMP) browser lint
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest -m "not e2e"

e2e: $(STAMP) browser
	$(PY) -m pytest tests/e2e

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
