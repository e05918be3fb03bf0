"""Runs that are stopped, killed, or started twice: what they leave, and how they continue."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import assert_one_line_error, run_cli

# A short staged run on the digits: a head stage on cached features, then everything.
STAGED = ["trainer.verbose=2", "backbone.input_size=[16,16]", "backbone.filters=[8,16]",
          "head.units=16", "trainer.stages=[{name:head,trainable:head,epochs:8},"
                           "{name:all,trainable:all,epochs:3}]"]


def start(tmp_path, *args):
    return subprocess.Popen([sys.executable, "-m", "framework", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epochs(run_dir, epochs: int, stage: int = 1, process=None):
    """Waits until the run's checkpoint holds ``epochs`` epochs of a stage."""
    log = run_dir / ".resume" / f"stage{stage}.epochs.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) > epochs:  # a header, then rows
            return
        assert process is None or process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{log} never reached {epochs} epochs")


def test_a_killed_run_resumes_in_its_dir_and_ends_as_an_uninterrupted_run(cli, tmp_path):
    clean = cli(*STAGED, "hydra.run.dir=clean", "trainer.feature_cache.dir=cache_clean")
    assert clean.returncode == 0, clean.stderr
    killed = start(tmp_path, *STAGED, "hydra.run.dir=run", "trainer.feature_cache.dir=cache")
    wait_for_epochs(tmp_path / "run", 3, process=killed)
    killed.kill()  # SIGKILL: nothing runs after it
    killed.wait()
    assert not (tmp_path / "run" / "metrics.json").exists()

    resumed = cli(*STAGED, "hydra.run.dir=run", "trainer.feature_cache.dir=cache")
    assert resumed.returncode == 0, resumed.stderr
    assert "continues from the run's checkpoint" in resumed.stdout
    assert "on cached features" in resumed.stdout  # extracted before the kill, not again
    for name in ("metrics.json", "history.csv"):  # bit for bit, on the same machine
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    assert not (tmp_path / "run" / ".resume").exists()


def test_a_killed_run_of_another_config_is_not_resumed_nor_touched(cli, tmp_path):
    killed = start(tmp_path, *STAGED, "hydra.run.dir=run")
    wait_for_epochs(tmp_path / "run", 1, process=killed)
    killed.kill()
    killed.wait()
    before = records(tmp_path / "run")
    result = cli(*STAGED, "seed=7", "hydra.run.dir=run")
    assert_one_line_error(result, "holds an unfinished run of another config")
    assert records(tmp_path / "run") == before  # its recorded config (.hydra/config.yaml) too


def records(run_dir):
    """A run dir's files but its lock (which holds the pid of the last process to take it)."""
    return {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_a_run_with_failed_one_line_and_the_shells_exit_code(tmp_path, signum,
                                                                            exit_code):
    running = start(tmp_path, *STAGED, "hydra.run.dir=run")
    wait_for_epochs(tmp_path / "run", 1, process=running)
    # A second process on the same run dir is refused while the first runs.
    second = subprocess.run([sys.executable, "-m", "framework", *STAGED, "hydra.run.dir=run"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert_one_line_error(second, f"in use by another running process (pid {running.pid})")

    running.send_signal(signum)
    _, stderr = running.communicate(timeout=120)
    name = signal.Signals(signum).name
    assert running.returncode == exit_code
    assert stderr.strip().splitlines()[-1] == f"interrupted: stopped by {name}"
    assert "Traceback" not in stderr
    assert (tmp_path / "run" / "FAILED").read_text() == f"stopped by {name}\n"
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("module, args, message", [
    ("framework", ["--cfg", "bogus"], "argument --cfg/-c: invalid choice: 'bogus'"),
    ("framework", ["--bogus"], "unrecognized arguments: --bogus"),
    ("framework.plugins", ["a", "b", "c"], "give at most a group and a name"),
    ("framework_plugins.shapes", ["out", "--num-classes", "abc"],
     "argument --num-classes: invalid int value: 'abc'"),
])
def test_usage_errors_are_one_line(tmp_path, module, args, message):
    assert_one_line_error(run_cli(*args, cwd=tmp_path, module=module), message)


def test_temporary_model_files_are_apart_per_process(tmp_path, monkeypatch):
    import framework.train as train_module

    saved = []

    class Model:
        def save(self, path):
            saved.append(path.name)
            path.write_text("model")

    train_module._save_model(Model(), tmp_path)
    assert saved == [f".model.{os.getpid()}.tmp.keras"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]
