"""benchmarks/gpu.py, the framework against plain Keras on MobileNetV2, runs on a CPU too: its
``--quick`` sizes on Keras's JAX backend, in a process of its own, without TensorFlow."""

import math
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # the benchmark's quick sizes: about 30 s

HEADER = "| row | precision | framework img/s | plain img/s | ratio |"


def main_table(report: str) -> dict[tuple[str, str], list[float]]:
    """``{(row, precision): [framework img/s, plain img/s, ratio]}`` from the report's first
    table."""
    lines = report[report.index(HEADER) :].split("\n\n")[0].splitlines()[2:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {(c[0], c[1]): [float(v) for v in c[2:5]] for c in cells}


def test_quick_benchmark_prints_every_row_with_throughputs_and_ratios(tmp_path):
    out = tmp_path / "reports" / "gpu.md"
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            str(ROOT / "benchmarks" / "gpu.py"),
            "--quick",
            # The head row alone (the whole network's train step takes CI twice as long to compile
            # and runs the same code of the script), in bfloat16, two rounds.
            "--rows",
            "head",
            "--precisions",
            "mixed_bfloat16",
            "--rounds",
            "2",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = main_table(result.stdout)
    assert set(rows) == {("head", "mixed_bfloat16")}, result.stdout
    # Each side ran in both rounds, first in one and second in the other.
    runs = re.findall(r"round (\d): head mixed_bfloat16 (\w+):", result.stderr)
    assert runs == [("1", "framework"), ("1", "plain"), ("2", "plain"), ("2", "framework")]
    for framework, plain, ratio in rows.values():
        assert framework > 0 and plain > 0 and math.isfinite(ratio) and ratio > 0
        assert math.isclose(ratio, framework / plain, rel_tol=0.01, abs_tol=0.001)
    assert "| n/a | n/a |" in result.stdout  # no nvidia-smi here: no GPU utilization
    assert "Target framework/plain >= 0.97 in every row:" in result.stdout
    # The step breakdown: fit over resident batches, gather and copy, in milliseconds.
    breakdown = result.stdout[result.stdout.index("Where a step's time goes") :]
    cells = [c.strip() for c in breakdown.splitlines()[-1].strip("|").split("|")]
    fit, device, gather, copy = map(float, cells[2:6])  # at --quick sizes gather reads 0.0
    assert cells[:2] == ["head", "mixed_bfloat16"] and fit > 0 and device > 0
    assert gather >= 0 and copy >= 0
    # The framework's model compiles to the plain script's program, in bfloat16 too.
    assert "(the second side found the first's in JAX's compilation cache): in every row\n" in (
        result.stdout
    )
    assert out.read_text() == result.stdout  # --out: the same report
    imported = re.findall(r"^import time:.*\|\s*(\S+)\s*$", result.stderr, re.MULTILINE)
    assert "jax" in imported
    assert not [m for m in imported if m == "tensorflow" or m.startswith("tensorflow.")]
