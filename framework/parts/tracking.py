"""What a tracker part is: where a run's settings, scores and files are logged as it trains
(MLflow, TensorBoard, a CSV table, a third party's W&B or Aim), so that runs can be found and
compared across run dirs.

A plugin registers a builder ``build(cfg) -> Tracker`` (``register_trackers``); the core builds
one tracker per run and calls it, in this order: ``check``, ``start``, ``log_epoch`` after each
epoch, ``log_tags`` and ``log_final`` once the run dir is written, and ``end``. A tracker that
raises after ``start`` stops logging for the rest of the run with a one-line warning: the run
itself goes on.
"""

from dataclasses import dataclass, field
from pathlib import Path

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"


@dataclass
class TrackedRun:
    """A run as its tracker sees it.

    Args:
        run_dir: the run's directory (a tracker may keep its own record of the run there, to
            continue it when a stopped run runs again in the same dir).
        name: a short name for listings: the run dir's path under ``outputs/``.
        params: the composed config, flattened (``optimizer.learning_rate``: 0.001).
        tags: what the run is: ``experiment``, ``dataset``, ``task``, ``backend``, ``git_commit``,
            and a sweep job's ``sweep`` and ``job``; only those known.
        parent_dir: the directory of the run it belongs to (a sweep's dir, a search's run dir),
            or None. The parent's own record lives there, made by whichever of its runs starts
            first.
        parent_name: the parent's short name, as ``name``.
        kind: ``run``, a sweep's ``job``, a search's ``search`` or one of its ``trial``s.
    """

    run_dir: Path
    name: str
    params: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    parent_dir: Path | None = None
    parent_name: str | None = None
    kind: str = "run"


class Tracker:
    """A run tracker; every method does nothing here (``tracker=none``). A plugin's tracker
    subclasses it and overrides what its store keeps."""

    #: Whether an unreachable store fails the run (its ``required`` setting, where it has one).
    required = True

    def check(self):
        """Reaches the store, before the run trains.

        Raises:
            UserError: one line saying what cannot be reached and what to do.
        """

    def start(self, run: TrackedRun):
        """Starts the run's record, or continues the one a stopped run in the same dir left."""

    def log_epoch(self, step: int, metrics: dict[str, float]):
        """One epoch's logs: ``step`` counts the run's epochs from 1, over all its stages."""

    def log_tags(self, tags: dict[str, str]):
        """Tags known once the run has loaded its data (``task``: what ``task=auto`` chose)."""

    def log_final(self, scores: dict[str, float], files: list[Path]):
        """The run's final scores (``val_accuracy``, ``test_accuracy``, ``objective``...) and the
        files of its run dir worth keeping (model, plots, record, card), each a path inside
        ``run_dir``."""

    def end(self, status: str):
        """Ends the run's record: ``FINISHED``, ``FAILED`` or ``KILLED`` (stopped by a signal)."""

    def end_parent(self, parent_dir: Path, files: list[Path]):
        """Ends the record of the parent (a sweep) whose runs were started with ``parent_dir``,
        if one was made, keeping ``files`` (its summary)."""
