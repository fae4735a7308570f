# Quick start: `make run` (the notebook pipeline on the embedded faces) and `make test`.
# Both create the virtual environment .venv first if it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= cpu
OUT    ?= runs/$(PROFILE)

.PHONY: run test env notebooks clean-env

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

env: $(VENV)/.installed

run: env
	$(PY) -m dlfd run --profile $(PROFILE) --out $(OUT) $(if $(FORCE),--force,)

# tests/ includes the browser test (tests/test_browser.py): JupyterLab in the system's
# `chromium` via playwright (a dev dependency) runs every notebook on the smoke profile and
# also compares the NBVAL_CHECK_OUTPUT cells, so a separate nbval pass would only repeat that
# run. Skipped without chromium, except under CI=true.
test: env
	$(PY) -m pytest -q tests

# Re-execute the notebooks on the cpu profile and commit their outputs (figures, tables) into
# notebooks/, without widget state, so that GitHub shows a finished run.
notebooks: env
	$(PY) -m dlfd notebooks --profile $(PROFILE)

clean-env:
	rm -rf $(VENV)
