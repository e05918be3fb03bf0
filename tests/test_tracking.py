"""tracker=: each run logged beside its run dir, to MLflow (a SQLite store, or a real tracking
server the test starts on 127.0.0.1), TensorBoard or a CSV table; a sweep's jobs and a search's
trials as runs under one of their own; a stopped run continued, not started again."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys

import keras
import pytest
from mlflow.tracking import MlflowClient

from framework.errors import Stopped, UserError
from framework.parts.tracking import Tracker
from framework.run import train as train_module
from framework.run.train import train
from framework.sweeps.tuner import tune

from conftest import assert_one_line_error, wait_until

IRIS = ("dataset=iris", "trainer.verbose=0", "trainer.epochs=2")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module's runs (MLflow creates its tables once, in seconds): each
    test logs to an MLflow experiment of its own, named after it."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture
def experiment(request):
    return request.node.name


def mlflow_config(compose, tmp_path, uri, experiment, *overrides):
    return compose(
        *IRIS,
        "tracker=mlflow",
        f"tracker.uri={uri}",
        f"tracker.artifacts={tmp_path}/mlartifacts",
        f"tracker.experiment={experiment}",
        *overrides,
    )


def logged_runs(uri, experiment="framework") -> tuple[MlflowClient, list]:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id]) if found else []


def git_commit():
    result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.backends
@pytest.mark.slow
def test_mlflow_logs_a_runs_config_epochs_scores_files_and_tags(
    compose, tmp_path, store, experiment
):
    stages = "trainer.stages=[{name:first,epochs:2},{name:second,epochs:1}]"
    metrics = train(mlflow_config(compose, tmp_path, store, experiment, stages), tmp_path / "run")

    client, runs = logged_runs(store, experiment)
    assert len(runs) == 1
    run = runs[0]
    record = json.loads((tmp_path / "run" / ".mlflow_run.json").read_text())
    assert (run.info.run_id, run.info.status) == (record["run_id"], "FINISHED")
    params = run.data.params
    assert params["dataset.name"] == "iris"
    assert params["trainer.epochs"] == "2"
    assert params["optimizer.learning_rate"] == "null"
    assert json.loads(params["backbone.units"]) == [8, 4]
    # Every epoch, numbered over both stages, as history.csv has it.
    history = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    logged = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in logged] == [1, 2, 3]
    assert [m.value for m in logged] == pytest.approx([float(r["val_loss"]) for r in history])
    scores = run.data.metrics
    assert scores["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert scores["final_val_accuracy"] == pytest.approx(metrics["validation"]["accuracy"])
    assert scores["objective"] == pytest.approx(metrics["objective"]["value"])
    assert scores["epochs"] == 3
    tags = run.data.tags
    assert tags["dataset"] == "iris"
    assert tags["task"] == "multiclass"
    assert tags["backend"] == keras.config.backend()
    assert tags["kind"] == "run"
    assert tags.get("git_commit") == git_commit()
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.keras", "metrics.json", "history.csv", "curves.png", "summary.txt"} <= artifacts
    assert not {".lock", ".mlflow_run.json"} & artifacts


@pytest.mark.slow
def test_a_stopped_run_continues_its_mlflow_run(compose, tmp_path, monkeypatch, store, experiment):
    cfg = mlflow_config(
        compose, tmp_path, store, experiment, "trainer.epochs=4", "trainer.checkpoint_interval=0"
    )
    on_epoch_end = train_module.StopCheck.on_epoch_end

    def stop_after_two(self, epoch, logs=None):
        if epoch + 1 == 2:
            raise Stopped(signal.SIGTERM)
        on_epoch_end(self, epoch, logs)

    monkeypatch.setattr(train_module.StopCheck, "on_epoch_end", stop_after_two)
    with pytest.raises(Stopped):
        train(cfg, tmp_path / "job", checkpoint=True)
    _, runs = logged_runs(store, experiment)
    assert [r.info.status for r in runs] == ["KILLED"]
    stopped_id = runs[0].info.run_id

    monkeypatch.setattr(train_module.StopCheck, "on_epoch_end", on_epoch_end)
    train(cfg, tmp_path / "job", checkpoint=True)  # the requeued job
    client, runs = logged_runs(store, experiment)
    assert [(r.info.run_id, r.info.status) for r in runs] == [(stopped_id, "FINISHED")]
    assert [m.step for m in client.get_metric_history(stopped_id, "loss")] == [1, 2, 3, 4]


def test_an_unreachable_tracker_fails_the_run_before_it_trains(compose, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UserError, match=r"tracker.uri='http://127.0.0.1:\d+': no MLflow server"):
        train(mlflow_config(compose, tmp_path, uri, "framework"), tmp_path / "run")
    assert not (tmp_path / "run" / "history.csv").exists()  # nothing trained


def test_an_unreachable_tracker_that_is_not_required_leaves_the_run_untracked(
    compose, tmp_path, capsys
):
    (tmp_path / "taken").write_text("a file where the store's folder would go")
    uri = f"sqlite:///{tmp_path}/taken/mlflow.db"
    cfg = mlflow_config(compose, tmp_path, uri, "framework", "tracker.required=false")
    metrics = train(cfg, tmp_path / "run")
    assert metrics["epochs"] == 2
    warning = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert len(warning) == 1
    assert "MLflow could not open the store" in warning[0]
    assert "this run is not tracked (tracker.required=false)" in warning[0]
    assert not (tmp_path / "run" / ".mlflow_run.json").exists()
    assert not (tmp_path / "mlartifacts").exists()


def test_a_signal_as_the_tracker_logs_a_finished_run_leaves_the_run_finished(
    compose, tmp_path, isolated_registries
):
    ended = []

    class SlowUpload(Tracker):
        def log_final(self, scores, files):
            raise Stopped(signal.SIGTERM)  # Ctrl-C as model.keras uploads

        def end(self, status):
            ended.append(status)

    isolated_registries["tracker"].register("slow", lambda cfg: SlowUpload(), {}, provider="test")
    with pytest.raises(Stopped):
        train(compose(*IRIS, "tracker=slow"), tmp_path / "run")
    assert (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "run" / "FAILED").exists()  # still a finished run
    assert ended == ["KILLED"]


def test_a_tracker_whose_check_fails_unexpectedly_is_refused_in_one_line(compose, tmp_path, capsys):
    cfg = compose(*IRIS, "tracker=mlflow", "tracker.uri=http://127.0.0.1:port")  # not a number
    with pytest.raises(UserError, match="no MLflow server answers there"):
        train(cfg, tmp_path / "refused")
    cfg.tracker.required = False
    assert train(cfg, tmp_path / "untracked")["epochs"] == 2
    assert "this run is not tracked (tracker.required=false)" in capsys.readouterr().out


def test_a_tracker_that_fails_as_the_run_goes_stops_logging_and_the_run_finishes(
    compose, tmp_path, capsys, isolated_registries
):
    calls = []

    class Flaky(Tracker):
        def start(self, run):
            calls.append("start")

        def log_epoch(self, step, metrics):
            calls.append(f"epoch {step}")
            raise ConnectionError("the store went away")

        def end(self, status):
            calls.append(status)

    isolated_registries["tracker"].register("flaky", lambda cfg: Flaky(), {}, provider="test")
    metrics = train(compose(*IRIS, "tracker=flaky"), tmp_path / "run")
    assert metrics["epochs"] == 2
    assert calls == ["start", "epoch 1", "FAILED"]  # ended as failed, then nothing more
    err = capsys.readouterr().err
    assert (
        "warning: tracker 'flaky' failed in log_epoch and stops logging this run: "
        "ConnectionError: the store went away"
    ) in err
    assert (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_bad_tracker_settings_are_refused_in_one_line(cli, tmp_path):
    assert_one_line_error(
        cli(*IRIS, "tracker=mlflow", "tracker.uri=ftp://host"),
        "tracker.uri='ftp://host'",
        "sqlite:///PATH, http(s)://HOST[:PORT] or file:PATH",
    )
    assert_one_line_error(cli(*IRIS, "tracker=wandb"), "wandb", "csv, mlflow, none, tensorboard")
    port = free_port()
    refused = cli(*IRIS, "tracker=mlflow", f"tracker.uri=http://127.0.0.1:{port}")
    assert_one_line_error(refused, "no MLflow server answers there", "tracker.required=false")


@pytest.mark.slow
def test_a_search_logs_each_trial_as_a_run_under_its_own(compose, tmp_path, store, experiment):
    cfg = mlflow_config(
        compose,
        tmp_path,
        store,
        experiment,
        "tuner=random",
        "tuner.max_trials=2",
        "+tuner.space.optimizer.learning_rate={choice:[0.01,0.02]}",
    )
    metrics = tune(cfg, tmp_path / "search")
    _, runs = logged_runs(store, experiment)
    search = json.loads((tmp_path / "search" / ".mlflow_run.json").read_text())["run_id"]
    by_kind = {}
    for run in runs:
        by_kind.setdefault(run.data.tags["kind"], []).append(run)
    assert [r.info.run_id for r in by_kind["search"]] == [search]
    trials = by_kind["trial"]
    assert len(trials) == 2
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {search}
    assert {t.data.params["optimizer.learning_rate"] for t in trials} == {"0.01", "0.02"}
    assert all(t.info.status == "FINISHED" and "objective" in t.data.metrics for t in trials)
    # The best config's retraining is the search's own run, with its scores.
    assert by_kind["search"][0].info.status == "FINISHED"
    test_accuracy = by_kind["search"][0].data.metrics["test_accuracy"]
    assert test_accuracy == pytest.approx(metrics["test"]["accuracy"])


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow tracking server on 127.0.0.1, with its SQLite store in tmp_path."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers stop with it
    )
    uri = f"http://127.0.0.1:{port}"

    def answers():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server.poll() is None
        except OSError:
            assert server.poll() is None, "the MLflow server exited"
            return False

    wait_until(answers, 120, "the MLflow server to answer")
    yield uri
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


@pytest.mark.slow
def test_a_parallel_sweep_logs_its_jobs_under_one_run_on_a_tracking_server(
    cli, tmp_path, mlflow_server
):
    result = cli(
        "-m",
        *IRIS,
        "optimizer.learning_rate=0.01,0.02",
        "tracker=mlflow",
        f"tracker.uri={mlflow_server}",
        "hydra/launcher=joblib",
        "hydra.sweep.dir=outputs/sweep",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client, runs = logged_runs(mlflow_server)
    parent = json.loads((tmp_path / "outputs/sweep/.mlflow_run.json").read_text())["run_id"]
    jobs = sorted((r for r in runs if r.info.run_id != parent), key=lambda r: r.data.tags["job"])
    assert len(runs) == 3
    assert [r.data.tags["job"] for r in jobs] == ["0", "1"]
    assert [r.info.run_name for r in jobs] == ["sweep/0", "sweep/1"]
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent}
    assert {r.data.tags["sweep"] for r in jobs} == {"outputs/sweep"}
    assert [r.data.params["optimizer.learning_rate"] for r in jobs] == ["0.01", "0.02"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert "model.keras" in {a.path for a in client.list_artifacts(jobs[0].info.run_id)}
    assert "summary.csv" in {a.path for a in client.list_artifacts(parent)}


@pytest.mark.slow
def test_the_csv_tracker_keeps_a_row_per_run_and_its_rounds_epochs(compose, tmp_path):
    cfg = compose(*IRIS, "tracker=csv", f"tracker.dir={tmp_path}/tracking", "protocol=kfold")
    cfg.protocol.folds = 2
    metrics = train(cfg, tmp_path / "run")
    runs = list(csv.DictReader((tmp_path / "tracking/runs.csv").open()))
    assert [(r["run"], r["status"], r["kind"]) for r in runs] == [
        (str(tmp_path / "run"), "FINISHED", "run")
    ]
    scores = json.loads(runs[0]["scores"])
    assert scores["objective"] == pytest.approx(metrics["objective"]["value"])
    assert scores["objective_std"] == pytest.approx(metrics["objective"]["std"])
    assert json.loads(runs[0]["tags"])["task"] == "multiclass"
    epochs = list(csv.DictReader((tmp_path / "tracking/epochs.csv").open()))
    losses = [(e["metric"], e["step"]) for e in epochs if e["metric"].endswith("/loss")]
    assert losses == [("rounds/1/loss", "1"), ("rounds/1/loss", "2")] + [
        ("rounds/2/loss", "1"),
        ("rounds/2/loss", "2"),
    ]


def test_the_tensorboard_tracker_logs_every_run_under_one_log_dir(compose, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose(*IRIS, "tracker=tensorboard", f"tracker.log_dir={tmp_path}/tensorboard")
    metrics = train(cfg, tmp_path / "outputs/runs/one")
    train(cfg, tmp_path / "elsewhere")  # outside outputs/: named by its whole path
    events = EventAccumulator(str(tmp_path / "tensorboard/runs/one"))
    events.Reload()
    assert [e.step for e in events.Tensors("val_loss")] == [1, 2]
    elsewhere = tmp_path / "tensorboard" / (tmp_path / "elsewhere").relative_to("/")
    assert list(elsewhere.glob("events.out.tfevents.*"))
    assert not list((tmp_path / "elsewhere").glob("events.out.tfevents.*"))
    (test_accuracy,) = events.Tensors("final/test_accuracy")
    assert float(test_accuracy.tensor_proto.float_val[0]) == pytest.approx(
        metrics["test"]["accuracy"]
    )


def test_a_resumed_sweep_sets_its_finished_parent_run_running_again(
    compose, tmp_path, store, experiment
):
    from framework.run.tracking import Tracking, end_sweep

    cfg = mlflow_config(compose, tmp_path, store, experiment)
    sweep = tmp_path / "sweep"
    first = Tracking(cfg, sweep / "0", parent_dir=sweep, kind="job")
    first.start()
    first.end()
    end_sweep(cfg, sweep)  # the sweep's end: its parent run ended
    client, _ = logged_runs(store, experiment)
    parent = json.loads((sweep / ".mlflow_run.json").read_text())["run_id"]
    assert client.get_run(parent).info.status == "FINISHED"

    resumed = Tracking(cfg, sweep / "1", parent_dir=sweep, kind="job")  # hydra/sweeper=resume
    resumed.start()
    assert client.get_run(parent).info.status == "RUNNING"
    resumed.end()
    _, runs = logged_runs(store, experiment)
    assert len(runs) == 3  # the parent once, and its two jobs


@pytest.mark.slow
def test_a_search_under_kfold_logs_each_trials_rounds_apart(compose, tmp_path):
    cfg = compose(
        *IRIS,
        "tracker=csv",
        f"tracker.dir={tmp_path}/tracking",
        "protocol=kfold",
        "tuner=random",
        "tuner.max_trials=1",
        "+tuner.space.optimizer.learning_rate={choice:[0.01]}",
    )
    cfg.protocol.folds = 2
    tune(cfg, tmp_path / "search")
    epochs = list(csv.DictReader((tmp_path / "tracking/epochs.csv").open()))
    trial = [e for e in epochs if "trial_" in e["run"] and e["metric"].endswith("loss")]
    assert sorted({e["metric"] for e in trial}) == [
        "rounds/1/loss",
        "rounds/1/val_loss",
        "rounds/2/loss",
        "rounds/2/val_loss",
    ]
    runs = list(csv.DictReader((tmp_path / "tracking/runs.csv").open()))
    assert sorted((r["kind"], r["status"]) for r in runs) == [
        ("search", "FINISHED"),
        ("trial", "FINISHED"),
    ]
