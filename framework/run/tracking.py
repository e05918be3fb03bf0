"""A run's tracker (``tracker=``) as the run goes: built and checked before anything trains, told
each epoch, the final scores and the run dir's files, and ended with the run's status.

A tracker that cannot be reached fails the run before training, in one line; with
``tracker.required=false`` the run goes on untracked, with a one-line warning, and nothing is
logged. Once a run has started, a tracker that fails only stops logging (a warning says why):
training is never lost to its tracker.
"""

import contextlib
import copy
import json
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from framework.errors import UserError
from framework.parts import registry
from framework.parts.tracking import FAILED, FINISHED, KILLED, TrackedRun, Tracker

# Run names are run dirs' paths under here (Hydra's run and sweep dirs, by default).
OUTPUTS = "outputs"


class Tracking:
    """One run's tracker, as the run goes.

    Args:
        cfg: the run's config (``cfg.tracker`` picks the tracker; None or absent: none).
        run_dir: the run's directory.
        parent_dir: the directory of the run it belongs to: a sweep's dir for its jobs, a
            search's run dir for its trials; None.
        kind: ``run``, ``job``, ``search`` or ``trial`` (``TrackedRun.kind``).
        tags: tags beside those read off the config (a sweep job's ``sweep`` and ``job``).
    """

    def __init__(self, cfg, run_dir, parent_dir=None, kind="run", tags=None):
        self.cfg, self.run_dir, self.kind = cfg, Path(run_dir), kind
        self.parent_dir = Path(parent_dir) if parent_dir is not None else None
        self.tags = dict(tags or {})
        self.tracker: Tracker | None = None
        self.started = False
        self.prefix = ""  # a protocol round's metrics prefix, where its dir does not say it

    def start(self):
        """Builds, checks and starts the tracker (before the run trains).

        Raises:
            UserError: the tracker cannot be reached and ``tracker.required`` is true.
        """
        self.started = True
        tracker_cfg = self.cfg.get("tracker")
        if tracker_cfg is None:  # a config saved before trackers
            return
        tracker = build_tracker(tracker_cfg)
        if type(tracker) is Tracker:  # one that overrides nothing logs nothing: no tags to read
            return
        try:
            tracker.check()
        except Exception as e:
            if not isinstance(e, UserError):  # the plugin's own error, as a one-line refusal
                e = UserError(
                    f"tracker {tracker_cfg.name!r} cannot be reached: {type(e).__name__}: "
                    f"{_one_line(e)}"
                )
            if tracker.required:
                raise e from None
            print(f"warning: {_one_line(e)}; this run is not tracked (tracker.required=false)")
            return
        self.tracker = tracker
        self._call("start", self._tracked_run())

    def epoch_callback(self, run_dir, epochs_before: int):
        """A Keras callback that logs each epoch of a fit in ``run_dir`` (the run's, or a
        protocol round's inside it, whose metrics are prefixed by its path: ``rounds/2/loss``)."""
        import keras

        prefix = self.prefix
        if Path(run_dir) != self.run_dir:
            prefix = f"{_relative(run_dir, self.run_dir)}/"

        def log(epoch, logs):
            step = epochs_before + epoch + 1
            metrics = {f"{prefix}{k}": float(v) for k, v in (logs or {}).items()}
            self._call("log_epoch", step, metrics)

        return keras.callbacks.LambdaCallback(on_epoch_end=log)

    def log_final(self, scores: dict[str, float], files: list[Path], tags: dict | None = None):
        """Logs the run's final scores (``final_scores``), files (``kept_files``) and the tags
        known only now (``record_tags``)."""
        if tags:
            self._call("log_tags", tags)
        self._call("log_final", scores, files)

    def end(self, error: BaseException | None = None):
        """Ends the tracker's run: finished, failed, or killed (a signal stopped it)."""
        if error is None:
            status = FINISHED
        else:
            status = KILLED if isinstance(error, KeyboardInterrupt) else FAILED
        self._call("end", status)
        self.tracker = None

    @property
    def active(self) -> bool:
        return self.tracker is not None

    def round(self, name: str) -> "Tracking":
        """This tracking for a protocol round trained in the run's own dir (a search trial's):
        its epochs logged as ``rounds/<name>/loss``..."""
        view = copy.copy(self)
        view.prefix = f"rounds/{name}/"
        return view

    def _tracked_run(self) -> TrackedRun:
        return TrackedRun(
            run_dir=self.run_dir,
            name=run_name(self.run_dir),
            params=flat_params(self.cfg),
            tags={**config_tags(self.cfg), **self.tags},
            parent_dir=self.parent_dir,
            parent_name=run_name(self.parent_dir) if self.parent_dir else None,
            kind=self.kind,
        )

    def _call(self, method: str, *args):
        """Calls the tracker; a failure stops its logging for the rest of the run, whose record
        it then tries to end as failed (a store that went away may not take even that)."""
        if self.tracker is None:
            return
        try:
            getattr(self.tracker, method)(*args)
        except Exception as e:  # the store went away, or the plugin misbehaved
            print(
                f"warning: tracker {self.cfg.tracker.name!r} failed in {method} and stops "
                f"logging this run: {type(e).__name__}: {_one_line(e)}",
                file=sys.stderr,
            )
            tracker, self.tracker = self.tracker, None
            if method != "end":
                with contextlib.suppress(Exception):
                    tracker.end(FAILED)


@contextlib.contextmanager
def tracked(tracking: "Tracking"):
    """Starts the tracking, and ends it as the block ends: finished, or as its error says. Where
    it started already (a search's retraining of its best config, inside the search's own
    tracking), the block leaves it to its owner."""
    if tracking.started:
        yield tracking
        return
    tracking.start()
    try:
        yield tracking
    except BaseException as e:
        tracking.end(e)
        raise
    tracking.end()


def build_tracker(tracker_cfg) -> Tracker:
    """The tracker ``tracker_cfg`` names, built by its plugin.

    Raises:
        UnknownPartError: no such tracker.
        PluginError: its builder returned no ``Tracker``.
    """
    part = registry.trackers.get(tracker_cfg.name)
    tracker = part.build(tracker_cfg)
    if not isinstance(tracker, Tracker):
        raise part.misbehaved(f"returned {type(tracker).__name__}, not a Tracker")
    return tracker


def end_sweep(config, sweep_dir: Path):
    """Ends a sweep's parent run, where its jobs' tracker made one, keeping the sweep dir's files
    (its summary and plot): at the sweep's end."""
    tracker_cfg = OmegaConf.select(config, "tracker")
    sweep_dir = Path(sweep_dir)
    if tracker_cfg is None or not sweep_dir.is_dir():
        return
    try:
        build_tracker(tracker_cfg).end_parent(sweep_dir, kept_files(sweep_dir))
    except Exception as e:  # the sweep's jobs are done and kept: a warning, as _call's
        name = tracker_cfg.name
        print(f"warning: tracker {name!r} could not end the sweep's run: {_one_line(e)}")


def run_name(run_dir: Path) -> str:
    """A run's name for listings: its dir's path under ``outputs/``, else its path."""
    parts = Path(run_dir).absolute().parts
    if OUTPUTS in parts:
        return "/".join(parts[len(parts) - parts[::-1].index(OUTPUTS) :])
    return str(run_dir)


def flat_params(cfg) -> dict:
    """The config as ``{dotted key: value}``: numbers, strings and booleans as they are, nulls
    as ``null``, lists as JSON."""
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict) and value:
                walk(value, f"{prefix}{key}.")
            elif isinstance(value, (bool, int, float, str)):
                flat[f"{prefix}{key}"] = value
            else:
                flat[f"{prefix}{key}"] = json.dumps(value)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def config_tags(cfg) -> dict:
    """What the run is, as tags: its experiment, dataset, backbone, head, backend, git commit."""
    import keras

    tags = {
        "dataset": cfg.dataset.name,
        "backbone": cfg.backbone.name,
        "head": cfg.head.name,
        "backend": keras.config.backend(),
    }
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        experiment = HydraConfig.get().runtime.choices.get("experiment")
        if experiment:
            tags["experiment"] = experiment
    commit = git_commit()
    if commit:
        tags["git_commit"] = commit
    return tags


def git_commit() -> str | None:
    """The commit checked out where the run started, if that is a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def final_scores(record: dict) -> dict[str, float]:
    """A record's final scores: ``final_val_*`` (the final model's, which a restored best
    epoch makes differ from the last epoch's ``val_*``), ``test_*`` where evaluated on test,
    ``objective`` (``objective_std`` under a protocol of several models) and ``epochs``."""
    scores = {f"final_val_{k}": v for k, v in record["validation"].items()}
    if record["evaluated_on"] == "test":
        scores.update({f"test_{k}": v for k, v in record["test"].items()})
    objective = record["objective"]
    scores["objective"] = objective["value"]
    if "std" in objective:
        scores["objective_std"] = objective["std"]
    scores["epochs"] = record["epochs"]
    return {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}


def record_tags(record: dict) -> dict[str, str]:
    """What a finished run's record adds to its tags: its task."""
    return {"task": record["data"]["task"]}


def kept_files(run_dir: Path) -> list[Path]:
    """The run dir's files a tracker keeps: its top-level files (model, plots, record, history,
    summary, card) and Hydra's config; not the hidden ones (locks, a tracker's own record) nor
    the folders of checkpoints, backups, TensorBoard logs or protocol rounds."""
    files = [p for p in sorted(run_dir.iterdir()) if p.is_file() and not p.name.startswith(".")]
    hydra = run_dir / ".hydra"
    return files + (sorted(hydra.glob("*.yaml")) if hydra.is_dir() else [])


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _relative(path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name
