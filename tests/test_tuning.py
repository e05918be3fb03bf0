"""Hyperparameter search: keras-tuner in one run (tuner=...), Optuna through Hydra's sweeper."""

import csv
import json
import signal
import subprocess
import sys
import time

import pytest
from omegaconf import OmegaConf

from framework.config.search_space import as_override, check_space
from framework.errors import UserError

import warm
from conftest import assert_one_line_error, run_cli

SEARCH = (
    "experiment=tune_wine_random",
    "tuner.max_trials=3",
    "trainer.epochs=10",
    "trainer.verbose=0",
)


@pytest.mark.slow
def test_a_random_search_keeps_its_trials_and_retrains_the_best(cli, tmp_path):
    result = cli(*SEARCH, "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "run"
    trials = list(csv.DictReader((run / "trials.csv").open()))
    assert [t["status"] for t in trials] == ["COMPLETED"] * 3
    values = [float(t["val_accuracy"]) for t in trials]
    assert values == sorted(values, reverse=True)  # best first
    assert "Search:    3 trials, best val_accuracy first" in result.stdout
    best = OmegaConf.load(run / "best_overrides.yaml")
    assert best.trial == trials[0]["trial"] and best.objective.value == values[0]
    assert "~tuner" in best.overrides and best.command.startswith("python -m framework ")
    # The best config, retrained on the full schedule, is the run's model.
    metrics = json.loads((run / "metrics.json").read_text())
    assert (run / "model.keras").is_file() and metrics["epochs"] == 10
    card = (run / "model_card.md").read_text()  # the search's card: the best trial's too
    assert f"without the tuner:\n\n```sh\n{best.command}\n```\n" in card

    # Its overrides run the best trial again, without the tuner.
    again = cli(*best.overrides, "hydra.run.dir=again")
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert "Search:" not in again.stdout
    assert abs(rerun["validation"]["accuracy"] - best.objective.value) <= 0.02

    # A finished search is not run again into the same run dir.
    refused = cli(*SEARCH, "hydra.run.dir=run")
    assert refused.returncode == 2 and "already holds a finished run" in refused.stderr


@pytest.mark.slow
def test_a_killed_search_resumes_without_repeating_finished_trials(tmp_path):
    command = [sys.executable, "-m", "framework", *SEARCH, "hydra.run.dir=run"]
    log = (tmp_path / "first.log").open("w")
    first = warm.popen(command, tmp_path, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while "Trial 2:" not in (tmp_path / "first.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # killed in its third trial: no clean-up at all
    first.wait(timeout=60)
    trial_dir = tmp_path / "run" / "tuner" / "search"
    kept = {p: p.read_bytes() for p in trial_dir.glob("trial_[01]/run.json")}
    assert len(kept) == 2 and not (tmp_path / "run" / "metrics.json").exists()

    # Another config is refused before it runs or writes anything: a plain run (which once
    # finished there, so the search could never resume), or a search of other settings.
    def records():  # but the lock, which holds the pid of the last process to take it
        return {
            p: p.read_bytes()
            for p in (tmp_path / "run").rglob("*")
            if p.is_file() and p.name != ".lock"
        }

    before = records()
    plain = run_cli(*command[3:], "~tuner", cwd=tmp_path)
    assert_one_line_error(plain, "run holds an unfinished search (its trials are in run/tuner)")
    other = run_cli(*command[3:], "trainer.epochs=11", cwd=tmp_path)
    assert_one_line_error(other, "run/tuner holds a search of another config")
    assert records() == before

    resumed = run_cli(*command[3:], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming: 2 trial(s) finished before" in resumed.stdout
    assert [
        line.split(":")[0] for line in resumed.stdout.splitlines() if line.startswith("Trial ")
    ] == ["Trial 2"]
    assert {p: p.read_bytes() for p in kept} == kept
    trials = list(csv.DictReader((tmp_path / "run" / "trials.csv").open()))
    assert sorted(t["trial"] for t in trials if t["status"] == "COMPLETED") == ["0", "1", "2"]


@pytest.mark.slow
def test_an_optuna_sweep_reports_a_jobs_validation_score_and_continues_its_study(cli, tmp_path):
    args = (
        "-m",
        "experiment=search_wine_optuna",
        "hydra.sweeper.n_trials=3",
        "trainer.epochs=3",
        "trainer.verbose=0",
    )
    first = cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    sweep = tmp_path / "outputs" / "searches" / "search_wine_optuna"
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    scores = {
        job.parent.name: json.loads(job.read_text())["validation"]["accuracy"]
        for job in sweep.glob("*/metrics.json")
    }
    assert sorted(scores) == ["0", "1", "2"]
    assert best.best_value == max(scores.values())
    assert "\x1b" not in first.stdout + first.stderr  # no colour codes where no terminal reads
    # Each searched setting is in each job's row, even where all three drew the same value.
    searched = OmegaConf.load(sweep / "0" / ".hydra" / "hydra.yaml").hydra.sweeper.params
    for row in csv.DictReader((sweep / "summary.csv").open()):
        assert all(f"{key}=" in row["overrides"] for key in searched), row

    again = cli(*args[:2], "hydra.sweeper.n_trials=1", *args[3:])  # the same study, one more
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Resuming: study 'search_wine_optuna' continues after job 2" in again.stdout
    assert "Using an existing study" in again.stderr
    assert sorted(p.parent.name for p in sweep.glob("*/metrics.json")) == ["0", "1", "2", "3"]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 4


def test_trials_left_running_by_a_killed_sweep_are_marked_failed(tmp_path):
    import optuna

    from framework.config.optuna import fail_running_trials

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert fail_running_trials(storage, "study") == 0  # no study yet
    study = optuna.create_study(study_name="study", storage=storage)
    study.tell(study.ask(), 0.5)
    study.ask()  # the sweep was killed in this one
    assert fail_running_trials(storage, "study") == 1
    states = [t.state.name for t in optuna.load_study(study_name="study", storage=storage).trials]
    assert states == ["COMPLETE", "FAIL"]


@pytest.mark.parametrize(
    "space, message",
    [
        ({"backbone.unit": {"choice": [[8]]}}, "unknown setting 'backbone.unit'"),
        ({"backbone.units": {"pick": [[8]]}}, "kind in choice, int, float, log_float"),
        ({"optimizer.learning_rate": {"log_float": [1e-4]}}, "log_float takes [low, high]"),
        ({}, "tuner.space is empty"),
        # Checked against the keras-tuner ranges' shapes, and the settings' types and declared
        # ranges:
        ({"trainer.batch_size": {"int": [1, 5, 0]}}, "int's step must be above 0"),
        ({"optimizer.learning_rate": {"float": [0.001, 0.01, 0]}}, "float's step must be above 0"),
        ({"trainer.batch_size": {"int": [5, 1]}}, "int's low is above its high"),
        ({"trainer.batch_size": {"int": [1.5, 4]}}, "int takes integers"),
        ({"optimizer.learning_rate": {"log_float": [0, 0.01]}}, "log_float's low must be above 0"),
        (
            {"backbone.units": {"choice": [[8], 16, "abc"]}},
            "backbone.units=16 is of the wrong type",
        ),
        ({"trainer.batch_size": {"float": [1, 5]}}, "trainer.batch_size=1.0 is of the wrong type"),
        ({"trainer.batch_size": {"int": [0, 5]}}, "trainer.batch_size=0 is out of range"),
        ({"optimizer.name": {"choice": ["adam", "sgdd"]}}, "unknown optimizer 'sgdd'"),
        ({"optimizer": {"choice": ["adam", "sgd"]}}, "optimizer is a group of settings"),
    ],
)
def test_a_bad_search_space_is_refused_naming_it(compose, space, message):
    with pytest.raises(UserError, match=None) as error:
        check_space(space, compose("experiment=wine"))
    assert message in str(error.value)


@pytest.mark.parametrize(
    "value", [[64, 32], 0.00125, True, None, "adam", "x y", "it's", {"a": [1, 2]}]
)
def test_overrides_read_back_as_the_values_tried(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = as_override("backbone.choice", value)
    assert override.startswith("++backbone.choice=")
    (parsed,) = OverridesParser.create().parse_overrides([override])
    assert parsed.value() == value


def test_a_choice_gives_its_values_as_they_are_booleans_and_mixed_types_too():
    import keras_tuner

    from framework.config.search_space import define

    space = {
        "a": {"choice": [False, True]},
        "b": {"choice": [1, 0.5]},
        "c": {"choice": ["auto", True]},
        "d": {"choice": [[8], None]},
    }
    values = define(keras_tuner.HyperParameters(), space)
    assert values == {"a": False, "b": 1, "c": "auto", "d": [8]}
    assert type(values["a"]) is bool and type(values["b"]) is int


@pytest.mark.slow
def test_a_trials_bad_setting_stops_the_search_in_one_line(cli):
    result = cli(
        "experiment=tune_wine_random",
        "tuner.max_trials=2",
        "trainer.verbose=0",
        "+tuner.space.optimizer.name={choice:[sgdd]}",
        "hydra.run.dir=run",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: unknown optimizer 'sgdd'; accepted: adam, adamw, rmsprop, sgd"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "space, message",
    [
        ("+tuner.space.trainer.batch_size={int:[1,5,0]}", "int's step must be above 0"),
        (
            "+tuner.space.backbone.units={choice:[[8],16,abc]}",
            "backbone.units=16 is of the wrong type",
        ),
    ],
)
def test_a_bad_search_space_is_refused_before_the_run_dir_is_written(cli, tmp_path, space, message):
    from conftest import assert_one_line_error

    assert_one_line_error(cli(*SEARCH, space, "hydra.run.dir=run"), message)
    assert not (tmp_path / "run").exists()


def test_a_resumed_search_may_change_its_verbosity_and_trial_count_only(compose, tmp_path):
    from framework.run.checkpoint import record_search

    record_search(tmp_path, compose(*SEARCH))
    record_search(tmp_path, compose(*SEARCH, "trainer.verbose=2", "tuner.max_trials=9"))
    with pytest.raises(UserError, match="holds a search of another config"):
        record_search(tmp_path, compose(*SEARCH, "trainer.epochs=11"))


@pytest.mark.parametrize(
    "objective, expected", [("val_accuracy", "maximize"), ("val_loss", "minimize")]
)
def test_the_optuna_sweeper_follows_the_objectives_direction(compose_hydra, objective, expected):
    cfg = compose_hydra("hydra/sweeper=optuna", "experiment=wine", f"trainer.objective={objective}")
    assert cfg.hydra.sweeper.direction == expected
    assert cfg.hydra.sweeper.storage == f"sqlite:///{cfg.hydra.sweep.dir}/optuna.db"


@pytest.mark.parametrize(
    "dataset, expected", [("iris", "maximize"), ("digits", "maximize"), ("diabetes", "minimize")]
)
def test_a_bundled_datasets_task_gives_the_optuna_direction_under_task_auto(
    compose_hydra, dataset, expected
):
    cfg = compose_hydra("hydra/sweeper=optuna", f"dataset={dataset}")
    assert cfg.task.name == "auto" and cfg.trainer.objective is None
    assert cfg.hydra.sweeper.direction == expected


def test_a_csv_files_optuna_direction_needs_an_objective_under_task_auto(compose_hydra):
    from omegaconf.errors import InterpolationResolutionError

    cfg = compose_hydra("hydra/sweeper=optuna", "dataset=csv")
    with pytest.raises(InterpolationResolutionError, match="the data of dataset 'csv' decides"):
        cfg.hydra.sweeper.direction


OPTUNA = (
    "-m",
    "experiment=search_wine_optuna",
    "hydra.sweep.dir=sweep",
    "trainer.epochs=1",
    "trainer.verbose=0",
)


@pytest.mark.parametrize(
    "override, message",
    [
        ("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials=0 is out of range; accepted: >= 1"),
        ("hydra.sweeper.n_trials=-1", "hydra.sweeper.n_trials=-1 is out of range"),
        (
            "hydra.sweeper.direction=sideways",
            "unknown hydra.sweeper.direction 'sideways'; accepted: minimize, maximize",
        ),
        ("hydra.sweeper.storage=sqlite:////nonexistent/x.db", "no directory /nonexistent"),
        (
            "optimizer.learning_rate=tag(log, interval(0, 0.01))",
            "must be larger than 0 for a log distribution",
        ),
        (
            "optimizer.learning_rate=interval(0.1, 0.001)",
            "must be smaller than or equal to the `high` value",
        ),
        (
            "optimizer.learning_rate=interval(0, 0.01)",
            "optimizer.learning_rate=0.0 is out of range",
        ),
        ("optimizer.learning_rate=choice()", "empty choice is not legal"),
        ("backbone.units=choice([8],16)", "backbone.units=16 is of the wrong type"),
        ("optimizer=choice(adam,sgdd)", "unknown optimizer 'sgdd'"),
    ],
)
def test_bad_optuna_settings_are_refused_before_the_study_is_made(cli, tmp_path, override, message):
    from conftest import assert_one_line_error

    assert_one_line_error(cli(*OPTUNA, override), message)
    assert not (tmp_path / "sweep").exists()


def test_a_study_is_not_continued_the_other_way_or_from_a_file_that_is_no_database(cli, tmp_path):
    import optuna

    from conftest import assert_one_line_error

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "optuna.db").write_text("not a database")
    assert_one_line_error(cli(*OPTUNA), "optuna.db is not an Optuna study database")
    assert (sweep / "optuna.db").read_text() == "not a database"

    (sweep / "optuna.db").unlink()
    optuna.create_study(
        study_name="search_wine_optuna",
        direction="maximize",
        storage=f"sqlite:///{sweep / 'optuna.db'}",
    )
    stored = (sweep / "optuna.db").read_bytes()
    assert_one_line_error(
        cli(*OPTUNA, "trainer.objective=val_loss"),
        "was made to maximize its objective, and this command would minimize",
    )
    assert (sweep / "optuna.db").read_bytes() == stored
    assert [p.name for p in sweep.iterdir()] == ["optuna.db"]


@pytest.mark.slow
def test_a_head_search_extracts_the_frozen_backbones_features_once(compose, tmp_path, monkeypatch):
    from framework.run import feature_cache, train
    from framework.sweeps import tuner as tuning

    extractions = []
    extract = feature_cache.extract
    monkeypatch.setattr(
        feature_cache, "extract", lambda *a, **kw: extractions.append(1) or extract(*a, **kw)
    )
    cfg = compose(
        "experiment=cnn_shapes",
        "dataset.samples_per_class=10",
        "trainer.verbose=0",
        "trainer.stages=[{name:head,epochs:1,trainable:head}]",
        f"trainer.feature_cache.dir={tmp_path / 'cache'}",
        "tuner=random",
        "tuner.max_trials=3",
        "+tuner.space.head.units={choice:[16,32,64]}",
    )
    loads = []
    monkeypatch.setattr(
        tuning, "load_task_data", lambda *a: loads.append(1) or train.load_task_data(*a)
    )
    compiled_heads, heads = tuning.CompiledHeads, []
    monkeypatch.setattr(
        tuning, "CompiledHeads", lambda: heads.append(compiled_heads()) or heads[-1]
    )
    metrics = tuning.tune(cfg, tmp_path / "run")
    # The 3 trials and the best's retraining all train their heads on one extraction, and on
    # data loaded once.
    assert extractions == [1] and loads == [1]
    trials = list(csv.DictReader((tmp_path / "run" / "trials.csv").open()))
    assert sorted(t["head.units"] for t in trials) == ["16", "32", "64"]
    assert metrics["stages"][0]["cached_features"] is True

    # The retraining fit the best trial's compiled head (the trials' heads differ), and
    # trained what a run of the best config alone trains, epoch by epoch.
    assert heads[0].reused == 1
    best = OmegaConf.load(tmp_path / "run" / "best_overrides.yaml")
    alone = train.train(
        tuning.trial_config(cfg, OmegaConf.to_container(best.settings)),
        tmp_path / "alone",
    )
    for key in ("validation", "test", "stages", "epochs"):
        assert metrics[key] == alone[key]
    assert (tmp_path / "run" / "history.csv").read_text() == (
        tmp_path / "alone" / "history.csv"
    ).read_text()


@pytest.mark.slow
def test_a_distributed_search_runs_trials_on_workers_and_retrains_on_the_chief(tmp_path):
    import os
    import socket

    with socket.socket() as probe:  # a free port on this machine for the chief's oracle
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "framework",
        "experiment=tune_wine_random",
        "tuner.max_trials=2",
        "trainer.epochs=2",
        "trainer.verbose=0",
        "hydra.run.dir=run",
    ]
    processes = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {
            **os.environ,
            "KERASTUNER_TUNER_ID": tuner_id,
            "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(port),
        }
        processes[tuner_id] = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    outputs = {name: p.communicate(timeout=300) for name, p in processes.items()}
    assert all(p.returncode == 0 for p in processes.values()), outputs
    worker_trials = [
        line
        for name in ("tuner0", "tuner1")
        for line in outputs[name][0].splitlines()
        if line.startswith("Trial ")
    ]
    assert len(worker_trials) == 2  # the workers ran the trials...
    assert "Trial " not in outputs["chief"][0]  # ...the chief served them, then retrained
    assert "Search:    2 trials" in outputs["chief"][0]
    assert (tmp_path / "run" / "model.keras").is_file()


@pytest.mark.slow
def test_head_trials_on_cached_features_build_no_backbone_and_score_as_fresh_builds(
    compose, tmp_path, monkeypatch
):
    from framework.run import model
    from framework.sweeps import tuner as tuning

    cfg = compose(
        "experiment=cnn_shapes",
        "dataset.samples_per_class=10",
        "trainer.verbose=0",
        "trainer.stages=[{name:head,epochs:2,trainable:head}]",
        f"trainer.feature_cache.dir={tmp_path / 'cache'}",
        "tuner=random",
        "tuner.max_trials=4",
        "trainer.objective=val_loss",
        # Drawn in this order, each head width gets both learning rates and both dropout rates.
        "+tuner.space.optimizer.learning_rate={choice:[0.01,0.001]}",
        "+tuner.space.head.dropout={choice:[0.2,0.4]}",
        "+tuner.space.head.units={choice:[16,32]}",
    )
    builds, searches = [], []
    build_model = model.build_model
    monkeypatch.setattr(
        tuning, "build_model", lambda *a, **kw: builds.append(1) or build_model(*a, **kw)
    )
    search_init = tuning.Search.__init__
    monkeypatch.setattr(
        tuning.Search,
        "__init__",
        lambda self, *a, **kw: searches.append(self) or search_init(self, *a, **kw),
    )
    compiled_heads = tuning.CompiledHeads
    fit_inputs, served = compiled_heads.fit_inputs, []

    def counted(self, *args):
        inputs = fit_inputs(self, *args)
        served.append(inputs["x"])
        return inputs

    monkeypatch.setattr(compiled_heads, "fit_inputs", counted)
    tuning.tune(cfg, tmp_path / "reused")
    # The first trial builds the whole model; the others its head alone (the best's retraining
    # is a run of its own, by train, which builds its whole model and fits the best trial's
    # compiled head on the features it reads from the cache).
    assert builds == [1]
    # 4 trials, 2 head widths: heads that differ in their dropout rate share a compiled head.
    trials = list(csv.DictReader((tmp_path / "reused" / "trials.csv").open()))
    assert {(t["head.units"], t["head.dropout"]) for t in trials} == {
        (units, dropout) for units in ("16", "32") for dropout in ("0.2", "0.4")
    }
    assert searches[0]._compiled_heads.reused == 2 + 1
    assert len(served) == 4 + 1 and all(x is served[0] for x in served[:4])  # one pipeline
    reused = (tmp_path / "reused" / "trials.csv").read_text()

    # The same search, each trial on a whole model of its own, compiled anew, fit on the arrays
    # by Keras's own pipelines: each trial's curve as above, epoch by epoch.
    monkeypatch.setattr(tuning, "Body", lambda *a: None)
    monkeypatch.setattr(tuning, "CompiledHeads", lambda: compiled_heads(size=0))
    monkeypatch.setattr(compiled_heads, "fit_inputs", lambda *a: None)
    tuning.tune(cfg, tmp_path / "fresh")
    assert len(builds) == 1 + 4
    assert searches[1]._compiled_heads.reused == 0
    assert (tmp_path / "fresh" / "trials.csv").read_text() == reused
    curves = {
        run: {
            p.relative_to(tmp_path / run): p.read_text()
            for p in (tmp_path / run).rglob("history.csv")
        }
        for run in ("reused", "fresh")
    }
    assert len(curves["fresh"]) == 4 + 1 and curves["fresh"] == curves["reused"]
