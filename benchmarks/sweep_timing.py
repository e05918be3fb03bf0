"""What the sweep benchmarks share: the wall time of one ``python -m framework -m`` sweep."""

import subprocess
import sys
import time
from pathlib import Path


def time_sweep(workdir: Path, overrides: list[str]) -> float:
    """Runs ``python -m framework -m *overrides`` in ``workdir`` (its sweep dir inside it).

    Returns:
        The wall time in seconds, start-up included.
    """
    command = [
        sys.executable,
        "-m",
        "framework",
        "-m",
        *overrides,
        f"hydra.sweep.dir={workdir / 'sweep'}",
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start
