# make run:  create .venv if needed, install, run the default experiment (offline).
# make test: create .venv if needed, install, lint and check the formatting (ruff), run the whole
#            test suite.
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
	$(PY) -m pip install --quiet -e ".[dev,launchers,search,tracking,serve]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m framework

# The whole suite on TensorFlow, one worker per core; a test file stays on one worker, so its
# module fixtures are built once. Beside it, in one more process, the core's fast subset (marked
# backends) on Keras's JAX backend, at a lower priority (nice 5): it fills the cores' idle time
# (tests waiting on the processes they start) rather than competing, and its output follows the
# TensorFlow pass's, which ends with its 25 slowest tests. Fails if either pass fails. On the
# 2-core machine, in a fresh clone of cb9b7d9: the TensorFlow pass (668 tests) took 1239 s beside
# the JAX pass at nice 5 (120 tests, 729 s); the whole, install and ruff included, 1342 s: over
# the 15 minutes CI allows it (the README test alone: 426 s on one worker). First
# ruff: lint, then the formatting (fails on code ruff format would change).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@KERAS_BACKEND=jax nice -n 5 $(PY) -m pytest -p no:cacheprovider -m backends > .jax-pass.log 2>&1 & \
	jax=$$!; $(PY) -m pytest -n auto --dist loadfile --durations=25; tf=$$?; wait $$jax; jax_status=$$?; \
	echo "== the JAX pass: KERAS_BACKEND=jax pytest -m backends =="; cat .jax-pass.log; \
	test $$tf -eq 0 -a $$jax_status -eq 0

clean:
	rm -rf $(VENV) build *.egg-info
