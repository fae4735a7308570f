# Quick start: `make run` (the notebook pipeline on the embedded faces) and `make test`.
# Both create the virtual environment .venv first if it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= cpu
OUT    ?= runs/$(PROFILE)

.PHONY: run test env smoke clean-env

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

env: $(VENV)/.installed

run: env
	$(PY) -m dlfd run --profile $(PROFILE) --out $(OUT) $(if $(FORCE),--force,)

test: env
	$(PY) -m pytest -q tests
	DLFD_PROFILE=smoke DLFD_OUT=$$(mktemp -d) $(PY) -m pytest -q --nbval-lax -p no:cacheprovider notebooks

clean-env:
	rm -rf $(VENV)
