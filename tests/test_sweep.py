"""``python -m framework -m``: every job runs in its own directory, a failed job does not stop the
others, and the sweep ends with a summary, best first."""

import csv
import json


def test_a_sweep_runs_every_job_and_ends_with_a_summary_best_first(cli, tmp_path):
    result = cli("-m", "experiment=iris_binary", "trainer.epochs=2", "trainer.verbose=0",
                 "optimizer.name=adam,adamx,sgd", "hydra.sweep.dir=sweep")
    sweep = tmp_path / "sweep"
    # Job 1 names an unknown optimizer: it fails, the jobs after it still run.
    assert (sweep / "1" / "FAILED").is_file() and not (sweep / "1" / "metrics.json").exists()
    metrics = {job: json.loads((sweep / job / "metrics.json").read_text()) for job in ("0", "2")}
    assert "error: job 1 failed: unknown optimizer 'adamx'" in result.stderr
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: 1 sweep job(s) did not finish; job 1: failed: UserError: unknown optimizer")

    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert {row["job"]: row["overrides"] for row in rows} == {
        "0": "optimizer.name=adam", "1": "optimizer.name=adamx", "2": "optimizer.name=sgd"}
    finished = [row for row in rows if row["status"] == "finished"]
    assert [float(row["validation_accuracy"]) for row in finished] == sorted(
        (m["validation"]["accuracy"] for m in metrics.values()), reverse=True)
    for row in finished:
        assert float(row["test_accuracy"]) == metrics[row["job"]]["test"]["accuracy"]
    assert rows[-1]["job"] == "1" and rows[-1]["status"].startswith("failed: UserError")
    assert "Sweep:     3 jobs, best validation accuracy first" in result.stdout

    # The same sweep dir again: refused before anything in it is touched.
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    again = cli("-m", "experiment=iris_binary", "optimizer.name=adam", "hydra.sweep.dir=sweep")
    assert again.returncode == 2 and "sweep already holds a sweep" in again.stderr
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before
