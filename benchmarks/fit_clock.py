"""Runs a Python script or ``-m module`` with the time it spends in ``keras.Model.fit`` clocked:
the total, in seconds, is written to the file that ``FIT_CLOCK_FILE`` names when the process
exits. ``overhead.py`` runs both sides of a comparison through it, to tell the training loop,
which they share, from the rest. Keras is imported first, to wrap ``fit``, on the backend that
``KERAS_BACKEND`` names (a command that picks its own, ``trainer.backend=jax``, cannot)::

    FIT_CLOCK_FILE=fit.txt python benchmarks/fit_clock.py -m framework
    FIT_CLOCK_FILE=fit.txt python benchmarks/fit_clock.py benchmarks/plain_keras.py digits
"""

import atexit
import os
import runpy
import sys
import time
from pathlib import Path

import keras

_fit = keras.Model.fit
_seconds = [0.0]


def clocked_fit(self, *args, **kwargs):
    start = time.perf_counter()
    try:
        return _fit(self, *args, **kwargs)
    finally:
        _seconds[0] += time.perf_counter() - start


def write_total(path: Path):
    path.write_text(f"{_seconds[0]:.6f}\n")


if __name__ == "__main__":
    keras.Model.fit = clocked_fit
    atexit.register(write_total, Path(os.environ["FIT_CLOCK_FILE"]))
    # sys.path[0] as python itself sets it for the command, not this script's folder.
    if len(sys.argv) > 2 and sys.argv[1] == "-m":
        sys.argv, sys.path[0] = [sys.argv[2], *sys.argv[3:]], os.getcwd()
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    elif len(sys.argv) > 1:
        sys.argv = sys.argv[1:]
        sys.path[0] = str(Path(sys.argv[0]).resolve().parent)
        runpy.run_path(sys.argv[0], run_name="__main__")
    else:
        sys.exit(f"usage: python {sys.argv[0]} (-m module | script) [args...]")
