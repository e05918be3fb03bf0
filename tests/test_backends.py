"""The core on Keras's JAX backend beside TensorFlow, and the execution settings of trainer:
backend, precision, jit_compile, steps_per_execution and distribution.

The JAX runs are processes of their own: a process runs one Keras backend.
"""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli

JAX = {"KERAS_BACKEND": "jax"}
# Two CPU devices for JAX, as a machine with two GPUs would have.
TWO_DEVICES = {**JAX, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def imported_modules(importtime_stderr: str) -> set[str]:
    """The modules ``python -X importtime`` reports imported."""
    return {
        m.group(1)
        for m in re.finditer(r"^import time:.*\|\s*(\S+)\s*$", importtime_stderr, re.MULTILINE)
    }


@pytest.mark.slow
def test_a_digits_run_on_two_jax_devices_imports_no_tensorflow(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "framework",
            "dataset=digits",
            "trainer.epochs=1",
            "trainer.distribution=data_parallel",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env={**os.environ, **TWO_DEVICES},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    modules = imported_modules(result.stderr)
    assert "jax" in modules and "keras" in modules
    assert not {m for m in modules if m == "tensorflow" or m.startswith("tensorflow.")}
    # digits: 1078 train, 359 validation, 360 test examples
    assert (
        "note: 1 of 359 validation examples left out, so that every batch splits over the 2 devices"
    ) in result.stdout
    m = metrics(run_dir)
    assert m["execution"]["backend"] == "jax"
    assert m["execution"]["distribution"]["replicas"] == 2
    assert m["validation"]["accuracy"] > 0.5  # one epoch of the CNN learns the digits
    assert (run_dir / "model.keras").is_file() and (run_dir / "misclassified.png").is_file()


@pytest.mark.slow
def test_data_parallel_uses_both_devices_and_matches_one_device(tmp_path):
    runs = {}
    for distribution in ("data_parallel", "null"):
        run_dir = tmp_path / distribution
        result = run_cli(
            "experiment=iris_binary",
            "trainer.epochs=10",
            f"trainer.distribution={distribution}",
            f"hydra.run.dir={run_dir}",
            cwd=tmp_path,
            env=TWO_DEVICES,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert "note: trainer.distribution" not in result.stdout  # two devices: nothing to say
        runs[distribution] = metrics(run_dir)
    parallel, single = runs["data_parallel"], runs["null"]
    assert parallel["execution"]["distribution"] == {
        "name": "data_parallel",
        "devices": ["cpu:0", "cpu:1"],
        "replicas": 2,
    }
    assert single["execution"]["distribution"] is None
    for split in ("validation", "test"):
        assert parallel[split]["loss"] == pytest.approx(single[split]["loss"], abs=1e-4)
        assert parallel[split]["accuracy"] == pytest.approx(single[split]["accuracy"], abs=1e-6)
    odd = run_cli(
        "experiment=iris_binary",
        "trainer.batch_size=7",
        "trainer.distribution=data_parallel",
        f"hydra.run.dir={tmp_path / 'odd'}",
        cwd=tmp_path,
        env=TWO_DEVICES,
    )
    assert_one_line_error(
        odd, "trainer.batch_size=7 does not split over 2 devices", "accepted: a multiple of 2"
    )


@pytest.mark.slow
def test_data_parallel_on_one_device_says_so_in_a_note(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "experiment=iris_binary",
        "trainer.epochs=1",
        "trainer.verbose=0",
        "trainer.distribution=data_parallel",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env={"CUDA_VISIBLE_DEVICES": "-1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: trainer.distribution=data_parallel found 1 device (CPU:0; no GPU is "
        "visible): the model is not replicated and trains as it would without the "
        "setting"
    ]
    assert metrics(run_dir)["execution"]["distribution"]["replicas"] == 1


@pytest.mark.slow
def test_trainer_backend_picks_jax_before_keras_is_imported(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "experiment=iris_binary",
        "trainer.epochs=2",
        "trainer.backend=jax",
        "trainer.precision=mixed_bfloat16",
        "trainer.steps_per_execution=3",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env={"KERAS_BACKEND": "tensorflow"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    execution = metrics(run_dir)["execution"]
    assert execution["backend"] == "jax" and execution["precision"] == "mixed_bfloat16"
    assert execution["steps_per_execution"] == 3
    assert np.isfinite(metrics(run_dir)["test"]["loss"])


@pytest.mark.parametrize(
    "args, env, fragments",
    [
        (
            ["trainer.backend=torch"],
            {},
            ["unknown trainer.backend 'torch'", "accepted: tensorflow, jax"],
        ),
        (
            [],
            {"KERAS_BACKEND": "torch"},
            ["KERAS_BACKEND=torch is not supported", "accepted: tensorflow, jax"],
        ),
        (
            ["trainer.precision=float16"],
            {},
            [
                "unknown trainer.precision 'float16'",
                "accepted: float32, mixed_float16, mixed_bfloat16",
            ],
        ),
        (
            ["trainer.jit_compile=maybe"],
            {},
            ["unknown trainer.jit_compile 'maybe'", "accepted: auto, true, false"],
        ),
        (["trainer.steps_per_execution=0"], {}, ["trainer.steps_per_execution=0 is out of range"]),
        (
            ["trainer.distribution=model_parallel"],
            {},
            ["unknown trainer.distribution 'model_parallel'", "accepted: data_parallel"],
        ),
    ],
)
def test_bad_execution_settings_are_one_line_errors(tmp_path, args, env, fragments):
    result = run_cli(
        "experiment=iris_binary", *args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, env=env
    )
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
@pytest.mark.backends
# Both jit_compile values on TensorFlow. With XLA off, JAX runs op by op (the bfloat16 case on
# the 2-core machine: 15 s, not 4); compile_options hands the setting to Keras on every backend.
@pytest.mark.parametrize(
    "precision, compute, jit_compile",
    [
        ("mixed_float16", "float16", True),
        ("mixed_bfloat16", "bfloat16", keras.config.backend() == "jax"),
    ],
)
def test_mixed_precision_computes_in_16_bits_with_a_float32_output(
    tmp_path, compose, precision, compute, jit_compile
):
    from framework.run.train import train

    cfg = compose(
        "experiment=iris_binary",
        "trainer.epochs=2",
        f"trainer.precision={precision}",
        f"trainer.jit_compile={str(jit_compile).lower()}",
        "trainer.steps_per_execution=4",
        "trainer.checkpoint=false",
    )
    result = train(cfg, tmp_path / "run")
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    hidden = [
        layer for layer in model.get_layer("mlp").layers if isinstance(layer, keras.layers.Dense)
    ]
    assert hidden and all(layer.compute_dtype == compute for layer in hidden)
    assert all(w.dtype == "float32" for w in model.weights)  # variables stay float32
    output = model.get_layer("head").get_layer("predictions")
    assert output.compute_dtype == "float32"
    assert model.predict(np.zeros((2, 4), "float32"), verbose=0).dtype == np.float32
    assert result["execution"] == {
        "backend": keras.config.backend(),
        "precision": precision,
        "jit_compile": jit_compile,
        "steps_per_execution": 4,
        "distribution": None,
    }
    assert np.isfinite(result["test"]["loss"])
    keras.config.set_dtype_policy("float32")


@pytest.mark.backends
def test_float32_leaves_the_output_layer_on_the_global_policy(tmp_path, compose):
    from framework.run.train import train

    cfg = compose("experiment=iris_binary", "trainer.epochs=1", "trainer.checkpoint=false")
    train(cfg, tmp_path / "run")
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    config = model.get_layer("head").get_layer("predictions").get_config()
    assert config["dtype"]["config"]["name"] == "float32"
    assert model.get_layer("mlp").layers[-1].compute_dtype == "float32"
