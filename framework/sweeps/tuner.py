"""A hyperparameter search in one run, with keras-tuner's oracles: ``tuner=random|bayesian|
hyperband``.

Each trial is a run of the same phases as ``train`` (``load_data`` -> ``build_model`` ->
``plan_stages`` -> ``fit_stage``) on the config with the trial's settings, scored on the
validation split only. The search lives in ``<run dir>/tuner`` (keras-tuner's own files, so
running the same command on the same run dir resumes it); at its end the run dir gets
``trials.csv``, ``best_overrides.yaml``, and the best trial's config retrained on the full
schedule by ``train``, with the usual report files. Each trial's dir keeps its
``history.csv``.
"""

import copy
import json
import math
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framework.runtime.backend import import_backend

import_backend()

import keras  # noqa: E402
import keras_tuner  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from framework.config import search_space  # noqa: E402
from framework.config.preflight import check_settings  # noqa: E402
from framework.config.schema import TUNER_ALGORITHMS  # noqa: E402
from framework.errors import UserError, raise_if_stopped  # noqa: E402
from framework.parts.objective import (  # noqa: E402
    Objective,
    best_first,
    check_objective,
    objective_over,
    objective_value,
)
from framework.parts.ranges import as_typed, seconds  # noqa: E402
from framework.run.checkpoint import SEARCH_DIR, SEARCH_PROJECT, record_search  # noqa: E402
from framework.run.compiled_heads import CompiledHeads  # noqa: E402
from framework.run.model import build_head, build_model  # noqa: E402
from framework.run.pruning import MedianRule  # noqa: E402
from framework.run.report import write_history  # noqa: E402
from framework.run.rundir import (  # noqa: E402
    HISTORY,
    finished_run_check,
    running_in,
    shown,
    write_atomic,
    write_csv_atomic,
)
from framework.run.tracking import Tracking, tracked  # noqa: E402
from framework.run.train import (  # noqa: E402
    Run,
    SharedFeatures,
    clear_session,
    fit_round,
    fit_stage,
    load_protocol,
    load_task_data,
    one_hot_targets,
    plan_stages,
    round_data,
    train,
)
from framework.runtime.execution import distributed, set_precision  # noqa: E402

# Beside keras-tuner's own trial.json: the epochs a trial was given and trained, and, with a
# pruner, its objective epoch by epoch and the epoch it was pruned after (or null).
TRIAL_RECORD = "run.json"
# trials.csv's status of a trial its pruner stopped (keras-tuner's own: COMPLETED).
PRUNED = "PRUNED"


class BudgetSpent(Exception):
    """tuner.time_budget is spent: no trial starts."""


@dataclass
class Body:
    """What a full build gave before its head, where all its stages trained the head on the
    features under ``feature_key`` (see ``Assembled``)."""

    feature_key: str
    pretrained: bool
    random_state: Any


class Search(keras_tuner.Tuner):
    """keras-tuner's Tuner with our trial: the run's phases on the trial's config."""

    def __init__(self, cfg, space: dict, oracle, directory: Path, data=None, run_dir=None):
        super().__init__(
            oracle=oracle, directory=str(directory), project_name=SEARCH_PROJECT, overwrite=False
        )
        self.cfg, self.space = cfg, space
        self.run_dir = run_dir  # the search's: each trial is tracked as a run under it
        budget = cfg.tuner.time_budget
        self.deadline = None if budget is None else time.monotonic() + seconds(budget)
        # Reused from trial to trial: the data (``data``: the run config's, loaded already), and
        # the frozen backbone's features (extracted once, kept in memory; trainer.feature_cache
        # also keeps them on disk for later runs), what a full build gave before the head, and
        # the compiled heads.
        self._data = {} if data is None else {_data_key(cfg): data}
        self._features, self._bodies = {}, {}
        self._compiled_heads = CompiledHeads()

    def pre_create_trial(self):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise BudgetSpent()

    def run_trial(self, trial, *args, **kwargs):
        raise_if_stopped()  # a signal lost as the last trial's models were freed
        settings = search_space.define(trial.hyperparameters, self.space)
        print(
            f"Trial {trial.trial_id}: "
            + " ".join(search_space.as_override(k, v) for k, v in settings.items()),
            flush=True,
        )
        # Hyperband gives each trial its budget of epochs.
        epochs = trial.hyperparameters.values.get("tuner/epochs") or self.cfg.tuner.epochs
        cfg = trial_config(self.cfg, settings, epochs)
        pruner = self._pruner()
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        tracking = Tracking(
            cfg, trial_dir, self.run_dir, kind="trial", tags={"trial": str(trial.trial_id)}
        )
        try:
            check_settings(cfg)  # the settings a trial chose, together: once per trial
            with tracked(tracking):
                value, trained = self._run(cfg, trial_dir, pruner, tracking)
                curve = [trial_dir / HISTORY] if (trial_dir / HISTORY).is_file() else []
                tracking.log_final({"objective": value}, curve)
        except UserError as e:
            # Bad input stops the search (keras-tuner would retry, then fail trial after trial).
            raise keras_tuner.errors.FatalError(str(e)) from e
        except Exception as e:
            print(f"  trial {trial.trial_id} failed: {type(e).__name__}: {e}", flush=True)
            raise
        ran = {"epochs": epochs, "trained_epochs": trained}
        if pruner:
            ran.update(curve=pruner.curve, pruned=pruner.epoch)
        write_atomic(trial_dir / TRIAL_RECORD, json.dumps(ran))
        return {self.oracle.objective.name: value}

    def _pruner(self) -> MedianRule | None:
        """tuner.pruner=median's rule for the next trial, over the finished trials' curves
        (those pruned left out, as Optuna's MedianPruner does); None without one."""
        tuner_cfg = self.cfg.tuner
        if tuner_cfg.pruner != "median":
            return None
        curves = []
        for trial in self.oracle.trials.values():
            ran = _trial_record(self, trial)
            if trial.status == "COMPLETED" and ran.get("curve") and not ran.get("pruned"):
                curves.append(ran["curve"])
        return MedianRule(
            curves,
            self.oracle.objective.direction,
            tuner_cfg.pruner_startup_trials,
            tuner_cfg.pruner_warmup_epochs,
        )

    def _run(self, cfg, trial_dir: Path, pruner, tracking) -> tuple[float, int]:
        """Trains a trial's config; returns its objective and the epochs it trained."""
        # The models of earlier trials: Python's collector frees them as it goes (a collection
        # each trial, Keras's default, costs about as much as a head's fit on cached features).
        clear_session(free_memory=False)
        keras.utils.set_random_seed(cfg.seed)
        data_key = _data_key(cfg)
        if data_key not in self._data:
            self._data[data_key] = load_task_data(cfg)
        task, data = self._data[data_key]
        set_precision(cfg.trainer.precision)
        protocol = load_protocol(cfg)
        if not protocol.single:
            return self._run_rounds(cfg, trial_dir, task, data, protocol, tracking)
        # What build_model builds but for the head: a trial whose stages all train the head on
        # features in memory builds the head alone, from where an earlier trial's build left it.
        body_key = OmegaConf.to_yaml(
            OmegaConf.create(
                {"data": data_key, **{k: cfg[k] for k in ("backbone", "regularizer", "trainer")}}
            ),
            resolve=True,
        )
        with distributed(cfg.trainer.distribution) as distribution:
            body = self._bodies.get(body_key)
            features = body and self._features.get(body.feature_key)
            one_hot = one_hot_targets(data.train)
            if features and not distribution:
                built = build_head(
                    cfg, data, features["train"], one_hot, task, body.pretrained, body.random_state
                )
            else:
                built = build_model(cfg, data, one_hot, task)
            run = Run(
                cfg,
                trial_dir,
                data,
                task,
                built,
                cfg.get("dataset", {}).get("batch_size") or cfg.trainer.batch_size,
                score_test=False,
                distribution=distribution,
                compiled_heads=None if distribution else self._compiled_heads,
                pruner=pruner,
                tracking=tracking,
            )
            plans = plan_stages(cfg, data, run.built)
            feature_key = next((p.feature_key for p in plans if p.on_cached_features), None)
            run.features = self._features.get(feature_key)
            for plan in plans:
                fit_stage(run, plan, len(plans))
                if run.pruned:
                    break
        if feature_key:
            self._features[feature_key] = run.features
            if all(plan.on_cached_features for plan in plans) and built.model is not None:
                self._bodies[body_key] = Body(feature_key, built.pretrained, built.random_state)
        write_history(trial_dir, run.history)  # its curve, for framework.compare
        value = objective_value(
            self.oracle.objective.name, run.stage_metrics[-1]["validation"], run.history
        )
        return value, len(run.history)

    def _run_rounds(self, cfg, trial_dir: Path, task, data, protocol, tracking):
        """Trains a trial's config once per round of its protocol; returns the mean of the
        rounds' objectives (``objective_over``) and the mean of their epochs."""
        shared = SharedFeatures(cfg, data, task)
        values, epochs = [], []
        for number, round_ in enumerate(protocol.rounds(data, cfg.seed), start=1):
            keras.backend.clear_session()
            keras.utils.set_random_seed(round_.seed)
            round_cfg = copy.deepcopy(cfg)
            round_cfg.seed = round_.seed
            with distributed(cfg.trainer.distribution) as distribution:
                run = fit_round(
                    round_cfg,
                    trial_dir,
                    round_data(data, round_),
                    task,
                    cfg.get("dataset", {}).get("batch_size") or cfg.trainer.batch_size,
                    score_test=False,
                    distribution=distribution,
                    shared=shared,
                    rows=round_.validation,
                    tracking=tracking.round(str(number)),
                )
            values.append(
                objective_value(
                    self.oracle.objective.name, run.stage_metrics[-1]["validation"], run.history
                )
            )
            epochs.append(len(run.history))
        return objective_over(values)[0], round(sum(epochs) / len(epochs))


def _data_key(cfg) -> str:
    """What ``load_task_data`` reads of a config."""
    return OmegaConf.to_yaml(
        OmegaConf.create(
            {
                "dataset": cfg.dataset,
                "backbone": cfg.backbone.name,
                "seed": cfg.seed,
                "input_size": cfg.backbone.get("input_size"),
                "batch": cfg.trainer.batch_size,
                "regularizer": list(cfg.regularizer),
                "task": cfg.task,
            }
        ),
        resolve=True,
    )


def tune(cfg, run_dir, checkpoint: bool = False, tracking: Tracking | None = None) -> dict:
    """Searches the config's ``tuner.space``, then retrains the best trial's config.

    Args:
        cfg: a composed run config with a ``tuner``, its settings checked (as ``train``'s).
        run_dir: the run's directory; an unfinished search there is resumed.
        checkpoint: keep a checkpoint while the best config is retrained (``train``'s).
        tracking: the search's tracking (``train``'s), each trial tracked as a run under it;
            the retrained best config is logged as the search's own run.

    Returns:
        The metrics of the retrained best model (``train``'s); empty in a worker of a
        distributed search.

    Raises:
        UserError: a bad tuner config or trial setting, or no trial that finished.
    """
    run_dir = Path(run_dir)
    tracking = tracking or Tracking(cfg, run_dir, kind="search")
    if is_worker():  # the chief's run dir: the chief holds it, and marks it if it fails
        finished_run_check(run_dir)
        return _tune(cfg, run_dir, checkpoint, tracking)
    with running_in(run_dir), tracked(tracking):  # refused if it holds a finished run
        return _tune(cfg, run_dir, checkpoint, tracking)


def _tune(cfg, run_dir: Path, checkpoint: bool, tracking: Tracking) -> dict:
    tuner_cfg = cfg.tuner
    loaded = load_task_data(cfg)  # the trials' data, where their settings keep it
    task = loaded[0]
    name = tuner_cfg.objective or cfg.trainer.objective or task.default_objective
    key = "tuner.objective" if tuner_cfg.objective else "trainer.objective"
    check_objective(name, task.objectives, key)
    objective = task.objective(name)
    space = search_space.check_space(tuner_cfg.space, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    search_dir = run_dir / SEARCH_DIR
    record_search(search_dir, cfg)
    oracle = _oracle(tuner_cfg, objective, cfg, space)
    search = Search(cfg, space, oracle, search_dir, loaded, run_dir)
    if is_worker():  # its trials come from the chief's oracle, which reports and retrains
        _search(search, cfg)
        return {}
    done = [t for t in search.oracle.trials.values() if t.status == "COMPLETED"]
    if done:
        print(f"Resuming: {len(done)} trial(s) finished before")
    try:
        _search(search, cfg)
    finally:  # also when trial after trial failed: the table says how
        trials = _trial_rows(search, space, objective)
        if trials:
            _write_trials(run_dir, trials, list(space), name)
    best = next((t for t in trials if t["status"] == "COMPLETED"), None)
    if best is None:
        raise UserError(f"no trial of the search finished; see {shown(run_dir / 'trials.csv')}")
    print(_format_trials(trials, list(space), name))
    overrides = _best_overrides(cfg, best)
    _write_best(run_dir, best, name, overrides)
    print(
        f"Best:      trial {best['trial']}, {name} {best['value']:.4f}; run it again "
        f"with:\n  python -m framework {shlex.join(overrides)}"
    )
    raise_if_stopped()  # a signal lost as the last trial's models were freed
    print("Retraining the best trial's config on the full schedule")
    best_cfg = trial_config(cfg, best["settings"])
    # On the trials' data and compiled heads: the run the best's overrides give, without
    # loading the data or tracing its head's steps again.
    return train(
        best_cfg,
        run_dir,
        checkpoint,
        loaded=search._data.get(_data_key(best_cfg)),
        compiled_heads=search._compiled_heads,
        tracking=tracking,
    )


def _search(search: Search, cfg):
    """Runs keras-tuner's search; a trial's bad input, or too many failed trials, is a
    UserError."""
    try:
        search.search(verbose=cfg.trainer.verbose > 0)
    except BudgetSpent:
        print(
            f"Stopped:   the time budget (tuner.time_budget={cfg.tuner.time_budget}) is spent; "
            "no more trials start",
            flush=True,
        )
    except keras_tuner.errors.FatalError as e:
        if isinstance(e.__cause__, UserError):
            raise e.__cause__ from None
        raise
    except RuntimeError as e:  # keras-tuner's max_consecutive_failed_trials
        raise UserError(f"the search stopped: {str(e).splitlines()[0]}") from e


def is_worker() -> bool:
    """Whether this process is a worker of a distributed keras-tuner search (its
    ``KERASTUNER_*`` environment variables), not its chief."""
    return (
        "KERASTUNER_ORACLE_IP" in os.environ
        and os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"
    )


def trial_config(cfg, settings: dict, epochs: int | None = None):
    """The run config with a trial's settings, and its epochs where a trial has its own."""
    trial = copy.deepcopy(cfg)
    for key, value in settings.items():
        OmegaConf.update(trial, key, value, merge=False)
    if epochs is not None:
        trial.trainer.epochs = epochs
    return trial


def _trial_rows(search: Search, space: dict, objective: Objective) -> list[dict]:
    """One row per trial, best first (by the objective's direction), then unfinished ones; from
    the oracle (the chief's, in a distributed search)."""
    rows = []
    for trial in search.oracle.trials.values():
        ran = _trial_record(search, trial)
        score = trial.score if trial.status == "COMPLETED" and trial.score is not None else None
        rows.append(
            {
                "trial": trial.trial_id,
                "status": PRUNED
                if trial.status == "COMPLETED" and ran.get("pruned")
                else trial.status,
                "settings": search_space.define(trial.hyperparameters.copy(), space),
                "value": math.nan if score is None else float(score),
                "epochs": ran.get("epochs"),
                "trained_epochs": ran.get("trained_epochs", ""),
            }
        )
    # A pruned trial's value is its stopped model's: ranked after those that trained to the end.
    return best_first(
        rows,
        lambda r: objective,
        lambda r: r["value"] if r["status"] == "COMPLETED" else None,
        lambda r: r["trial"],
    )


def _trial_record(search: Search, trial) -> dict:
    """What ``TRIAL_RECORD`` says of a trial (empty before it ended)."""
    record = Path(search.get_trial_dir(trial.trial_id)) / TRIAL_RECORD
    return json.loads(record.read_text()) if record.is_file() else {}


def _write_trials(run_dir: Path, trials: list[dict], keys: list[str], objective: str):
    """Writes trials.csv: one row per trial, best first."""
    write_csv_atomic(
        run_dir / "trials.csv",
        ["trial", "status", *keys, objective, "epochs"],
        (
            [
                t["trial"],
                t["status"],
                *(_shown(t["settings"], k, "") for k in keys),
                t["value"],
                t["trained_epochs"],
            ]
            for t in trials
        ),
    )


def _format_trials(trials: list[dict], keys: list[str], objective: str) -> str:
    rows = [["trial", objective, "epochs", *keys]]
    for t in trials:
        finished = t["status"] == "COMPLETED"
        rows.append(
            [
                t["trial"],
                f"{t['value']:.4f}" if finished else t["status"].lower(),
                str(t["trained_epochs"]),
                *(_shown(t["settings"], k, "-") for k in keys),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return f"Search:    {len(trials)} trials, best {objective} first\n" + "\n".join(lines)


def _best_overrides(cfg, best: dict) -> list[str]:
    """The command-line overrides that run the best trial again, as it ran, without the tuner
    (with its own epochs where ``tuner.epochs`` or Hyperband gave it some)."""
    from hydra.core.hydra_config import HydraConfig

    task = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    keep = [
        o
        for o in task
        if not o.lstrip("+~").startswith("tuner")
        and o.split("=")[0].lstrip("+~") not in best["settings"]
    ]
    overrides = [
        *keep,
        "~tuner",
        *(search_space.as_override(k, v) for k, v in best["settings"].items()),
    ]
    if best["epochs"] is not None:
        overrides.append(f"trainer.epochs={best['epochs']}")
    return overrides


def _write_best(run_dir: Path, best: dict, objective: str, overrides: list[str]):
    """Writes best_overrides.yaml: the best trial, and the command that runs it again."""
    text = OmegaConf.to_yaml(
        OmegaConf.create(
            {
                "trial": best["trial"],
                "objective": {"name": objective, "value": best["value"]},
                "epochs": best["trained_epochs"],
                "settings": best["settings"],
                "overrides": overrides,
                "command": f"python -m framework {shlex.join(overrides)}",
            }
        )
    )
    write_atomic(
        run_dir / "best_overrides.yaml",
        "# The best trial of the search; `command` runs it again without the tuner.\n" + text,
    )


def _oracle(tuner_cfg, objective: Objective, cfg, space: dict):
    hyperparameters = keras_tuner.HyperParameters()
    try:
        search_space.define(hyperparameters, space)  # the whole space, known before any trial
    except (TypeError, ValueError) as e:  # keras-tuner's word on a range (mixed types, low>high)
        raise UserError(f"tuner.space: {str(e).splitlines()[0]}") from e
    common = {
        "objective": keras_tuner.Objective(objective.name, objective.direction),
        "seed": cfg.seed,
        "hyperparameters": hyperparameters,
    }
    if tuner_cfg.algorithm == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=tuner_cfg.max_trials, **common)
    if tuner_cfg.algorithm == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(
            max_trials=tuner_cfg.max_trials, **common
        )
    if tuner_cfg.algorithm == "hyperband":
        return keras_tuner.oracles.HyperbandOracle(
            max_epochs=tuner_cfg.epochs or cfg.trainer.epochs,
            factor=tuner_cfg.factor,
            hyperband_iterations=tuner_cfg.hyperband_iterations,
            **common,
        )
    raise UserError(
        f"unknown tuner.algorithm {tuner_cfg.algorithm!r}; accepted: {', '.join(TUNER_ALGORITHMS)}"
    )


def _shown(settings: dict, key: str, missing: str) -> str:
    """A trial's value of a setting as the trial table shows it (as an override writes it)."""
    return as_typed(settings[key]) if key in settings else missing
