"""A hyperparameter search in one run, with keras-tuner's oracles: ``tuner=random|bayesian|
hyperband``.

Each trial is a run of the same phases as ``train`` (``load_data`` -> ``build_model`` ->
``plan_stages`` -> ``fit_stage``) on the config with the trial's settings, scored on the
validation split only. The search lives in ``<run dir>/tuner`` (keras-tuner's own files, so
running the same command on the same run dir resumes it); at its end the run dir gets
``trials.csv``, ``best_overrides.yaml``, and the best trial's config retrained on the full
schedule by ``train``, with the usual report files.
"""

import json
import math
import os
import shlex
from pathlib import Path

from framework.backend import import_tensorflow

import_tensorflow()

import keras  # noqa: E402
import keras_tuner  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from framework import search_space  # noqa: E402
from framework.config import TUNER_ALGORITHMS  # noqa: E402
from framework.errors import UserError  # noqa: E402
from framework.model import build_model  # noqa: E402
from framework.objective import check_objective, direction, objective_value  # noqa: E402
from framework.rundir import finished_run_check, shown, write_atomic, write_csv_atomic  # noqa
from framework.train import (  # noqa: E402
    Run,
    check_run,
    fit_stage,
    load_data,
    one_hot_targets,
    plan_stages,
    train,
)

TUNER_DIR = "tuner"
PROJECT = "search"
# Beside keras-tuner's own trial.json: what the trial ran and scored, in our terms.
TRIAL_RECORD = "run.json"


class Search(keras_tuner.Tuner):
    """keras-tuner's Tuner with our trial: the run's phases on the trial's config."""

    def __init__(self, cfg, space: dict, oracle, directory: Path):
        super().__init__(oracle=oracle, directory=str(directory), project_name=PROJECT,
                         overwrite=False)
        self.cfg, self.space = cfg, space
        # Reused from trial to trial: the data, and the frozen backbone's features (extracted
        # once, kept in memory; trainer.feature_cache also keeps them on disk for later runs).
        self._data, self._features = {}, {}

    def run_trial(self, trial, *args, **kwargs):
        settings = search_space.define(trial.hyperparameters, self.space)
        print(f"Trial {trial.trial_id}: "
              + " ".join(search_space.as_override(k, v) for k, v in settings.items()), flush=True)
        # Hyperband gives each trial its budget of epochs.
        epochs = trial.hyperparameters.values.get("tuner/epochs") or self.cfg.tuner.epochs
        cfg = trial_config(self.cfg, settings, epochs)
        keras.backend.clear_session()  # the models of earlier trials: free them
        keras.utils.set_random_seed(cfg.seed)
        data_key = (OmegaConf.to_yaml(cfg.dataset, resolve=True), cfg.trainer.batch_size)
        if data_key not in self._data:
            self._data[data_key] = load_data(cfg)
        data = self._data[data_key]
        built = build_model(cfg, data, one_hot_targets(data.train))
        run = Run(cfg, Path(self.get_trial_dir(trial.trial_id)), data, built,
                  cfg.get("dataset", {}).get("batch_size") or cfg.trainer.batch_size,
                  score_test=False)
        plans = plan_stages(cfg, data, run.built)
        feature_key = next((p.feature_key for p in plans if p.on_cached_features), None)
        run.features = self._features.get(feature_key)
        for plan in plans:
            fit_stage(run, plan, len(plans))
        if feature_key:
            self._features[feature_key] = run.features
        value = objective_value(self.oracle.objective.name, run.stage_metrics[-1]["validation"],
                                run.history)
        write_atomic(run.run_dir / TRIAL_RECORD, json.dumps(
            {"settings": settings, "epochs": len(run.history), "value": value}))
        return {self.oracle.objective.name: value}


def tune(cfg, run_dir) -> dict:
    """Searches the config's ``tuner.space``, then retrains the best trial's config.

    Args:
        cfg: a composed run config with a ``tuner``.
        run_dir: the run's directory; an unfinished search there is resumed.

    Returns:
        The metrics of the retrained best model (``train``'s).

    Raises:
        UserError: a bad tuner config, or no trial that finished.
    """
    run_dir = Path(run_dir)
    finished_run_check(run_dir)
    check_run(cfg)
    tuner_cfg = cfg.tuner
    objective = tuner_cfg.objective or cfg.trainer.objective
    check_objective(objective)
    space = search_space.check_space(tuner_cfg.space, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_same_search(run_dir / TUNER_DIR, cfg)
    search = Search(cfg, space, _oracle(tuner_cfg, objective, cfg, space), run_dir / TUNER_DIR)
    if is_worker():  # its trials come from the chief's oracle, which reports and retrains
        search.search(verbose=cfg.trainer.verbose > 0)
        return {}
    done = [t for t in search.oracle.trials.values() if t.status == "COMPLETED"]
    if done:
        print(f"Resuming: {len(done)} trial(s) finished before")
    search.search(verbose=cfg.trainer.verbose > 0)
    trials = trial_rows(search, objective)
    best = next((t for t in trials if t["status"] == "COMPLETED"), None)
    if best is None:
        raise UserError(f"no trial of the search finished; see {shown(run_dir / TUNER_DIR)}")
    write_trials(run_dir, trials, list(space), objective)
    print(format_trials(trials, list(space), objective))
    overrides = best_overrides(cfg, best)
    write_best(run_dir, best, objective, overrides)
    print(f"Best:      trial {best['trial']}, {objective} {best['value']:.4f}; run it again "
          f"with:\n  python -m framework {shlex.join(overrides)}")
    print("Retraining the best trial's config on the full schedule")
    return train(trial_config(cfg, best["settings"]), run_dir)


def is_worker() -> bool:
    """Whether this process is a worker of a distributed keras-tuner search (its
    ``KERASTUNER_*`` environment variables), not its chief."""
    return ("KERASTUNER_ORACLE_IP" in os.environ
            and os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief")


def trial_config(cfg, settings: dict, epochs: int | None = None):
    """The run config with a trial's settings, and its epochs where a trial has its own."""
    trial = OmegaConf.create(OmegaConf.to_container(cfg))
    for key, value in settings.items():
        OmegaConf.update(trial, key, value, merge=False)
    if epochs is not None:
        trial.trainer.epochs = epochs
    return trial


def trial_rows(search: Search, objective: str) -> list[dict]:
    """One row per trial, best first (by the objective's direction), then unfinished ones."""
    rows = []
    for trial in search.oracle.trials.values():
        record = Path(search.get_trial_dir(trial.trial_id)) / TRIAL_RECORD
        finished = json.loads(record.read_text()) if record.is_file() else {}
        rows.append({"trial": trial.trial_id, "status": trial.status,
                     "settings": finished.get("settings", {}),
                     "value": finished.get("value", math.nan),
                     "epochs": finished.get("epochs", "")})
    sign = 1.0 if direction(objective) == "min" else -1.0
    return sorted(rows, key=lambda r: (r["status"] != "COMPLETED" or r["value"] != r["value"],
                                       sign * r["value"] if r["value"] == r["value"] else 0.0,
                                       r["trial"]))


def write_trials(run_dir: Path, trials: list[dict], keys: list[str], objective: str):
    write_csv_atomic(run_dir / "trials.csv", ["trial", "status", *keys, objective, "epochs"],
                     ([t["trial"], t["status"], *(_cell(t["settings"].get(k, "")) for k in keys),
                       t["value"], t["epochs"]] for t in trials))


def format_trials(trials: list[dict], keys: list[str], objective: str) -> str:
    """The trials as aligned columns, best first."""
    rows = [["trial", objective, "epochs", *keys]]
    for t in trials:
        finished = t["status"] == "COMPLETED"
        rows.append([t["trial"], f"{t['value']:.4f}" if finished else t["status"].lower(),
                     str(t["epochs"]), *(_cell(t["settings"].get(k, "-")) for k in keys)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return f"Search:    {len(trials)} trials, best {objective} first\n" + "\n".join(lines)


def best_overrides(cfg, best: dict) -> list[str]:
    """The command-line overrides that run the best trial again, without the tuner."""
    from hydra.core.hydra_config import HydraConfig

    task = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    keep = [o for o in task if not o.lstrip("+~").startswith(("tuner", "hydra."))
            and o.split("=")[0].lstrip("+~") not in best["settings"]]
    overrides = [*keep, "~tuner", *(search_space.as_override(k, v)
                                    for k, v in best["settings"].items())]
    if isinstance(best["epochs"], int) and best["epochs"] != cfg.trainer.epochs:
        overrides.append(f"trainer.epochs={best['epochs']}")
    return overrides


def write_best(run_dir: Path, best: dict, objective: str, overrides: list[str]):
    text = OmegaConf.to_yaml(OmegaConf.create({
        "trial": best["trial"], "objective": {"name": objective, "value": best["value"]},
        "epochs": best["epochs"], "settings": best["settings"], "overrides": overrides,
        "command": f"python -m framework {shlex.join(overrides)}"}))
    write_atomic(run_dir / "best_overrides.yaml",
                 "# The best trial of the search; `command` runs it again without the tuner.\n"
                 + text)


def _oracle(tuner_cfg, objective: str, cfg, space: dict):
    hyperparameters = keras_tuner.HyperParameters()
    search_space.define(hyperparameters, space)  # the whole space, known before any trial
    common = {"objective": keras_tuner.Objective(objective, direction(objective)),
              "seed": cfg.seed, "hyperparameters": hyperparameters}
    if tuner_cfg.algorithm == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=tuner_cfg.max_trials, **common)
    if tuner_cfg.algorithm == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(max_trials=tuner_cfg.max_trials,
                                                              **common)
    if tuner_cfg.algorithm == "hyperband":
        return keras_tuner.oracles.HyperbandOracle(
            max_epochs=tuner_cfg.epochs or cfg.trainer.epochs, factor=tuner_cfg.factor,
            hyperband_iterations=tuner_cfg.hyperband_iterations, **common)
    raise UserError(f"unknown tuner.algorithm {tuner_cfg.algorithm!r}; accepted: "
                    f"{', '.join(TUNER_ALGORITHMS)}")


def _check_same_search(tuner_dir: Path, cfg):
    """Refuses to resume a search of another config in the same run dir."""
    saved = tuner_dir / "config.yaml"
    config = OmegaConf.to_yaml(cfg, resolve=True)
    if saved.is_file() and saved.read_text() != config:
        raise UserError(f"{tuner_dir} holds a search of another config; run this one in another "
                        "directory (hydra.run.dir=...)")
    tuner_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(saved, config)


def _cell(value) -> str:
    return json.dumps(value).replace(" ", "") if isinstance(value, list) else str(value)
