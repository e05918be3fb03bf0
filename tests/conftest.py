import contextlib
import copy
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Only this project's plugins: an installed third-party package must not change test results.
os.environ["FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD"] = "1"
# JAX's persistent compilation cache, empty at the start of each session (xdist's workers and
# the commands the tests start share the one their session made): the suite trains the same
# small models again and again, and JAX compiles each afresh in every run and every process.
# test_train.py + test_job_checkpoint.py on JAX: 111 -> 68 s on 2 CPU cores.
# A size limit turns on JAX's file lock around each entry, which processes writing and reading
# the same entry at once need (JAX wants the filelock package for it: Ray's, here).
_JAX_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ and importlib.util.find_spec("filelock"):
    _JAX_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jax-cache-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # small programs too
    os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(2**30)

import pytest  # noqa: E402
from hydra.core.config_store import ConfigStore  # noqa: E402

from framework.config.schema import setup_configs  # noqa: E402
from framework.parts.registry import REGISTRIES  # noqa: E402
from framework.testing import compose as compose_run_config  # noqa: E402

import warm  # noqa: E402

setup_configs()  # the ConfigStore must be filled before any composition

ROOT = Path(__file__).resolve().parents[1]


def compose_config(*overrides, return_hydra_config=False):
    """The config ``python -m framework *overrides`` would run, via Hydra's compose API (with
    the backbone and head the command line picks to fit the dataset)."""
    return compose_run_config(list(overrides), return_hydra_config)


@pytest.fixture
def compose():
    return compose_config


@pytest.fixture
def compose_hydra():
    """Like ``compose``, with Hydra's own config (launcher, sweeper...) under ``hydra``."""
    return lambda *overrides: compose_config(*overrides, return_hydra_config=True)


@pytest.fixture
def isolated_registries():
    """Lets a test register parts; the registries and Hydra's ConfigStore are restored after."""
    store = ConfigStore.instance()
    saved_repo = copy.deepcopy(store.repo)
    saved_parts = {group: dict(r._parts) for group, r in REGISTRIES.items()}
    yield REGISTRIES
    store.repo = saved_repo
    for group, parts in saved_parts.items():
        REGISTRIES[group]._parts = parts


def run_cli(*args, cwd, module="framework", env=None):
    """Runs ``python -m <module> *args`` in a process of its own (forked by ``warm``); returns
    the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return warm.run([sys.executable, "-m", module, *args], cwd, full_env, timeout=600)


def run_importing(*args, cwd) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Runs ``python -X importtime *args`` in a process of its own; returns the result (its
    stderr without the import lines) and the modules it imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stderr.splitlines()
    imported = {line.split("|")[-1].strip() for line in lines if line.startswith("import time")}
    result.stderr = "".join(f"{line}\n" for line in lines if not line.startswith("import time"))
    return result, imported


def run_main(main, *args) -> subprocess.CompletedProcess:
    """Runs a command's ``main(argv)`` in this process; returns its exit code (0 where it
    returned), stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
    return subprocess.CompletedProcess([], code, out.getvalue(), err.getvalue())


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    """Polls ``condition()`` until it is true, rather than sleeping for a fixed time.

    Args:
        condition: called with no arguments; true once the wait is over.
        timeout: seconds after which the test fails, saying "waited TIMEOUT s for WHAT".
        what: what is awaited, for that message.
        interval: seconds between two calls.

    Returns:
        What ``condition()`` last returned (true).
    """
    deadline = time.monotonic() + timeout
    while not (met := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g} s for {what}")
        time.sleep(interval)
    return met


def assert_one_line_error(result, *fragments):
    """The command failed with exit code 2 and one line on stderr holding every fragment."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def cli(tmp_path):
    """``cli(*overrides)`` runs ``python -m framework`` with tmp_path as the working directory."""
    return lambda *args, **kw: run_cli(*args, cwd=tmp_path, **kw)


@pytest.fixture
def kept_model(monkeypatch) -> dict:
    """Makes ``train`` hand over the model it saves, in ``kept_model["model"]``."""
    import framework.run.train as train_module

    kept = {}
    original = train_module._save_model

    def save_and_keep(model, run_dir):
        kept["model"] = model
        original(model, run_dir)

    monkeypatch.setattr(train_module, "_save_model", save_and_keep)
    return kept


# The longest files first. Under --dist loadfile a file runs whole on one worker, in collection
# order: a long file collected last (test_readme.py, alphabetically late) keeps one core busy
# alone at the end while the other idles. Longest first keeps both busy to the end.
LONGEST_FILES = (
    "test_readme.py",
    "test_sweep.py",
    "test_applications.py",
    "test_run_faults.py",
    "test_curriculum_scores.py",
    "test_tuning.py",
    "test_backends.py",
    "test_gpu_benchmark.py",
    "test_job_checkpoint.py",
    "test_feature_cache.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order in a file


def pytest_unconfigure(config):
    if _JAX_CACHE:  # the session that made it (not an xdist worker)
        shutil.rmtree(_JAX_CACHE, ignore_errors=True)
