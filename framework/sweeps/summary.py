"""The end of a sweep: one table of its jobs, best first, printed and kept as ``summary.csv``.

A Hydra callback (``hydra.callbacks.sweep_summary`` in conf/config.yaml): it reads what each job
left in its directory, so it works the same with every launcher, and whatever failed.
"""

import time
from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import OmegaConf

from framework.errors import DirectoryTaken, UserError, signals_deferred
from framework.parts.objective import Objective, best_first
from framework.run.record import read_record
from framework.run.rundir import FAILED, METRICS, locked, mark_failed, shown, write_csv_atomic
from framework.run.tracking import end_sweep

SUMMARY = "summary.csv"
# Around the task's headline score on validation and test (validation_accuracy,
# test_accuracy for classification; validation_mae, test_mae for regression).
FIRST_COLUMNS = ("job", "status", "overrides", "objective", "objective_value")
LAST_COLUMNS = ("epochs", "run_dir")

# libyaml's loader where PyYAML was built with it.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Short names of headline scores in the printed table.
ABBREVIATIONS = {"accuracy": "acc"}

# The statuses of jobs that wrote their record: trained to the end, or stopped by a pruner.
ENDED = ("finished", "pruned")

# The jobs of the last sweep this process ran that did not finish: python -m framework exits
# with an error when there are some (Hydra turns a callback's own exceptions into warnings).
_unfinished: list[dict] = []


# The sweep this process runs: where, and whether its jobs run in this machine's processes.
_running: dict = {}
# Launchers whose jobs run in this process or in worker processes it stops with itself.
LOCAL_LAUNCHERS = ("BasicLauncher", "JoblibLauncher")
# How long a stopped sweep waits for its workers to let go of their job dirs.
WORKERS_GONE_TIMEOUT = 15.0


class SweepSummary(Callback):
    def on_multirun_start(self, config, **kwargs):
        _unfinished.clear()
        _running.update(
            dir=_sweep_dir(config),
            output_subdir=config.hydra.output_subdir,
            local=str(config.hydra.launcher.get("_target_", "")).endswith(LOCAL_LAUNCHERS),
        )

    def on_job_end(self, config, job_return, **kwargs):
        # Kept up to date as jobs end, so a long sweep can be followed, and a sweep stopped by
        # a crash still has one.
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            with signals_deferred():
                write_summary(_sweep_dir(config), config.hydra.output_subdir)

    def on_multirun_end(self, config, **kwargs):
        sweep_dir = _sweep_dir(config)
        jobs = write_summary(sweep_dir, config.hydra.output_subdir)
        _unfinished[:] = [job for job in jobs if job["status"] not in ENDED] or [
            # Without .hydra records (output_subdir null), the FAILED files still tell.
            {"job": path.parent.name, "status": "failed"}
            for path in sorted(sweep_dir.glob(f"*/{FAILED}"))
        ]
        if jobs:
            from framework.sweeps.plot import PLOT, plot_sweep  # matplotlib: only once it is needed

            print(format_table(jobs))
            keep = OmegaConf.select(config, "sweep.keep_top_k")
            if keep is not None and keep >= 1:  # a smaller one failed every job (its check)
                deleted = delete_models_outside(jobs, keep)
                if deleted:
                    print(
                        f"Deleted:   model.keras of {len(deleted)} job(s) outside the best "
                        f"{keep} (sweep.keep_top_k): job {', '.join(map(str, deleted))}"
                    )
            plot_sweep(
                sweep_dir,
                jobs,
                [job for job in jobs if job["status"] == "finished" and has_objective(job)],
            )
            print(f"Wrote:     {shown(sweep_dir / SUMMARY)}, {PLOT}")
        # Where the jobs were tracked under a run of the sweep: ended, with its summary.
        end_sweep(config, sweep_dir)


def record_stopped_sweep(stopped: BaseException):
    """After a signal stopped this process's sweep: marks each job that started and did not
    finish FAILED (naming the signal), once no process holds its dir, and writes summary.csv.

    Only where the jobs ran in this process or its local workers (which stop with it); a
    cluster's jobs go on without it.
    """
    if not _running.get("local") or not _running["dir"].is_dir():
        return
    sweep_dir = _running["dir"]
    deadline = time.monotonic() + WORKERS_GONE_TIMEOUT
    for job_dir in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        while not ((job_dir / METRICS).exists() or (job_dir / FAILED).exists()):
            try:
                with locked(job_dir):  # its worker is gone: nothing else will mark it
                    if not (job_dir / METRICS).exists():
                        mark_failed(job_dir, str(stopped))  # if it can: best effort
                break
            except DirectoryTaken:  # a worker still shutting down
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
    if _running["output_subdir"]:
        write_summary(sweep_dir, _running["output_subdir"])


def delete_models_outside(jobs: list[dict], keep: int) -> list[int]:
    """Deletes ``model.keras`` of the finished and pruned jobs after the best ``keep`` (jobs
    ranked best first); returns their numbers."""
    finished = [job for job in jobs if job["status"] in ENDED]
    deleted = []
    for job in finished[keep:]:
        model = Path(job["run_dir"]) / "model.keras"
        if model.is_file():
            model.unlink()
            deleted.append(job["job"])
    return deleted


def unfinished_jobs() -> list[dict]:
    """The jobs of the last sweep run in this process that failed or did not finish."""
    return list(_unfinished)


def shown_status(job: dict) -> str:
    """A job's status as the table and the sweep's last line print it: a failed job's error was
    printed as the job failed (``error: job N failed: ...``), so here only "failed"
    (summary.csv keeps the error); a pruned job's, with its epoch."""
    if job["status"] == "pruned":
        return f"pruned after epoch {job['epochs']}"
    return "failed" if job["status"].startswith("failed") else job["status"]


def finished_sweep_check(sweep_dir: Path):
    """Raises DirectoryTaken if ``sweep_dir`` holds a sweep (a summary or a finished job); the
    message names the switch that continues one (``hydra/sweeper=resume``)."""
    if (sweep_dir / SUMMARY).exists() or next(sweep_dir.glob(f"**/{METRICS}"), None):
        raise DirectoryTaken(
            f"{sweep_dir} already holds a sweep or finished runs; choose another directory "
            "(hydra.sweep.dir=...), or repeat a grid sweep's command with hydra/sweeper=resume "
            "to run only its failed and unfinished jobs"
        )


def write_summary(sweep_dir: Path, output_subdir: str | None) -> list[dict]:
    """Writes ``summary.csv`` into the sweep directory; returns its rows."""
    jobs = collect_jobs(sweep_dir, output_subdir) if output_subdir else []
    if jobs:
        write_csv_atomic(sweep_dir / SUMMARY, columns(jobs), summary_rows(jobs))
    return jobs


def columns(jobs: list[dict]) -> list[str]:
    """summary.csv's columns: the objective's std where a job's protocol trained several
    models (its value is then their mean), and the headline scores of every task in the sweep."""
    spread = ["objective_std"] if any("objective_std" in job for job in jobs) else []
    scores = []
    for job in jobs:
        if "headline" in job:
            scores += [
                c
                for c in (f"validation_{job['headline']}", f"test_{job['headline']}")
                if c not in scores
            ]
    return [*FIRST_COLUMNS, *spread, *scores, *LAST_COLUMNS]


def collect_jobs(sweep_dir: Path, output_subdir: str = ".hydra") -> list[dict]:
    """One row per job directory of a sweep: its overrides, status and scores, best first.

    The overrides that all jobs share are left out, but a searched setting's: the rest is what
    the sweep varied.
    """
    jobs, searched = [], set()
    for overrides_file in sorted(sweep_dir.glob(f"**/{output_subdir}/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        hydra_cfg = read_yaml(overrides_file.parent / "hydra.yaml").get("hydra") or {}
        job_num = (hydra_cfg.get("job") or {}).get("num")
        if not isinstance(job_num, int):
            continue  # a single run's directory, not a sweep job's
        row = {
            "job": job_num,
            "overrides": list(read_yaml(overrides_file)),
            "run_dir": str(job_dir),
        }
        row.update(_outcome(job_dir))
        jobs.append(row)
        searched |= set((hydra_cfg.get("sweeper") or {}).get("params") or ())
    # What a search's jobs drew is shown even where they drew the same (Optuna's params).
    shared = (
        {
            o
            for o in set.intersection(*(set(job["overrides"]) for job in jobs))
            if o.split("=", 1)[0].lstrip("+~") not in searched
        }
        if jobs
        else set()
    )
    for job in jobs:
        job["varied"] = " ".join(o for o in job["overrides"] if o not in shared)
    # Jobs of different tasks (-m task=...) optimize different objectives: ranked apart. A
    # pruned job's value is its stopped model's: ranked after those that trained to the end.
    return best_first(
        jobs,
        _objective,
        lambda job: job.get("objective_value") if job["status"] == "finished" else None,
        lambda job: job["job"],
    )


def read_yaml(path: Path):
    """A job's Hydra record (``.hydra/*.yaml``) as plain data, its interpolations as text.

    Read with libyaml, not ``OmegaConf.load``: a job's hydra.yaml in about a twentieth of the
    time (4 ms against 78 ms on the 2-core machine), which a sweep of hundreds of jobs feels:
    its summary is rewritten as each job ends, and ``framework.compare`` reads it too.
    """
    return yaml.load(path.read_text(), Loader=_YAML_LOADER)


def has_objective(job: dict) -> bool:
    """Whether a job of ``collect_jobs`` has an objective value (not NaN)."""
    objective = _objective(job)
    return objective is not None and objective.has_value(job["objective_value"])


def _objective(job: dict) -> Objective | None:
    """A finished job's objective; None for the others."""
    return Objective(job["objective"], job["direction"]) if "objective" in job else None


def _outcome(job_dir: Path) -> dict:
    """A job's status, and its scores when it finished."""
    try:
        record = read_record(job_dir)
    except UserError as e:
        return {"status": str(e)}
    if record is not None:
        score = record.headline
        outcome = {
            "status": "pruned" if record.pruned else "finished",
            "epochs": record.epochs,
            "headline": score,
            f"validation_{score}": record.validation[score],
            "objective": record.objective["name"],
            "objective_value": record.objective["value"],
            "direction": record.objective["direction"],
        }
        if "std" in record.objective:  # a protocol's: the value is the mean of its models'
            outcome["objective_std"] = record.objective["std"]
        if record.evaluated_on == "test":
            outcome[f"test_{score}"] = record.test[score]
        return outcome
    if (job_dir / FAILED).is_file():
        lines = (job_dir / FAILED).read_text().strip().splitlines()
        return {"status": "failed: " + (lines[0] if lines else "")}
    return {"status": "not finished"}


def summary_rows(jobs: list[dict]) -> list[list]:
    return [
        [
            job["varied"] if column == "overrides" else job.get(column, "")
            for column in columns(jobs)
        ]
        for job in jobs
    ]


def format_table(jobs: list[dict]) -> str:
    """The jobs as aligned columns, best objective first."""
    objectives = list(dict.fromkeys(job["objective"] for job in jobs if "objective" in job))
    scores = list(dict.fromkeys(job["headline"] for job in jobs if "headline" in job))
    mixed = len(objectives) > 1 or len(scores) > 1  # then each cell names its score
    objective = "objective" if mixed else (objectives or ["objective"])[0]
    score = (scores or ["accuracy"])[0]
    rows = [
        [
            "job",
            objective,
            "test score" if mixed else f"test {ABBREVIATIONS.get(score, score)}",
            "overrides / status",
        ]
    ]
    for job in jobs:
        finished = job["status"] == "finished"
        test = job.get(f"test_{job.get('headline', score)}")
        name = f"{job.get('objective')} " if mixed and finished else ""
        rows.append(
            [
                str(job["job"]),
                f"{name}{job['objective_value']:.4f}{_spread(job)}" if finished else "-",
                (
                    f"{job['headline'] + ' ' if mixed else ''}{test:.4f}"
                    if test is not None
                    else "-"
                ),
                job["varied"] + ("" if finished else f"  ({shown_status(job)})"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3]
        for row in rows
    ]
    best = (
        f"best first by each objective ({', '.join(objectives)})"
        if len(objectives) > 1
        else f"best {objective} first"
    )
    return f"Sweep:     {len(jobs)} jobs, {best}\n" + "\n".join(
        "  " + line.rstrip() for line in lines
    )


def _spread(job: dict) -> str:
    """`` ± std`` of a job whose objective is a mean (a protocol's), else nothing."""
    return f" ± {job['objective_std']:.4f}" if "objective_std" in job else ""


def _sweep_dir(config) -> Path:
    # Relative to where the sweep was started: with hydra.job.chdir=true a job runs elsewhere.
    return Path(config.hydra.runtime.cwd) / config.hydra.sweep.dir
