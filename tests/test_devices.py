"""One GPU per sweep worker: a claim per process, released when the process dies."""

import subprocess
import sys
import textwrap

import pytest

from framework.errors import UserError
from framework.runtime import devices

# A worker: claims from fake GPU indices, prints its GPUs, then waits to be told to exit.
WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from framework.runtime.devices import claim_gpus
    print(",".join(claim_gpus(Path(sys.argv[1]), sys.argv[2].split(","), int(sys.argv[3]))),
          flush=True)
    print(",".join(claim_gpus(Path(sys.argv[1]), ["9"], 1)), flush=True)  # the same claim
    sys.stdin.read()
""")


def start_worker(sweep_dir, gpus="0,1,2,3", per_job="1"):
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(sweep_dir), gpus, per_job],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return worker, worker.stdout.readline().strip(), worker.stdout.readline().strip()


def test_each_worker_claims_its_own_gpus_for_its_life_and_a_dead_ones_are_reused(tmp_path):
    first, gpus, again = start_worker(tmp_path)
    second, other, _ = start_worker(tmp_path)
    assert (gpus, again, other) == ("0", "0", "1")  # a process keeps its claim
    first.kill()  # a worker dies: the kernel drops its lock
    first.wait()
    replacement, reused, _ = start_worker(tmp_path)
    assert reused == "0"
    pairs, pair, _ = start_worker(tmp_path / "pairs", per_job="2")
    assert pair == "0,1"
    for worker in (second, replacement, pairs):
        worker.communicate("")


def test_more_workers_than_gpus_is_a_one_line_error(tmp_path):
    holder, gpus, _ = start_worker(tmp_path, gpus="0")
    assert gpus == "0"
    result = subprocess.run(
        [sys.executable, "-c", WORKER, str(tmp_path), "0", "1"],
        input="",
        capture_output=True,
        text=True,
    )
    assert "held by another worker" in result.stderr and "hydra.launcher.n_jobs=1" in (
        result.stderr
    )
    holder.communicate("")


def test_visible_gpus_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(devices.GPUS_ENV, "2,3")
    assert devices.visible_gpus() == ["2", "3"]
    monkeypatch.delenv(devices.GPUS_ENV)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert devices.visible_gpus() == []


def test_a_cpu_only_worker_says_so_once(monkeypatch, tmp_path):
    monkeypatch.setattr(devices, "_on_cpu", False)
    monkeypatch.setenv(devices.GPUS_ENV, "")
    assert devices.claim_worker_gpus(tmp_path).startswith("note: no GPU visible")
    assert devices.claim_worker_gpus(tmp_path) is None
    with pytest.raises(UserError, match="gpus_per_job must be at least 1"):
        devices.claim_gpus(tmp_path, ["0"], 0)
