"""``tracker=mlflow``: each run an MLflow run, logged through MLflow's client API (no TensorFlow
needed: it works on every Keras backend).

A run logs its composed config as params, each epoch's logs as metrics (``step``: the run's epoch,
over all its stages), its final scores, its run dir's files as artifacts (model.keras, plots,
metrics.json, history.csv, the card, Hydra's config) and tags (``dataset``, ``backend``,
``git_commit``...). A sweep's jobs are runs under one parent run of the sweep, a search's trials
runs under the search's. The MLflow run's id is kept in the run dir (``.mlflow_run.json``), so a
stopped run that runs again in its dir continues its MLflow run.
"""

import contextlib
import fcntl
import json
import logging
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from framework.api import Form, TrackedRun, Tracker, UserError, hookimpl, setting

# The MLflow run a directory is logged as (a run's, a sweep's, a search's).
RECORD = ".mlflow_run.json"
# MLflow's own limits on one log_batch call, and on a param's value (a longer one is refused).
BATCH_PARAMS, BATCH_METRICS, PARAM_LENGTH = 100, 1000, 6000

TRACKING_URI = Form(
    "tracking URI",
    r"(sqlite:///|https?://|file:).+",
    "an MLflow tracking URI: sqlite:///PATH, http(s)://HOST[:PORT] or file:PATH",
)


@dataclass
class MlflowConfig:
    # Where runs are logged: a SQLite file (MLflow's default store; relative to where the run
    # starts) or a tracking server (http://127.0.0.1:5000).
    uri: str = setting("sqlite:///outputs/mlflow.db", form=TRACKING_URI)
    # Where a SQLite (or file) store keeps the runs' files; a server keeps its own.
    artifacts: str = "outputs/mlartifacts"
    # The MLflow experiment the runs go to; null: the experiment= the run composes, else
    # "framework".
    experiment: str | None = None
    # Log model.keras too (the other files are small; a transfer-learning model is not).
    log_model: bool = True
    # An unreachable store fails the run before it trains; false: the run trains untracked, with
    # a one-line warning.
    required: bool = True


class MlflowTracker(Tracker):
    def __init__(self, cfg):
        self.cfg, self.required = cfg, cfg.required
        self.client, self.experiment_id, self.run_id = None, None, None

    def check(self):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UserError(
                "tracker=mlflow needs MLflow, which is not installed: pip install "
                "'keras-framework[tracking]'"
            ) from None

        # A new SQLite store's tables: some 60 lines of migrations at INFO, once; not the run's.
        for name in ("alembic", "mlflow.store.db.utils"):
            logging.getLogger(name).setLevel(logging.WARNING)
        uri = self.cfg.uri
        if uri.startswith(("http://", "https://")):
            _check_server(uri)
        try:
            with _store_lock(uri):  # jobs starting side by side create a new store once
                self.client = MlflowClient(tracking_uri=uri)
                self.client.search_experiments(max_results=1)  # the store answers
        except Exception as e:
            raise UserError(
                f"tracker.uri={uri!r}: MLflow could not open the store "
                f"({type(e).__name__}: {_first_line(e)}); fix tracker.uri, or set "
                "tracker.required=false to train untracked"
            ) from e

    def start(self, run: TrackedRun):
        self.experiment_id = self._experiment(run.tags.get("experiment"))
        parent = None
        if run.parent_dir is not None:
            parent, created = self._dir_run(
                run.parent_dir, run.parent_name, {"kind": "parent"}, None, shared=True
            )
            if not created and self.client.get_run(parent).info.status != "RUNNING":
                self.client.update_run(parent, status="RUNNING")  # a resumed sweep's
        tags = {"kind": run.kind, **run.tags}
        if "git_commit" in tags:  # where MLflow's UI shows it
            tags["mlflow.source.git.commit"] = tags["git_commit"]
        self.run_id, created = self._dir_run(run.run_dir, run.name, tags, parent, run.params)
        if not created:
            self.client.update_run(self.run_id, status="RUNNING")
            print(f"MLflow: continuing run {self.run_id} ({self.cfg.uri})")

    def log_epoch(self, step, metrics):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()]
        )

    def log_final(self, scores, files):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in scores.items()]
        for start in range(0, len(metrics), BATCH_METRICS):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + BATCH_METRICS])
        self._log_files(self.run_id, files)

    def log_tags(self, tags):
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def end(self, status):
        self.client.set_terminated(self.run_id, status)

    def end_parent(self, parent_dir, files):
        found = _read_record(parent_dir, self.cfg.uri)
        if found is None:
            return
        self.check()
        self._log_files(found, files)
        self.client.set_terminated(found, "FINISHED")

    def _experiment(self, composed: str | None) -> str:
        """The id of the MLflow experiment: ``tracker.experiment``, else the ``experiment=``
        composed (``composed``), else ``framework``; made where the store has none."""
        from mlflow.exceptions import MlflowException

        name = self.cfg.experiment or composed or "framework"
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if not self.cfg.uri.startswith(("http://", "https://")):
            location = Path(self.cfg.artifacts).absolute().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another job created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def _dir_run(
        self, directory, name, tags, parent, params=None, shared=False
    ) -> tuple[str, bool]:
        """The MLflow run ``directory`` is logged as: the one its record names (continued), or a
        new one (recorded there, with ``params``). Returns ``(run id, whether it is new)``.
        ``shared``: a parent's directory, where its runs side by side make it once."""
        from mlflow.entities import Param

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        lock = _locked(directory / f"{RECORD}.lock") if shared else contextlib.nullcontext()
        with lock:
            found = _read_record(directory, self.cfg.uri)
            if found is not None and self._exists(found):
                return found, False
            if parent is not None:
                tags = {**tags, "mlflow.parentRunId": parent}
            run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
            run_id = run.info.run_id
            # Its params before its record: a dir's record names a run that has them all.
            items = [Param(k, str(v)[:PARAM_LENGTH]) for k, v in (params or {}).items()]
            for start in range(0, len(items), BATCH_PARAMS):
                self.client.log_batch(run_id, params=items[start : start + BATCH_PARAMS])
            record = directory / RECORD
            tmp = record.with_suffix(".tmp")
            tmp.write_text(json.dumps({"run_id": run_id, "uri": self.cfg.uri}) + "\n")
            os.replace(tmp, record)
        return run_id, True

    def _exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException:
            return False
        return True

    def _log_files(self, run_id, files):
        for path in files:
            if path.suffix == ".keras" and not self.cfg.log_model:
                continue
            folder = path.parent.name.lstrip(".") if path.parent.name == ".hydra" else None
            self.client.log_artifact(run_id, str(path), folder)


def _check_server(uri: str):
    """Asks a tracking server's ``/health`` (5 s), so that a wrong address fails at once, not
    after MLflow's retries."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as response:
            response.read()
    except Exception as e:  # refused, timed out, a bad port (http.client.InvalidURL)...
        reason = getattr(e, "reason", e)
        raise UserError(
            f"tracker.uri={uri!r}: no MLflow server answers there ({reason}); start one (mlflow "
            "server --host 127.0.0.1 --port 5000), fix tracker.uri, or set "
            "tracker.required=false to train untracked"
        ) from None


@contextlib.contextmanager
def _store_lock(uri: str):
    """A SQLite store's lock file beside it, held while the store is opened (MLflow creates
    and migrates its tables on first use); nothing for a server."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)  # as MLflow would not
    with _locked(database.with_name(database.name + ".lock")):
        yield


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _read_record(directory: Path, uri: str) -> str | None:
    """The run id a directory's record names, where it was logged to this same store."""
    try:
        record = json.loads((Path(directory) / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record.get("run_id") if record.get("uri") == uri else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def build_mlflow(cfg):
    """Log each run to MLflow (SQLite under outputs/, or a tracking server)."""
    return MlflowTracker(cfg)


@hookimpl
def register_trackers(register):
    register("mlflow", build_mlflow, MlflowConfig())
