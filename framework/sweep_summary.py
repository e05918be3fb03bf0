"""The end of a sweep: one table of its jobs, best first, printed and kept as ``summary.csv``.

A Hydra callback (``hydra.callbacks.sweep_summary`` in conf/config.yaml): it reads what each job
left in its directory, so it works the same with every launcher, and whatever failed.
"""

import csv
import io
import json
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import OmegaConf

from framework.rundir import FAILED, write_atomic

COLUMNS = ("job", "status", "validation_accuracy", "test_accuracy", "epochs", "run_dir")


# The jobs of the last sweep this process ran that did not finish: python -m framework exits
# with an error when there are some (a Hydra callback's own exceptions become warnings).
_unfinished: list[dict] = []


class SweepSummary(Callback):
    def on_job_end(self, config, job_return, **kwargs):
        # Kept up to date as jobs end, so a long sweep can be followed, and a sweep stopped by
        # a crash still has one.
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            write_summary(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config, **kwargs):
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = write_summary(sweep_dir)
        _unfinished[:] = [job for job in jobs if job["status"] != "finished"]
        if jobs:
            print(format_table(jobs))
            print(f"Wrote:     {sweep_dir / 'summary.csv'}")


def unfinished_jobs() -> list[dict]:
    """The jobs of the last sweep run in this process that failed or did not finish."""
    return list(_unfinished)


def write_summary(sweep_dir: Path) -> list[dict]:
    jobs = collect_jobs(sweep_dir)
    if jobs:
        write_atomic(sweep_dir / "summary.csv", summary_csv(jobs))
    return jobs


def collect_jobs(sweep_dir: Path) -> list[dict]:
    """One row per job directory of a sweep: its overrides, status and scores, best first.

    The overrides that all jobs share are left out: the rest is what the sweep varied.
    """
    jobs = []
    for overrides_file in sweep_dir.glob("**/.hydra/overrides.yaml"):
        job_dir = overrides_file.parent.parent
        hydra_cfg = OmegaConf.load(job_dir / ".hydra" / "hydra.yaml")
        row = {
            "job": hydra_cfg.hydra.job.num,
            "overrides": list(OmegaConf.load(overrides_file)),
            "run_dir": str(job_dir),
        }
        metrics_file = job_dir / "metrics.json"
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text())
            row.update(status="finished", epochs=metrics["epochs"],
                       validation_accuracy=metrics["validation"]["accuracy"])
            if metrics["evaluated_on"] == "test":
                row["test_accuracy"] = metrics["test"]["accuracy"]
        elif (job_dir / FAILED).is_file():
            row["status"] = "failed: " + (job_dir / FAILED).read_text().strip().splitlines()[0]
        else:
            row["status"] = "not finished"
        jobs.append(row)
    shared = set.intersection(*(set(job["overrides"]) for job in jobs)) if jobs else set()
    for job in jobs:
        job["varied"] = " ".join(o for o in job["overrides"] if o not in shared)
    return sorted(jobs, key=lambda job: (-job.get("validation_accuracy", -1.0), job["job"]))


def summary_csv(jobs: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*COLUMNS[:2], "overrides", *COLUMNS[2:]])
    for job in jobs:
        writer.writerow([job["job"], job["status"], job["varied"],
                         *(job.get(column, "") for column in COLUMNS[2:])])
    return out.getvalue()


def format_table(jobs: list[dict]) -> str:
    """The jobs as aligned columns, best validation accuracy first."""
    header = ["job", "val acc", "test acc", "overrides / status"]
    rows = [header]
    for job in jobs:
        finished = job["status"] == "finished"
        rows.append([
            str(job["job"]),
            f"{job['validation_accuracy']:.4f}" if finished else "-",
            f"{job['test_accuracy']:.4f}" if "test_accuracy" in job else "-",
            job["varied"] + ("" if finished else f"  ({job['status']})"),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3]
             for row in rows]
    return f"Sweep:     {len(jobs)} jobs, best validation accuracy first\n" + "\n".join(
        "  " + line.rstrip() for line in lines)
