# make run:  create .venv if needed, install, run the default experiment (offline).
# make test: create .venv if needed, install, run the whole test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test clean

install: $(STAMP)

# Reinstall when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,launchers,search]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m framework

# One worker per core; a test file stays on one worker, so its module fixtures are built once.
# Then the core's fast subset (marked backends) again on Keras's JAX backend.
test: $(STAMP)
	$(PY) -m pytest -n auto --dist loadfile
	KERAS_BACKEND=jax $(PY) -m pytest -n auto --dist loadfile -m backends

clean:
	rm -rf $(VENV) build *.egg-info
