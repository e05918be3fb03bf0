"""``python -m framework -m``: every job runs in its own directory, a failed job does not stop the
others, and the sweep ends with a summary, best first."""

import csv
import json
import sys

import pytest

import warm
from conftest import assert_one_line_error, run_cli, wait_until

# Two joblib workers on three jobs that would train for ever: a sweep to stop.
ENDLESS_PARALLEL_SWEEP = [
    "-m",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
    "experiment=wine",
    "trainer.verbose=0",
    "trainer.epochs=100000",
    "backbone.activation=relu,tanh,elu",
    "hydra.sweep.dir=sweep",
]


def hparams_session(log_dir):
    """The hyperparameters and metric values that TensorBoard reads from a job's event file."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(log_dir))
    events.Reload()
    start = metadata.parse_session_start_info_plugin_data(
        events.PluginTagToContent("hparams")[metadata.SESSION_START_INFO_TAG]
    )
    settings = {
        name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        for name, value in start.hparams.items()
    }
    scores = {
        tag: float(tensor_util.make_ndarray(events.Tensors(tag)[0].tensor_proto))
        for tag in events.Tags()["tensors"]
        if tag != metadata.SESSION_START_INFO_TAG
    }
    return settings, scores


@pytest.mark.slow
def test_a_sweep_runs_every_job_and_ends_with_a_summary_best_first(cli, tmp_path):
    result = cli(
        "-m",
        "experiment=iris_binary",
        "trainer.epochs=2",
        "trainer.verbose=0",
        "optimizer.name=adam,adamx,sgd",
        "sweep.keep_top_k=1",
        "hydra.sweep.dir=sweep",
    )
    sweep = tmp_path / "sweep"
    # Job 1 names an unknown optimizer: it fails, the jobs after it still run.
    assert (sweep / "1" / "FAILED").is_file() and not (sweep / "1" / "metrics.json").exists()
    metrics = {job: json.loads((sweep / job / "metrics.json").read_text()) for job in ("0", "2")}
    # Each finished job has its model card, whose command runs the job again on its own.
    command = "python -m framework experiment=iris_binary trainer.epochs=2 trainer.verbose=0"
    card = (sweep / "2" / "model_card.md").read_text()
    assert f"{command} optimizer.name=sgd sweep.keep_top_k=1\n" in card
    assert not (sweep / "1" / "model_card.md").exists()
    assert "error: job 1 failed: unknown optimizer 'adamx'" in result.stderr
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: 1 sweep job(s) did not finish; job 1: failed (see summary.csv in the sweep "
        "directory)"
    )
    # The error is printed once, as the job fails; the table and the last line say "failed".
    assert (result.stdout + result.stderr).count("unknown optimizer") == 1
    assert "  optimizer.name=adamx  (failed)\n" in result.stdout

    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert {row["job"]: row["overrides"] for row in rows} == {
        "0": "optimizer.name=adam",
        "1": "optimizer.name=adamx",
        "2": "optimizer.name=sgd",
    }
    finished = [row for row in rows if row["status"] == "finished"]
    assert [float(row["validation_accuracy"]) for row in finished] == sorted(
        (m["validation"]["accuracy"] for m in metrics.values()), reverse=True
    )
    for row in finished:
        assert float(row["test_accuracy"]) == metrics[row["job"]]["test"]["accuracy"]
    assert rows[-1]["job"] == "1" and rows[-1]["status"].startswith("failed: UserError")
    assert "Sweep:     3 jobs, best val_accuracy first" in result.stdout
    assert {row["objective"] for row in finished} == {"val_accuracy"}
    assert [float(row["objective_value"]) for row in finished] == [
        float(row["validation_accuracy"]) for row in finished
    ]
    assert (sweep / "summary.png").stat().st_size > 0
    # sweep.keep_top_k=1: the best job keeps its model, the other finished one loses it.
    best, other = finished[0]["job"], finished[1]["job"]
    assert (sweep / best / "model.keras").is_file() and not (sweep / other / "model.keras").exists()
    assert (
        f"Deleted:   model.keras of 1 job(s) outside the best 1 (sweep.keep_top_k): job {other}"
    ) in result.stdout
    # Each finished job is a session of TensorBoard's HParams dashboard: what the sweep varies,
    # and its scores.
    assert hparams_session(sweep / "0" / "tensorboard") == (  # scalars are float32
        {"optimizer.name": "adam"},
        pytest.approx(
            {
                "val_accuracy": metrics["0"]["validation"]["accuracy"],
                "val_loss": metrics["0"]["validation"]["loss"],
                "test_accuracy": metrics["0"]["test"]["accuracy"],
            },
            rel=1e-6,
        ),
    )

    # The same sweep dir again: refused before anything in it is touched.
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    again = cli("-m", "experiment=iris_binary", "optimizer.name=adam", "hydra.sweep.dir=sweep")
    assert again.returncode == 2 and "sweep already holds a sweep" in again.stderr
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_a_second_sweep_given_a_running_sweeps_dir_is_refused_before_it_writes(tmp_path):
    # Refused once only by the per-job lock, the second sweep had already rewritten job 0's
    # .hydra records: job 0 trained seed 1 and said seed 3.
    sweep_dir = tmp_path / "sweep"
    args = [
        "experiment=iris_binary",
        "trainer.verbose=0",
        "trainer.epochs=5",
        "hydra.sweep.dir=sweep",
    ]
    first = warm.popen([sys.executable, "-m", "framework", "-m", *args, "seed=1,2"], tmp_path)
    job_record = sweep_dir / "0" / ".hydra" / "overrides.yaml"
    wait_until(job_record.exists, 120, f"the first sweep to write {job_record}", interval=0.05)
    before = {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()}
    second = run_cli("-m", *args, "seed=3,4", cwd=tmp_path)
    assert_one_line_error(
        second, "sweep is in use by another running process (pid ", "(hydra.sweep.dir=...)"
    )
    assert not (sweep_dir / "multirun.yaml").read_text().count("seed=3")
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert "seed=1" in job_record.read_text() and "seed=3" not in job_record.read_text()
    assert before[job_record] == job_record.read_bytes()
    rows = {row["job"]: row for row in csv.DictReader((sweep_dir / "summary.csv").open())}
    assert rows["0"]["overrides"] == "seed=1" and rows["1"]["overrides"] == "seed=2"


@pytest.mark.slow
def test_a_parallel_sweep_runs_its_jobs_in_worker_processes_ranked_by_objective(cli, tmp_path):
    # joblib's workers never run main(): each job loads the plugins where it runs. Two fake
    # GPUs: each worker claims one for all its jobs.
    result = cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "experiment=iris_binary",
        "trainer.epochs=2",
        "trainer.verbose=0",
        "trainer.objective=val_loss",
        "backbone.activation=relu,tanh,sigmoid",
        "hydra.sweep.dir=sweep",
        env={"FRAMEWORK_GPUS": "0,1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/metrics.json")]
    assert sorted(m["devices"]["cuda_visible_devices"] for m in jobs)[-1] == "1"
    assert {m["devices"]["cuda_visible_devices"] for m in jobs} == {"0", "1"}
    assert result.stdout.count(": GPU ") == 2  # one line per worker, not per job
    rows = list(csv.DictReader((tmp_path / "sweep" / "summary.csv").open()))
    assert [row["status"] for row in rows] == ["finished"] * 3
    losses = {
        row["job"]: json.loads((tmp_path / "sweep" / row["job"] / "metrics.json").read_text())[
            "validation"
        ]["loss"]
        for row in rows
    }
    # val_loss is minimized: the smallest first, and what each job reported as its objective.
    assert [float(row["objective_value"]) for row in rows] == sorted(losses.values())
    assert [float(row["objective_value"]) for row in rows] == [losses[r["job"]] for r in rows]
    assert "Sweep:     3 jobs, best val_loss first" in result.stdout


def test_an_unknown_objective_is_refused_before_training(compose, tmp_path):
    import pytest

    from framework.errors import UserError
    from framework.run.train import train

    with pytest.raises(
        UserError,
        match="unknown trainer.objective 'val_f1'; accepted: "
        "val_loss, val_accuracy, loss, accuracy",
    ):
        train(compose("experiment=iris_binary", "trainer.objective=val_f1"), tmp_path / "run")
    assert not (tmp_path / "run" / "history.csv").exists()


@pytest.mark.slow
def test_submitit_runs_each_job_as_a_process_of_its_own(cli, tmp_path):
    result = cli(
        "-m",
        "hydra/launcher=submitit_local",
        "experiment=iris_binary",
        "trainer.epochs=1",
        "trainer.verbose=0",
        "backbone.activation=relu,tanh",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "sweep" / "summary.csv").open()))
    assert sorted(row["job"] for row in rows if row["status"] == "finished") == ["0", "1"]


@pytest.mark.slow
def test_a_ray_sweep_runs_its_jobs_on_a_local_ray(cli, tmp_path):
    # The Ray launcher starts Ray on this machine; each job runs in a Ray worker process.
    result = cli(
        "-m",
        "hydra/launcher=ray",
        "+hydra.launcher.ray.init.num_cpus=2",
        "+hydra.launcher.ray.init.include_dashboard=false",
        "experiment=iris_binary",
        "trainer.epochs=1",
        "trainer.verbose=0",
        "backbone.activation=relu,tanh",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Ray Launcher is launching 2 jobs" in result.stdout + result.stderr
    rows = list(csv.DictReader((tmp_path / "sweep" / "summary.csv").open()))
    assert sorted(row["job"] for row in rows if row["status"] == "finished") == ["0", "1"]
    assert "Sweep:     2 jobs, best val_accuracy first" in result.stdout


def test_our_launcher_configs_give_each_job_its_gpus(compose_hydra, monkeypatch):
    monkeypatch.setenv("FRAMEWORK_GPUS", "0,1,2,3,4,5,6,7")
    gpus = compose_hydra(
        "hydra/launcher=gpus", "trainer.gpus_per_job=2", "experiment=iris_binary"
    ).hydra.launcher
    assert gpus._target_.endswith("JoblibLauncher") and gpus.n_jobs == 4
    ray = compose_hydra("hydra/launcher=ray_cluster", "experiment=iris_binary").hydra.launcher
    assert ray._target_.endswith("RayLauncher")
    assert (ray.ray.init.address, ray.ray.remote.num_gpus) == ("auto", 1)
    slurm = compose_hydra(
        "hydra/launcher=slurm", "trainer.gpus_per_job=2", "experiment=iris_binary"
    ).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher")
    # A job out of time or preempted is requeued, and continues from its checkpoint.
    assert (slurm.gpus_per_node, slurm.max_num_timeout, slurm.timeout_min) == (2, 3, 240)
    monkeypatch.setenv("FRAMEWORK_GPUS", "")
    assert compose_hydra("hydra/launcher=gpus", "experiment=iris_binary").hydra.launcher.n_jobs == 1


def test_slurm_launcher_composes_with_gpus_and_a_time_limit(compose_hydra):
    cfg = compose_hydra(
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.gpus_per_node=1",
        "hydra.launcher.timeout_min=120",
        "experiment=iris_binary",
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.timeout_min) == (1, 120)
    assert launcher.submitit_folder == f"{cfg.hydra.sweep.dir}/.submitit/%j"


def jobs_with_an_epoch(sweep_dir) -> list:
    """The jobs of a sweep whose checkpoint has logged an epoch: jobs that are training."""
    return [
        log
        for log in sweep_dir.glob("*/.resume/stage*.epochs.csv")
        if len(log.read_text().splitlines()) > 1
    ]  # a header, then a row an epoch


def assert_started_jobs_stopped_by(sweep_dir, signal_name: str):
    """Every job a stopped sweep started says which signal ended it, and summary.csv lists
    them all."""
    started = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert len(started) >= 2
    assert all(
        (sweep_dir / job / "FAILED").read_text() == f"stopped by {signal_name}\n" for job in started
    )
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert sorted(row["job"] for row in rows) == started
    assert {row["status"] for row in rows} == {f"failed: stopped by {signal_name}"}


@pytest.mark.slow
def test_ctrl_c_stops_a_parallel_sweep_and_its_workers(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    def group_processes(pgid):
        table = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True)
        return [line for line in table.stdout.splitlines() if line.split()[1] == str(pgid)]

    sweep = subprocess.Popen(
        [sys.executable, "-m", "framework", *ENDLESS_PARALLEL_SWEEP],
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_until(
        lambda: len(jobs_with_an_epoch(tmp_path / "sweep")) >= 2, 120, "both workers to train a job"
    )
    assert len(group_processes(sweep.pid)) >= 3  # the sweep and its two workers
    os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 130
    assert stderr.strip().splitlines()[-1] == "interrupted: stopped by SIGINT"
    # No worker left holding a device.
    wait_until(lambda: group_processes(sweep.pid) == [], 30, "the sweep's workers to exit")
    assert_started_jobs_stopped_by(tmp_path / "sweep", "SIGINT")


def test_sigterm_to_a_parallel_sweep_marks_its_started_jobs_and_writes_the_summary(tmp_path):
    # kill PID, timeout, Slurm: the sweep's own process only. Its workers were once killed
    # with it, leaving job dirs that said nothing, and no summary.csv.
    import signal

    sweep = warm.popen(
        [sys.executable, "-m", "framework", *ENDLESS_PARALLEL_SWEEP],
        tmp_path,
    )
    # A job has started once Hydra has written its records (overrides.yaml is the last): a job
    # stopped while they are half-written has its FAILED file but no row in summary.csv.
    wait_until(
        lambda: len(list(tmp_path.glob("sweep/*/.hydra/overrides.yaml"))) >= 2,
        120,
        "the sweep to start two jobs",
    )
    sweep.send_signal(signal.SIGTERM)
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 143, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "interrupted: stopped by SIGTERM"
    assert "Traceback" not in stderr
    assert_started_jobs_stopped_by(tmp_path / "sweep", "SIGTERM")


def test_a_signal_while_a_jobs_summary_is_written_stops_the_sweep_just_after():
    # The killed sweep below once went on to the end: SIGTERM's Stopped, raised inside
    # OmegaConf as the summary was written, was replaced by an OmegaConf error that Hydra's
    # callback wrapper turned into a warning.
    import os
    import signal
    import time

    from framework.errors import Stopped, signals_deferred, stop

    previous = signal.signal(signal.SIGTERM, stop)
    written = []
    try:
        with pytest.raises(Stopped):
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)  # the handler has run by now, in this (the main) thread
                written.append("summary")
        assert written == ["summary"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_signal_that_omegaconf_turned_into_its_own_error_still_stops_the_command(monkeypatch):
    # The killed sweep below once exited 2 with "error: ConfigCompositionException: 'NoneType'
    # object has no attribute '_invalidate_flags_cache'": SIGTERM's Stopped, raised as Hydra
    # composed the next job, was replaced in an OmegaConf finally, then wrapped by Hydra.
    import signal

    from hydra.errors import ConfigCompositionException

    from framework.cli.messages import report_errors
    from framework.errors import Stopped
    from framework.run.rundir import failure

    monkeypatch.delenv("FRAMEWORK_FULL_ERROR", raising=False)

    def composed_while_stopped():
        try:
            try:
                raise Stopped(signal.SIGTERM)
            finally:
                getattr(None, "_invalidate_flags_cache")()  # what OmegaConf's finally met
        except AttributeError as e:
            raise ConfigCompositionException(str(e)) from e

    with pytest.raises(Stopped) as stopped:
        with report_errors():
            composed_while_stopped()
    assert stopped.value.exit_code == 143
    with pytest.raises(ConfigCompositionException) as wrapped:
        composed_while_stopped()
    assert failure(wrapped.value) == "stopped by SIGTERM"  # what FAILED says
    # The same error with no signal behind it is bad input, as before.
    with pytest.raises(SystemExit) as usage:
        with report_errors():
            raise ConfigCompositionException("'NoneType' object has no attribute 'x'")
    assert usage.value.code == 2


@pytest.mark.slow
def test_a_killed_sweep_resumes_running_only_the_jobs_it_did_not_finish(tmp_path):
    import signal
    import sys

    sweep_dir = tmp_path / "sweep"
    args = [
        sys.executable,
        "-m",
        "framework",
        "-m",
        "experiment=iris_binary",
        "trainer.verbose=0",
        "trainer.epochs=15",
        "backbone.activation=relu,tanh,sigmoid,elu",
        "hydra.sweep.dir=sweep",
    ]
    first = warm.popen(args, tmp_path)
    wait_until(
        (sweep_dir / "1" / "metrics.json").exists, 180, "the sweep to finish job 1", interval=0.05
    )
    first.send_signal(signal.SIGTERM)  # killed after 2 of 4 jobs
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 143, stderr[-2000:]  # 128 + SIGTERM, as the shell reports it
    finished = sorted(p.parent.name for p in sweep_dir.glob("*/metrics.json"))
    assert finished == ["0", "1"]
    kept = {
        p: p.read_bytes() for job in ("0", "1") for p in (sweep_dir / job).rglob("*") if p.is_file()
    }

    # Without the switch the sweep dir stays refused; with it, only jobs 2 and 3 run.
    refused = run_cli(*args[3:], cwd=tmp_path)
    assert refused.returncode == 2 and "already holds a sweep" in refused.stderr
    resumed = run_cli(*args[3:], "hydra/sweeper=resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming: 2 job(s) finished before, 2 to run" in resumed.stdout
    assert resumed.stdout.count("Run dir:") == 2
    assert {p: p.read_bytes() for p in kept} == kept  # finished jobs untouched
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert sorted(row["job"] for row in rows if row["status"] == "finished") == ["0", "1", "2", "3"]


@pytest.mark.slow
def test_a_worker_without_a_free_gpu_fails_its_job_and_the_sweep_goes_on(cli, tmp_path):
    # One fake GPU for two workers: the jobs of the worker without it fail in one line each.
    result = cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "experiment=iris_binary",
        "trainer.epochs=1",
        "trainer.verbose=0",
        "backbone.activation=relu,tanh,elu",
        "hydra.sweep.dir=sweep",
        env={"FRAMEWORK_GPUS": "0"},
    )
    assert result.returncode == 2
    rows = list(csv.DictReader((tmp_path / "sweep" / "summary.csv").open()))
    assert len(rows) == 3 and any(row["status"] == "finished" for row in rows)
    failed = [row for row in rows if row["status"] != "finished"]
    assert failed and all("held by another worker" in row["status"] for row in failed)
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_failed_job_is_reported_without_hydra_records(cli, tmp_path):
    result = cli(
        "-m",
        "experiment=iris_binary",
        "trainer.epochs=1",
        "trainer.verbose=0",
        "optimizer.name=adam,adamx",
        "hydra.output_subdir=null",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: 1 sweep job(s) did not finish; job 1: failed")
    )


def test_a_stopped_sweep_whose_job_dir_cannot_take_failed_still_ends(tmp_path, monkeypatch):
    # Marking is best effort: a job dir that refused FAILED once kept the stopped sweep
    # retrying it for ever.
    import threading

    from framework.sweeps import summary as sweep_summary

    (tmp_path / "sweep" / "0").mkdir(parents=True)
    running = {"dir": tmp_path / "sweep", "output_subdir": None, "local": True}
    monkeypatch.setattr(sweep_summary, "_running", running)
    monkeypatch.setattr(sweep_summary, "mark_failed", lambda job_dir, message: None)
    marking = threading.Thread(
        target=sweep_summary.record_stopped_sweep, args=("stopped by SIGTERM",), daemon=True
    )
    marking.start()
    marking.join(timeout=10)
    assert not marking.is_alive()
