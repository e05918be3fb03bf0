"""python -m framework.compare: a sweep's jobs, a search's trials or run dirs side by side."""

import csv
import json
import shutil
from dataclasses import replace

import pytest

from framework.compare import main
from framework.run.record import write_record

from conftest import run_cli, run_importing, run_main
from test_run_record import RECORD

CSV_COLUMNS = ["run", "status", "objective", "objective_value"]


def compare(*args):
    """Runs framework.compare in this process."""
    return run_main(main, *args)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fake_job(sweep, num, learning_rate, value, finished=True, std=None):
    """A sweep job's dir as a finished (or unfinished) job leaves it, without training."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(
        f"- experiment=iris_binary\n- optimizer.learning_rate={learning_rate}\n"
    )
    (job / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {num}\n")
    (job / "history.csv").write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\n"
        + "".join(f"{e},0.5,1.0,{value * e / 3},1.0\n" for e in (1, 2, 3))
    )
    if finished:
        objective = {"name": "val_accuracy", "value": value, "direction": "max"}
        if std is not None:
            objective["std"] = std
        write_record(job, replace(RECORD, epochs=3, objective=objective))
    return job


def fake_search(run_dir, trials: str):
    """A search run's dir with its record and a trials.csv, without searching."""
    run_dir.mkdir(parents=True)
    write_record(run_dir, RECORD)
    (run_dir / "trials.csv").write_text(trials)
    return run_dir


@pytest.fixture
def fake_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    for num, (rate, value) in enumerate([(0.01, 0.8), (0.05, 0.9), (0.1, 0.7)]):
        fake_job(sweep, num, rate, value)
    return sweep


def assert_one_line(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    result = run_cli(
        "-m",
        "experiment=iris_binary",
        "trainer.epochs=2",
        "trainer.verbose=0",
        "optimizer.learning_rate=0.01,0.05,0.1",
        "hydra.sweep.dir=sweep",
        cwd=root,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return root / "sweep"


@pytest.mark.slow
def test_a_sweep_is_compared_best_first_with_both_plots_and_its_table(sweep, tmp_path):
    result = compare(sweep, "--output", tmp_path)
    assert result.returncode == 0, result.stderr
    summary = read_rows(sweep / "summary.csv")  # the sweep's own ranking: the same
    rows = read_rows(tmp_path / "compare.csv")
    assert list(rows[0]) == [*CSV_COLUMNS, "optimizer.learning_rate", "epochs"]
    assert [row["run"] for row in rows] == [row["job"] for row in summary]
    for row in rows:
        record = json.loads((sweep / row["run"] / "metrics.json").read_text())
        assert row["status"] == "finished" and row["objective"] == "val_accuracy"
        assert float(row["objective_value"]) == record["objective"]["value"]
        assert row["epochs"] == "2"
    assert {row["optimizer.learning_rate"] for row in rows} == {"0.01", "0.05", "0.1"}
    lines = result.stdout.splitlines()
    assert lines[0] == "Compare:   3 runs, best val_accuracy first"
    assert lines[1].split() == ["run", "val_accuracy", "epochs", "optimizer.learning_rate"]
    assert [line.split()[0] for line in lines[2:5]] == [row["run"] for row in rows]
    assert lines[-1] == f"Wrote:     {tmp_path / 'compare.png'}, hparams.png, compare.csv"
    for name in ("compare.png", "hparams.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_by_default_one_dir_gets_the_files_and_they_are_replaced_only_with_overwrite(sweep):
    result = compare(sweep)
    assert result.returncode == 0, result.stderr
    assert all((sweep / name).is_file() for name in ("compare.png", "hparams.png", "compare.csv"))
    before = (sweep / "compare.csv").read_bytes()
    assert_one_line(compare(sweep), f"{sweep / 'compare.png'} exists; choose another --output")
    assert (sweep / "compare.csv").read_bytes() == before
    assert compare(sweep, "--overwrite").returncode == 0


@pytest.mark.slow
def test_a_search_run_dir_is_compared_by_its_trials(tmp_path):
    result = run_cli(
        "experiment=tune_wine_random",
        "tuner.max_trials=2",
        "trainer.epochs=1",
        "trainer.verbose=0",
        "hydra.run.dir=tuned",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    trials = read_rows(tmp_path / "tuned" / "trials.csv")
    result = compare(tmp_path / "tuned")
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "tuned" / "compare.csv")
    assert [row["run"] for row in rows] == [f"trial {t['trial']}" for t in trials]
    assert [float(row["objective_value"]) for row in rows] == [
        float(t["val_accuracy"]) for t in trials
    ]
    assert list(rows[0])[:4] == CSV_COLUMNS and list(rows[0])[-1] == "epochs"
    assert set(list(rows[0])[4:-1]) <= set(list(trials[0])[2:-2])  # the settings that differ
    # Each trial keeps its curve, which compare.png draws.
    for t in trials:
        history = tmp_path / "tuned" / "tuner" / "search" / f"trial_{t['trial']}" / "history.csv"
        assert read_rows(history)[0]["val_accuracy"]
    assert result.stdout.startswith("Compare:   2 runs, best val_accuracy first")


def test_compare_imports_no_tensorflow_or_keras(fake_sweep, tmp_path):
    result, imported = run_importing("-m", "framework.compare", str(fake_sweep), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "matplotlib" in imported and "framework.sweeps.compare" in imported
    assert not {"tensorflow", "keras", "jax"} & imported


def test_failed_and_unfinished_jobs_are_listed_as_such(tmp_path):
    sweep = tmp_path / "sweep"
    fake_job(sweep, 0, 0.01, 0.8)
    (fake_job(sweep, 1, 0.05, 0.9, finished=False) / "FAILED").write_text("UserError: bad\n")
    fake_job(sweep, 2, 0.1, 0.7, finished=False)
    result = compare(sweep)
    assert result.returncode == 0, result.stderr
    rows = read_rows(sweep / "compare.csv")
    assert [(row["run"], row["status"]) for row in rows] == [
        ("0", "finished"),
        ("1", "failed: UserError: bad"),
        ("2", "not finished"),
    ]
    lines = result.stdout.splitlines()[2:5]
    assert lines[0].split() == ["0", "0.8000", "3", "0.01"]
    assert lines[1].split() == ["1", "-", "-", "0.05", "(failed)"]
    assert lines[2].split() == ["2", "-", "-", "0.1", "(not", "finished)"]


def test_several_run_dirs_are_compared_into_the_current_folder(fake_sweep, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = compare("sweep/0", "sweep/1")
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "compare.csv")
    assert [(row["run"], row["objective_value"]) for row in rows] == [
        ("sweep/1", "0.9"),
        ("sweep/0", "0.8"),
    ]
    assert result.stdout.splitlines()[-1] == "Wrote:     compare.png, hparams.png, compare.csv"


def test_a_record_with_a_spread_shows_its_mean_and_std(tmp_path):
    sweep = tmp_path / "sweep"
    fake_job(sweep, 0, 0.01, 0.8, std=0.05)
    fake_job(sweep, 1, 0.1, 0.7, std=0.125)
    result = compare(sweep)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2].split()[:4] == ["0", "0.8000", "±", "0.0500"]
    rows = read_rows(sweep / "compare.csv")
    assert [row["objective_std"] for row in rows] == ["0.05", "0.125"]


def test_trials_that_did_not_complete_are_listed_with_their_status(tmp_path):
    search = fake_search(
        tmp_path / "tuned",
        "trial,status,optimizer.learning_rate,val_accuracy,epochs\n"
        "1,COMPLETED,0.01,0.9,3\n0,COMPLETED,0.1,0.8,3\n2,FAILED,0.5,nan,\n",
    )
    result = compare(search)
    assert result.returncode == 0, result.stderr
    rows = read_rows(search / "compare.csv")
    assert [(row["run"], row["status"], row["objective_value"]) for row in rows] == [
        ("trial 1", "finished", "0.9"),
        ("trial 0", "finished", "0.8"),
        ("trial 2", "failed", ""),
    ]
    assert result.stdout.splitlines()[-2].split() == ["trial", "2", "-", "-", "0.5", "(failed)"]


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("missing", "not a directory: {root}/missing"),
        ("empty", "{root}/empty holds no run: give a sweep's directory"),
        ("unfinished", "{root}/sweep/1 is not a finished run (it has no metrics.json)"),
        ("damaged", "metrics.json in {root}/sweep/0 is damaged (not valid JSON)"),
        ("output_file", "--output must be a folder; {root}/file is a file"),
        ("trials", "trials.csv in {root}/tuned is damaged (not a search's table of trials)"),
        ("no_dir", "the following arguments are required: DIR"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, case, fragment):
    sweep = tmp_path / "sweep"
    fake_job(sweep, 0, 0.01, 0.8)
    fake_job(sweep, 1, 0.05, 0.9, finished=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("")
    fake_search(tmp_path / "tuned", "trial,status\n0,COMPLETED\n")
    args = {
        "missing": [tmp_path / "missing"],
        "empty": [tmp_path / "empty"],
        "unfinished": [sweep / "0", sweep / "1"],
        "damaged": [sweep / "0"],
        "output_file": [sweep, "--output", tmp_path / "file"],
        "no_dir": [],
        "trials": [tmp_path / "tuned"],
    }[case]
    if case == "damaged":
        (sweep / "0" / "metrics.json").write_text("{")
    result = compare(*args)
    assert_one_line(result, fragment.format(root=tmp_path))
    assert result.stdout == ""
    assert not (sweep / "compare.csv").exists()


def test_help_names_the_command_and_its_options():
    result = compare("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m framework.compare")
    assert "--overwrite" in result.stdout and "--output" in result.stdout


def test_hundreds_of_runs_compare(tmp_path):
    sweep = tmp_path / "sweep"
    job = fake_job(sweep, 0, 0.001, 0.5)
    for num in range(1, 200):
        shutil.copytree(job, sweep / str(num))
        (sweep / str(num) / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {num}\n")
        (sweep / str(num) / ".hydra" / "overrides.yaml").write_text(
            f"- optimizer.learning_rate={0.001 * (num + 1)}\n"
        )
    result = compare(sweep)
    assert result.returncode == 0, result.stderr
    assert len(read_rows(sweep / "compare.csv")) == 200
