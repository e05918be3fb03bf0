"""Pruning (trials stopped as they train) and time budgets, in Optuna sweeps and keras-tuner
searches."""

import csv
import json

import pytest
from omegaconf import OmegaConf

from conftest import assert_one_line_error

# A learning rate that learns and one that never does: the second falls below the first's
# curve at epoch 1, and its pruner stops it there (one finished trial is enough, from epoch 1).
PRUNED_OPTUNA = (
    "-m",
    "experiment=wine",
    "hydra/sweeper=optuna",
    "hydra.sweep.dir=sweep",
    "optimizer.learning_rate=choice(0.05,0.0000001)",
    # Draws 0.05, 1e-7, 0.05, 1e-7: the first trial learns, before any that does not.
    "hydra/sweeper/sampler=random",
    "hydra.sweeper.sampler.seed=10",
    "hydra.sweeper.pruner=median",
    "hydra.sweeper.pruner_startup_trials=1",
    "hydra.sweeper.pruner_warmup_epochs=0",
    "trainer.epochs=4",
    "trainer.verbose=0",
)


def _study(path):
    import optuna

    return optuna.load_study(study_name="framework", storage=f"sqlite:///{path / 'optuna.db'}")


def _assert_pruned_jobs(sweep, study) -> list[int]:
    """Each pruned trial's job records it, with the epoch it stopped at; returns the jobs."""
    rows = {int(r["job"]): r for r in csv.DictReader((sweep / "summary.csv").open())}
    pruned = [t.number for t in study.trials if t.state.name == "PRUNED"]
    for number in pruned:
        job = sweep / str(number)  # one trial per job, in order
        record = json.loads((job / "metrics.json").read_text())
        epoch = max(study.trials[number].intermediate_values)
        assert record["pruned"] == {"epoch": epoch, "by": "optuna median"}
        assert record["epochs"] == epoch < 4
        assert rows[number]["status"] == "pruned" and rows[number]["epochs"] == str(epoch)
    return pruned


@pytest.mark.slow
def test_a_pruned_optuna_trial_is_told_pruned_and_recorded_with_its_epoch(cli, tmp_path):
    result = cli(*PRUNED_OPTUNA, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1")
    assert result.returncode == 0, result.stderr[-2000:]
    sweep = tmp_path / "sweep"
    study = _study(sweep)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
    assert _assert_pruned_jobs(sweep, study) == [1]
    assert "pruned after epoch 1 by optuna median" in result.stdout
    assert "1    -" in result.stdout and "(pruned after epoch 1)" in result.stdout
    # A job without a pruner writes no "pruned" at all.
    assert "pruned" not in json.loads((sweep / "0" / "metrics.json").read_text())
    # A pruned trial is never the best: its records as it stopped, no model.keras or plots.
    finished, pruned = ({p.name for p in (sweep / job).iterdir()} for job in ("0", "1"))
    records = {"metrics.json", "history.csv", "summary.txt"}
    plots = {"curves.png", "confusion_matrix.png"}
    assert records | plots | {"model.keras"} <= finished
    assert records <= pruned and not pruned & (plots | {"model.keras"}), pruned


@pytest.mark.slow
def test_two_joblib_workers_prune_their_trials_through_the_studys_storage(cli, tmp_path):
    result = cli(
        *PRUNED_OPTUNA,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sweep = tmp_path / "sweep"
    study = _study(sweep)
    states = [t.state.name for t in study.trials]
    # The second batch's 1e-7 trial runs after trial 0 finished: pruned, whatever else ran.
    assert states[3] == "PRUNED" and "FAIL" not in states and "RUNNING" not in states, states
    assert 3 in _assert_pruned_jobs(sweep, study)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "hydra.sweeper.pruner=sometimes",
            "unknown hydra.sweeper.pruner 'sometimes'; accepted: median, hyperband, none",
        ),
        (
            "hydra.sweeper.pruner_warmup_epochs=-1",
            "hydra.sweeper.pruner_warmup_epochs=-1 is out of range; accepted: >= 0",
        ),
        (
            "hydra.sweeper.timeout=soon",
            "hydra.sweeper.timeout=soon is out of range; accepted: a duration",
        ),
        ("hydra.sweeper.timeout=10", "hydra.sweeper.timeout='10' is out of range"),
    ],
)
def test_bad_pruner_and_timeout_settings_are_refused_in_one_line(cli, tmp_path, override, message):
    assert_one_line_error(cli(*PRUNED_OPTUNA, override), message)
    assert not (tmp_path / "sweep").exists()


# Two learning rates that learn, drawn first (the search's seed), then one that never does.
PRUNED_SEARCH = (
    "experiment=wine",
    "tuner=random",
    "+tuner.space.optimizer.learning_rate={choice:[0.05,0.04,0.0000001]}",
    "tuner.max_trials=3",
    "tuner.pruner=median",
    "tuner.pruner_startup_trials=1",
    "tuner.pruner_warmup_epochs=0",
    "trainer.epochs=4",
    "trainer.verbose=0",
    "hydra.run.dir=run",
)


@pytest.mark.slow
def test_a_search_prunes_a_trial_below_the_median_and_marks_it_with_its_epoch(cli, tmp_path):
    result = cli(*PRUNED_SEARCH)
    assert result.returncode == 0, result.stderr[-2000:]
    trials = list(csv.DictReader((tmp_path / "run" / "trials.csv").open()))
    assert [(t["status"], t["epochs"]) for t in trials] == [
        ("COMPLETED", "4"),
        ("COMPLETED", "4"),
        ("PRUNED", "1"),
    ]
    assert trials[2]["optimizer.learning_rate"] == "1e-07"
    assert "pruned after epoch 1 by median" in result.stdout
    # The best trial that trained to its end is retrained, without a pruner.
    assert "pruned" not in json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_the_median_rule_stops_a_trial_worse_than_the_finished_ones_median():
    from framework.run.pruning import MedianRule

    finished = [[0.5, 0.7, 0.9], [0.3, 0.6, 0.8], [0.1, 0.2]]
    rule = MedianRule(finished, "max", startup_trials=3, warmup_epochs=2)
    assert not rule.report(1, 0.0)  # warming up
    assert not rule.report(2, 0.65)  # the median at epoch 2 is 0.6
    assert rule.report(3, 0.8) and rule.epoch == 3  # its best, 0.8, is below 0.85
    assert rule.curve == [0.0, 0.65, 0.8]
    # Too few finished trials, or minimized: the other way round.
    assert not MedianRule(finished, "max", 4, 0).report(1, 0.0)
    assert MedianRule(finished, "min", 0, 0).report(1, 0.4)


@pytest.mark.parametrize(
    "override, message",
    [
        ("tuner.pruner=sometimes", "unknown tuner.pruner 'sometimes'; accepted: median, none"),
        (
            "tuner.time_budget=10x",
            "tuner.time_budget='10x' is out of range; accepted: a duration: a number and s, m or h",
        ),
        (
            "tuner.algorithm=hyperband",
            "tuner.pruner=median: tuner=hyperband prunes by its own brackets",
        ),
    ],
)
def test_bad_search_pruner_and_budget_settings_are_refused_in_one_line(
    cli, tmp_path, override, message
):
    assert_one_line_error(cli(*PRUNED_SEARCH, override), message)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_spent_time_budget_starts_no_more_trials_and_retrains_the_best_so_far(cli, tmp_path):
    # Any trial takes more than a second: the budget is spent once the first ends.
    result = cli(*PRUNED_SEARCH, "tuner.pruner=none", "tuner.time_budget=1s")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Stopped:   the time budget (tuner.time_budget=1s) is spent" in result.stdout
    trials = list(csv.DictReader((tmp_path / "run" / "trials.csv").open()))
    assert [t["status"] for t in trials] == ["COMPLETED"]
    best = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert best["objective"]["value"] == float(trials[0]["val_accuracy"])


@pytest.mark.slow
def test_a_spent_optuna_timeout_starts_no_more_trials_and_reports_the_best_so_far(cli, tmp_path):
    result = cli(
        *PRUNED_OPTUNA,
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=1",
        "hydra.sweeper.timeout=1s",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Stopped:   the time budget (hydra.sweeper.timeout) is spent after 1 trial(s)" in (
        result.stdout
    )
    sweep = tmp_path / "sweep"
    assert [t.state.name for t in _study(sweep).trials] == ["COMPLETE"]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert len(rows) == 1 and best.best_value == float(rows[0]["objective_value"])


def test_a_jobs_process_leaves_what_it_imported_out_of_garbage_collections_once():
    import subprocess
    import sys

    # In a process of its own: the test process's heap is not this test's to freeze.
    code = (
        "import gc; from framework.__main__ import _freeze_imports; _freeze_imports(); "
        "frozen = gc.get_freeze_count(); made = [[] for _ in range(1000)]; _freeze_imports(); "
        "print(frozen, gc.get_freeze_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = map(int, out.stdout.split())
    # The imports (Hydra, OmegaConf, the framework's config rooms) are frozen; what the
    # first job made is not, so a later job's collection frees it.
    assert first > 10_000 and second == first


def test_a_duration_reads_as_seconds():
    from framework.parts.ranges import DURATION, Range, seconds

    assert [seconds(d) for d in ("90s", "10m", "1.5h", ".5m")] == [90, 600, 5400, 30]
    accepted = Range(form=DURATION)
    assert not any(accepted.accepts(v) for v in ("10", "1d", "m", "-1s", 10))
