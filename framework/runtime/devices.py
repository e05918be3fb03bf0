"""One GPU per worker process of a parallel sweep, claimed before TensorFlow touches a device.

joblib's loky workers run many jobs each, and a worker that imported TensorFlow keeps the GPUs
it saw: so the claim belongs to the process, not to the job. A claim is an ``fcntl.flock`` on a
file in the sweep dir; the kernel drops it when its process dies, so a worker that crashed and
was replaced frees its GPU for the next one. Ray assigns GPUs itself (``num_gpus``) and is left
alone; so is a sweep whose jobs run one after another in one process.
"""

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from framework.errors import UserError

# The GPUs a sweep may share out, e.g. "0,1,2,3"; by default those CUDA_VISIBLE_DEVICES names,
# else every GPU nvidia-smi lists.
GPUS_ENV = "FRAMEWORK_GPUS"
CLAIMS = ".gpu_claims"

_claim: tuple = ()  # (the locked file, its GPUs): held for this process's life
_on_cpu = False  # this process found no GPU (and said so)


def claim_worker_gpus(sweep_dir: Path, per_job: int = 1) -> str | None:
    """A sweep worker's GPU claim, made on its first job and kept for the others.

    Returns:
        One line for the worker's first job (its GPUs, or that it has none), then None.
    """
    global _on_cpu
    if _claim or _on_cpu:
        return None
    gpus = visible_gpus()
    if not gpus:
        _on_cpu = True
        return "note: no GPU visible; this worker runs its jobs on the CPU"
    claimed = claim_gpus(sweep_dir, gpus, per_job)
    return f"worker {os.getpid()}: GPU {','.join(claimed)}, for every job it runs"


def gpu_workers(per_job=1) -> int:
    """How many workers can each claim ``per_job`` GPUs here (``hydra/launcher=gpus``); 1
    without GPUs."""
    return max(len(visible_gpus()) // max(int(per_job), 1), 1)


def visible_gpus() -> list[str]:
    """The GPU indices a sweep may share out; empty on a machine without GPUs."""
    for env in (GPUS_ENV, "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(env)
        if value is not None:
            return [g.strip() for g in value.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return [str(i) for i, line in enumerate(listing.stdout.splitlines()) if line.startswith("GPU ")]


def claim_gpus(sweep_dir: Path, gpus: list[str], per_job: int = 1) -> list[str]:
    """Claims ``per_job`` of ``gpus`` for this process and shows only them to it.

    Args:
        sweep_dir: the sweep's directory, where the claims are kept.
        gpus: the GPU indices to share out.
        per_job: how many GPUs each worker gets.

    Returns:
        The claimed GPU indices (the same on every call in one process); empty without GPUs.

    Raises:
        UserError: every group of GPUs is claimed by another live worker.
    """
    global _claim
    if _claim:
        return _claim[1]
    if not gpus:
        return []
    if per_job < 1:
        raise UserError(f"trainer.gpus_per_job must be at least 1. Received: {per_job}")
    slots = [gpus[i : i + per_job] for i in range(0, len(gpus) - per_job + 1, per_job)]
    claims = sweep_dir / CLAIMS
    claims.mkdir(parents=True, exist_ok=True)
    for number, slot in enumerate(slots):
        lock = open(claims / f"slot{number}.lock", "a+")  # noqa: SIM115 (held for life)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()} gpus {','.join(slot)}\n")
        lock.flush()
        _claim = (lock, slot)
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(slot)
        return slot
    raise UserError(
        f"every group of {per_job} GPU(s) of {','.join(gpus)} is held by another worker of "
        f"this sweep; run at most {len(slots)} job(s) at once (hydra.launcher.n_jobs={len(slots)})"
    )
