"""Runs side by side (``python -m framework.compare``): what a sweep's jobs, a search's trials or
any finished runs left in their directories, ranked best first by their objective.

Only the run records are read (metrics.json, history.csv, ``.hydra/overrides.yaml``, a search's
trials.csv), never a model: no TensorFlow, so hundreds of runs compare in seconds. The plots
are drawn by ``framework.sweeps.compare_plots`` (matplotlib, imported once it is needed).
"""

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from framework.errors import UserError, damaged
from framework.parts.objective import Objective, best_first
from framework.run.checkpoint import trial_dir
from framework.run.record import read_record
from framework.run.rundir import FAILED, HISTORY, METRICS, write_csv_atomic
from framework.sweeps.summary import collect_jobs, read_yaml, shown_status

CURVES, HPARAMS, TABLE = "compare.png", "hparams.png", "compare.csv"
OUTPUTS = (CURVES, HPARAMS, TABLE)
TRIALS = "trials.csv"
FINISHED = "finished"


@dataclass
class Compared:
    """One run of a comparison: a sweep's job, a search's trial, or a run dir.

    Args:
        name: as the table shows it (a job's dir, ``trial 03``, a run dir).
        status: ``finished``, or what else it is (``failed: ...``, ``not finished``, a trial's
            status in trials.csv, lower case).
        settings: its overrides, ``{key: value}`` as typed.
        objective: what it is ranked by; None where it has no record.
        value: the objective's value; None where it has none.
        spread: the standard deviation of the objective where the run's record has one (its
            mean over folds or seeds).
        epochs: the epochs it trained.
        history: its history.csv, where it has one.
    """

    name: str
    status: str
    settings: dict = field(default_factory=dict)
    objective: Objective | None = None
    value: float | None = None
    spread: float | None = None
    epochs: int | None = None
    history: Path | None = None

    @property
    def scored(self) -> bool:
        """Whether it has an objective value to plot."""
        return self.objective is not None and self.objective.has_value(self.value)


def collect_runs(dirs: list[Path]) -> list[Compared]:
    """The runs in ``dirs``, best first (``best_first``: by each objective, unscored last).

    Each directory is a sweep's (its jobs, whatever their state), a search run's (its trials),
    or a finished run's.

    Raises:
        UserError: a directory that is none of these, or a run that did not finish.
    """
    runs = []
    several = len(dirs) > 1
    for directory in dirs:
        if not directory.is_dir():
            raise UserError(f"not a directory: {directory}")
        if (directory / TRIALS).is_file():
            runs += _trials(directory, several)
        elif _is_run(directory):
            runs.append(_finished_run(directory, str(directory)))
        else:
            jobs = collect_jobs(directory)
            if not jobs:
                raise UserError(
                    f"{directory} holds no run: give a sweep's directory, a search run's or "
                    "finished runs'"
                )
            for job in jobs:
                job_dir = Path(job["run_dir"])
                name = str(job_dir.relative_to(directory))
                runs.append(_job(job_dir, str(directory / name) if several else name, job))
    order = {id(run): i for i, run in enumerate(runs)}
    return best_first(runs, lambda r: r.objective, lambda r: r.value, lambda r: order[id(r)])


def varied(runs: list[Compared]) -> list[str]:
    """The settings whose value is not the same in every run, in the order they appear."""
    keys = list(dict.fromkeys(key for run in runs for key in run.settings))
    return [key for key in keys if len({run.settings.get(key) for run in runs}) > 1]


def read_curve(run: Compared) -> list[float]:
    """A run's objective, epoch by epoch, from its history.csv ([] where it has none)."""
    if run.history is None or run.objective is None or not run.history.is_file():
        return []
    with open(run.history, newline="") as f:
        reader = csv.DictReader(f)
        if run.objective.name not in (reader.fieldnames or ()):
            return []
        return [float(row[run.objective.name] or math.nan) for row in reader]


def shown_value(run: Compared) -> str:
    """A run's objective value as the table prints it (with its spread, where it has one)."""
    if not run.scored:
        return "-"
    return f"{run.value:.4f}" + (f" ± {run.spread:.4f}" if run.spread is not None else "")


def format_table(runs: list[Compared]) -> str:
    """The runs as aligned columns, best first: the objective, the epochs, the settings that
    vary, and the status of those that did not finish."""
    objectives = list(dict.fromkeys(run.objective.name for run in runs if run.objective))
    mixed = len(objectives) > 1  # then each cell names its objective
    keys = varied(runs)
    rows = [["run", "objective" if mixed else (objectives or ["objective"])[0], "epochs", *keys]]
    for run in runs:
        name = f"{run.objective.name} " if mixed and run.scored else ""
        rows.append(
            [
                run.name,
                name + shown_value(run),
                "-" if run.epochs is None else str(run.epochs),
                *(_short(run.settings.get(key, "-")) for key in keys),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        + ("" if i == 0 or runs[i - 1].status == FINISHED else f"  ({_status(runs[i - 1])})")
        for i, row in enumerate(rows)
    ]
    best = (
        f"best first by each objective ({', '.join(objectives)})"
        if mixed
        else f"best {(objectives or ['objective'])[0]} first"
    )
    return f"Compare:   {len(runs)} runs, {best}\n" + "\n".join(lines)


def write_table(runs: list[Compared], path: Path):
    """Writes ``compare.csv``: one row per run, best first, each varied setting a column."""
    keys = varied(runs)
    spread = any(run.spread is not None for run in runs)
    write_csv_atomic(
        path,
        [
            "run",
            "status",
            "objective",
            "objective_value",
            *(["objective_std"] if spread else []),
            *keys,
            "epochs",
        ],
        (
            [
                run.name,
                run.status,
                run.objective.name if run.objective else "",
                run.value if run.scored else "",
                *([run.spread if run.spread is not None else ""] if spread else []),
                *(run.settings.get(key, "") for key in keys),
                "" if run.epochs is None else run.epochs,
            ]
            for run in runs
        ),
    )


def _short(value: str) -> str:
    """A setting's value as the table prints it: a drawn float to 4 significant digits
    (compare.csv keeps it whole)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.4g}" if "." in value or "e" in value.lower() else value


def _status(run: Compared) -> str:
    """A run's status as the table shows it (compare.csv keeps a failed job's error)."""
    return shown_status({"status": run.status})


def _is_run(directory: Path) -> bool:
    """Whether a directory is one run's (finished or not), not a sweep's."""
    return any((directory / name).exists() for name in (".hydra", METRICS, FAILED))


def _finished_run(run_dir: Path, name: str) -> Compared:
    record = read_record(run_dir)
    if record is None:
        raise UserError(f"{run_dir} is not a finished run (it has no metrics.json)")
    return _from_record(name, record, run_dir, _overrides(run_dir))


def _job(job_dir: Path, name: str, job: dict) -> Compared:
    """A sweep job of ``collect_jobs``: its status from there, its scores from its record."""
    settings = dict(_setting(o) for o in job["overrides"])
    if job["status"] != FINISHED:
        return Compared(name, job["status"], settings, history=job_dir / HISTORY)
    return _from_record(name, read_record(job_dir), job_dir, settings)


def _from_record(name: str, record, run_dir: Path, settings: dict) -> Compared:
    objective = record.objective
    return Compared(
        name,
        FINISHED,
        settings,
        Objective(objective["name"], objective["direction"]),
        objective["value"],
        objective.get("std"),
        record.epochs,
        run_dir / HISTORY,
    )


def _trials(run_dir: Path, several: bool) -> list[Compared]:
    """A search run's trials, from its trials.csv; ranked by the objective its record names
    (the trials' own, where the search's objective differs)."""
    record = read_record(run_dir)
    if record is None:
        raise UserError(f"{run_dir} is not a finished search (it has no metrics.json)")
    with open(run_dir / TRIALS, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows = list(reader)
    # trial, status, the settings, the objective, then the epochs trained.
    epochs_at = len(header) - 1 - header[::-1].index("epochs") if "epochs" in header else -1
    if header[:2] != ["trial", "status"] or epochs_at < 3:
        raise damaged(run_dir, TRIALS, "not a search's table of trials")
    keys, name = header[2 : epochs_at - 1], header[epochs_at - 1]
    if name == record.objective["name"]:
        objective = Objective(name, record.objective["direction"])
    else:  # tuner.objective, not the run's trainer.objective
        objective = Objective.named(name)
    trials = []
    for row in rows:
        if len(row) != len(header):
            raise damaged(run_dir, TRIALS, "a row without every column")
        trial, status, value, epochs = row[0], row[1], row[epochs_at - 1], row[epochs_at]
        finished = status == "COMPLETED"
        trials.append(
            Compared(
                f"{run_dir}: trial {trial}" if several else f"trial {trial}",
                FINISHED if finished else status.lower(),
                {k: v for k, v in zip(keys, row[2 : epochs_at - 1]) if v != ""},
                objective,
                float(value) if finished and value else None,
                epochs=int(epochs) if epochs else None,
                history=trial_dir(run_dir, trial) / HISTORY,
            )
        )
    return trials


def _overrides(run_dir: Path) -> dict:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    return dict(_setting(o) for o in read_yaml(path) or ())


def _setting(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value
