"""Runs that are stopped, killed, or started twice: what they leave, and how they continue."""

import os
import signal
import subprocess
import sys
import time

import pytest

import warm
from conftest import assert_one_line_error, run_cli

# A short staged run: a head stage on cached features (of a randomly initialized mlp, so keyed
# by the seed), then everything; dropout, whose random state a resume must restore too.
STAGED = [
    "dataset=iris",
    "regularizer=[dropout]",
    "trainer.batch_size=8",
    "trainer.verbose=2",
    "trainer.stages=[{name:head,trainable:head,epochs:12},{name:all,trainable:all,epochs:4}]",
    "trainer.checkpoint_interval=0",
]  # a backup after every epoch
# Long enough to be still running while a second process starts.
LONG = [*STAGED, "trainer.stages.0.epochs=300"]


def start(tmp_path, *args):
    return warm.popen([sys.executable, "-m", "framework", *args], tmp_path)


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


@pytest.mark.slow
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


# Runs killed (SIGKILL) at three moments each, ``(stage, epochs in its log)``, one after another
# in one run dir, each time run again there, then to the end: each must end byte for byte as
# the same command run without a stop. What a resume must restore: each epoch's data order
# (a tf.data pipeline's reshuffles, or Keras's of NumPy arrays), the weights, the optimizer, the
# random layers' states (dropout, augmentation), the finished stages and the epochs' rows.
# Epochs of about a second on 2 cores, so that each kill lands in the epoch after its moment.
KILLED_RUNS = {
    # The default run (digits, simple_cnn), shorter; backed up after every epoch.
    "default": (["trainer.epochs=4", "trainer.checkpoint_interval=0"], [(1, 1), (1, 2), (1, 3)]),
    # The same, augmenting its images (random layers inside the model).
    "augment": (
        ["regularizer=[augment]", "trainer.epochs=4", "trainer.checkpoint_interval=0"],
        [(1, 1), (1, 2), (1, 3)],
    ),
    # A staged transfer run: the head of a frozen keras.applications backbone (VGG16: a random
    # MobileNetV2 passes on no signal), then its last layers too. The default
    # checkpoint_interval: a killed stage starts again, a finished one is restored.
    "transfer": (
        [
            "dataset=shapes",
            "dataset.samples_per_class=40",
            "backbone=vgg16",
            "backbone.input_size=[32,32]",
            "backbone.weights=null",
            "head=gap_dense",
            "trainer.feature_cache.enabled=false",  # epochs long enough to kill in
            "trainer.stages=[{name:head,epochs:2,trainable:head},"
            "{name:finetune,epochs:3,trainable:{last:4},learning_rate:1e-5}]",
        ],
        [(1, 1), (2, 1), (2, 2)],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", KILLED_RUNS)
def test_a_run_killed_three_times_ends_as_an_uninterrupted_run(name, cli, tmp_path):
    args, moments = KILLED_RUNS[name]
    args = [*args, "trainer.verbose=0"]
    clean = cli(*args, "hydra.run.dir=clean")
    assert clean.returncode == 0, clean.stderr
    run_dir = tmp_path / "run"
    for stage, epochs in moments:
        killed = start(tmp_path, *args, "hydra.run.dir=run")
        wait_for_epochs(run_dir, epochs, stage, process=killed)
        killed.kill()
        killed.communicate()
        assert not (run_dir / ".resume" / f"stage{stage}.json").exists(), "killed too late"
    resumed = cli(*args, "hydra.run.dir=run")
    assert resumed.returncode == 0, resumed.stderr
    for file in ("metrics.json", "history.csv"):
        assert (run_dir / file).read_bytes() == (tmp_path / "clean" / file).read_bytes(), file


def records(run_dir):
    """A run dir's files but its lock (which holds the pid of the last process to take it)."""
    return {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}


@pytest.mark.slow
def test_sigterm_stops_a_run_with_failed_one_line_and_143_and_it_resumes_only_as_itself(
    cli, tmp_path
):
    # (Ctrl-C: 130 and "stopped by SIGINT", tests/test_sweep.py's parallel sweep.)
    running = start(tmp_path, *LONG, "hydra.run.dir=run")
    wait_for_epochs(tmp_path / "run", 1, process=running)
    # A second process on the same run dir is refused while the first runs.
    second = run_cli(*LONG, "hydra.run.dir=run", cwd=tmp_path)
    assert_one_line_error(second, f"in use by another running process (pid {running.pid})")

    running.send_signal(signal.SIGTERM)  # what timeout, Slurm and docker stop send
    _, stderr = running.communicate(timeout=120)
    assert running.returncode == 143
    assert stderr.strip().splitlines()[-1] == "interrupted: stopped by SIGTERM"
    assert "Traceback" not in stderr
    assert (tmp_path / "run" / "FAILED").read_text() == "stopped by SIGTERM\n"
    assert not (tmp_path / "run" / "metrics.json").exists()

    # Run again with another config, it is refused, the stopped run's records untouched.
    before = records(tmp_path / "run")
    result = cli(*LONG, "seed=7", "hydra.run.dir=run")
    assert_one_line_error(result, "holds an unfinished run of another config")
    assert records(tmp_path / "run") == before  # its recorded config (.hydra/config.yaml) too
    # A search too: it once ran all its trials there, and was refused only as it retrained.
    search = cli("experiment=tune_wine_random", "tuner.max_trials=1", "hydra.run.dir=run")
    assert_one_line_error(search, "holds an unfinished run of another config")
    assert records(tmp_path / "run") == before


def test_sigterm_during_a_search_stops_it_with_failed_one_line_and_143(tmp_path):
    # Once: a signal lost as Keras freed the last trial (Python ignores what a garbage
    # collector's callback raises) let the search go on, retrain, and exit 0; and a stopped
    # search's run dir had no FAILED.
    log = tmp_path / "search.log"
    search = warm.popen(
        [
            sys.executable,
            "-m",
            "framework",
            "experiment=tune_wine_random",
            "tuner.max_trials=3",
            "trainer.epochs=2",
            "hydra.run.dir=run",
        ],
        tmp_path,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while "Trial 1:" not in log.read_text() and time.monotonic() < deadline:
        assert search.poll() is None, log.read_text()
        time.sleep(0.01)
    search.send_signal(signal.SIGTERM)  # as the second trial starts
    search.wait(timeout=120)
    output = log.read_text()
    assert search.returncode == 143, output[-2000:]
    assert output.strip().splitlines()[-1] == "interrupted: stopped by SIGTERM"
    assert "Traceback" not in output and "Exception ignored" not in output
    assert "Retraining" not in output
    assert (tmp_path / "run" / "FAILED").read_text() == "stopped by SIGTERM\n"


def test_a_stop_that_python_ignored_is_raised_where_the_run_moves_on(capfd):
    from framework.errors import Stopped, raise_if_stopped, stop, unraisable_hook

    class FreedAsASignalComes:  # as a weakref callback of the garbage collector
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # the handler runs here, in this (the main) thread

    previous = signal.signal(signal.SIGTERM, stop), sys.unraisablehook
    sys.unraisablehook = unraisable_hook
    try:
        FreedAsASignalComes()  # its Stopped is ignored by Python
        assert "Traceback" not in capfd.readouterr().err
        with pytest.raises(Stopped) as stopped:
            raise_if_stopped()
        assert str(stopped.value) == "stopped by SIGTERM"
        raise_if_stopped()  # once
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        sys.unraisablehook = previous[1]


@pytest.mark.slow
def test_a_run_whose_output_pipe_closes_stops_in_one_line_with_141(tmp_path):
    # python -m framework ... | head -1: head exits after its line. A process of its own: a
    # forked one writes to files.
    running = subprocess.Popen(
        [sys.executable, "-m", "framework", *LONG, "hydra.run.dir=run"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in running.stdout:
        if line.startswith("Stage 1/2 head"):
            break
    else:
        raise AssertionError(running.stderr.read())  # ended before training
    running.stdout.close()
    stderr = running.stderr.read()
    assert running.wait(timeout=300) == 141  # 128 + SIGPIPE, as the shell shows such a stop
    assert stderr.strip().splitlines()[-1] == "interrupted: the output pipe closed"
    assert "Traceback" not in stderr
    assert (tmp_path / "run" / "FAILED").read_text().startswith("BrokenPipeError")
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize(
    "module, args, message",
    [
        ("framework", ["--cfg", "bogus"], "argument --cfg/-c: invalid choice: 'bogus'"),
        ("framework", ["--bogus"], "unrecognized arguments: --bogus"),
        ("framework.plugins", ["a", "b", "c"], "give at most a group and a name"),
        (
            "framework_plugins.shapes",
            ["out", "--num-classes", "abc"],
            "argument --num-classes: invalid int value: 'abc'",
        ),
    ],
)
def test_usage_errors_are_one_line(tmp_path, module, args, message):
    assert_one_line_error(run_cli(*args, cwd=tmp_path, module=module), message)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["hydra.run.dir=" + "d" * 300],
            "cannot use hydra.run.dir=" + "d" * 300 + ": File name "
            "too long; choose another directory (hydra.run.dir=...)",
        ),
        (["-m", "hydra.sweep.dir=" + "d" * 300], "cannot use hydra.sweep.dir=" + "d" * 300),
        (
            ["++" + "k" * 300 + "=1"],
            "File name too long: a name of 300 characters, over the system's limit, 'kkkk",
        ),
    ],
)
def test_names_over_the_systems_limit_are_refused_in_one_line(tmp_path, args, message):
    # Once: "OSError: File name too long" and its traceback.
    assert_one_line_error(run_cli(*args, "dataset=iris", cwd=tmp_path), message)
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.slow
def test_a_run_dir_lost_mid_run_stops_in_one_line_and_the_run_reruns_after(tmp_path):
    # A disk unmounted, a dir made immutable (chattr +i): the stage's backup cannot be written.
    # Once: two tracebacks, the second as FAILED could not be written either.
    args = [*STAGED, "trainer.stages.0.epochs=150", "hydra.run.dir=run"]
    running = start(tmp_path, *args)
    wait_for_epochs(tmp_path / "run", 3, process=running)
    (tmp_path / "run").rename(tmp_path / "away")
    (tmp_path / "run").write_text("")  # a file where the run dir was: writes fail (ENOTDIR)
    _, stderr = running.communicate(timeout=120)
    assert running.returncode == 1, stderr[-2000:]  # a fault, not bad input
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Not a directory: "), stderr[-2000:]
    # Once the dir is back, the same command continues the run and finishes it.
    (tmp_path / "run").unlink()
    (tmp_path / "away").rename(tmp_path / "run")
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "continues from the run's checkpoint" in result.stdout
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_temporary_model_files_are_apart_per_process(tmp_path, monkeypatch):
    import framework.run.train as train_module

    saved = []

    class Model:
        def save(self, path):
            saved.append(path.name)
            path.write_text("model")

    train_module._save_model(Model(), tmp_path)
    assert saved == [f".model.{os.getpid()}.tmp.keras"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]
