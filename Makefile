# fgbg: `make repro` sets everything up and runs the pipeline; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: repro test venv data clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# The built-in sources; they hash to exactly what data.dvc records (tests/test_synth.py checks it).
data: venv
	@if [ -d data ]; then echo "data/ exists; leaving it as is"; else $(BIN)/fgbg synth data --out data; fi

repro: venv data
	$(BIN)/dvc repro
	$(BIN)/fgbg report

test: venv
	$(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
