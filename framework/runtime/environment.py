"""The machine a run ran on and the versions of the libraries it ran with, as its record keeps
them (read from the system and the installed packages' metadata: nothing is imported)."""

import functools
import importlib.metadata
import os
import platform
import shutil
import subprocess

# The packages whose versions can change a run's numbers, by their distribution names; those
# not installed are left out.
LIBRARIES = (
    "keras-framework",
    "keras",
    "tensorflow",
    "jax",
    "jaxlib",
    "numpy",
    "scikit-learn",
    "hydra-core",
)


@functools.cache
def environment() -> dict:
    """The machine and the library versions of this process (found once per process).

    Returns:
        ``python``, ``platform``, ``processor``, ``cpus``, ``gpus`` (the names ``nvidia-smi``
        lists; empty without it) and ``libraries`` (version by package name).
    """
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _processor(),
        "cpus": os.cpu_count(),
        "gpus": _gpu_names(),
        "libraries": {name: version for name in LIBRARIES if (version := _version(name))},
    }


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _processor() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what Python's platform says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_names() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in listing.stdout.splitlines() if line.strip()]
