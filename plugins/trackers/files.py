"""Trackers that need no server: ``none``, ``tensorboard`` (every run's curves in one log dir) and
``csv`` (one table of every run, one of their epochs), both under ``outputs/`` by default."""

import contextlib
import csv
import fcntl
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from framework.api import TrackedRun, Tracker, UserError, hookimpl


@dataclass
class NoTrackerConfig:
    pass


@dataclass
class TensorBoardTrackerConfig:
    # Every run's logs, each in a folder named as the run (its path under outputs/), so that
    # one `tensorboard --logdir outputs/tensorboard` compares all runs and sweeps.
    log_dir: str = "outputs/tensorboard"
    # A log dir that cannot be written fails the run before it trains; false: a warning.
    required: bool = True


@dataclass
class CsvTrackerConfig:
    # runs.csv (a row per run as it ends: its status, tags, params and scores) and epochs.csv
    # (a row per metric and epoch), appended to by every run.
    dir: str = "outputs/tracking"
    # A dir that cannot be written fails the run before it trains; false: a warning.
    required: bool = True


RUNS_HEADER = ["run", "parent", "kind", "status", "started", "ended", "tags", "params", "scores"]
EPOCHS_HEADER = ["run", "step", "metric", "value"]


def _writable(folder: Path, key: str):
    """Refuses a folder that cannot be made or written, naming the setting."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"tracker.{key}={str(folder)!r} cannot be made: {e.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"tracker.{key}={str(folder)!r} cannot be written; pick another")


class TensorBoardTracker(Tracker):
    def __init__(self, cfg):
        self.log_dir, self.required = Path(cfg.log_dir), cfg.required
        self.writer = None

    def check(self):
        _writable(self.log_dir, "log_dir")

    def start(self, run: TrackedRun):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        name = Path(run.name)  # a run outside outputs/ is named by its path: kept under log_dir
        self.writer = EventFileWriter(str(self.log_dir / name.relative_to(name.anchor)))

    def log_epoch(self, step, metrics):
        self._scalars(step, metrics)

    def log_final(self, scores, files):
        self._scalars(0, {f"final/{k}": v for k, v in scores.items()})

    def end(self, status):
        self.writer.close()

    def _scalars(self, step, values: dict):
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.plugins.scalar.summary_v2 import scalar_pb

        for tag, value in values.items():
            summary = scalar_pb(tag, value)
            self.writer.add_event(Event(summary=summary, step=step, wall_time=time.time()))
        self.writer.flush()


class CsvTracker(Tracker):
    def __init__(self, cfg):
        self.dir, self.required = Path(cfg.dir), cfg.required
        self.run, self.started, self.scores = None, None, {}

    def check(self):
        _writable(self.dir, "dir")

    def start(self, run: TrackedRun):
        self.run, self.started = run, _now()

    def log_epoch(self, step, metrics):
        rows = [[self.run.name, step, k, v] for k, v in metrics.items()]
        _append(self.dir / "epochs.csv", EPOCHS_HEADER, rows)

    def log_tags(self, tags):
        self.run.tags.update(tags)

    def log_final(self, scores, files):
        self.scores = scores

    def end(self, status):
        run = self.run
        row = [
            run.name,
            run.parent_name or "",
            run.kind,
            status,
            self.started,
            _now(),
            json.dumps(run.tags),
            json.dumps(run.params),
            json.dumps(self.scores),
        ]
        _append(self.dir / "runs.csv", RUNS_HEADER, [row])


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def _append(path: Path, header: list[str], rows: list[list]):
    """Appends rows to a CSV file shared by runs side by side: one write under a lock, the
    header first where the file is new."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerows(rows)
    with open(path, "a", newline="") as file, _exclusive(file):
        if os.fstat(file.fileno()).st_size == 0:  # as the lock finds it: tell() may be stale
            file.write(",".join(header) + "\r\n")
        file.write(text.getvalue())


@contextlib.contextmanager
def _exclusive(file):
    fcntl.flock(file, fcntl.LOCK_EX)
    try:
        yield
    finally:
        file.flush()
        fcntl.flock(file, fcntl.LOCK_UN)


def build_none(cfg):
    """Log nothing beyond the run dir."""
    return Tracker()


def build_tensorboard(cfg):
    """Every run's curves and scores in one TensorBoard log dir (outputs/tensorboard)."""
    return TensorBoardTracker(cfg)


def build_csv(cfg):
    """One CSV table of every run and one of their epochs (outputs/tracking)."""
    return CsvTracker(cfg)


@hookimpl
def register_trackers(register):
    register("none", build_none, NoTrackerConfig())
    register("tensorboard", build_tensorboard, TensorBoardTrackerConfig())
    register("csv", build_csv, CsvTrackerConfig())
