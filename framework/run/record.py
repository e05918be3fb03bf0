"""A finished run's record, ``metrics.json``: its one writer and its one reader.

Its presence marks a finished run (``framework.run.rundir``); predict and export, the sweep summary
and a resumed sweep read it.
"""

import json
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from framework.errors import UserError, damaged
from framework.run.rundir import METRICS, write_atomic


@dataclass
class RunRecord:
    """What ``metrics.json`` keeps, in the file's order.

    Args:
        test: the final model's scores on the split it was evaluated on.
        evaluated_on: ``"test"``, or ``"validation"`` where the dataset has no test split.
        validation: the final model's scores on the validation split.
        stages: each stage's scores.
        epochs: the epochs trained, all stages together.
        model: its ``name`` and ``params``.
        data: the dataset's name, its task and targets (``Task.data_info``), and its own info.
        seed: the run's seed.
        devices: Keras's devices and the GPUs the process was given (None: an older run).
        execution: the backend and its execution settings (None: an older run).
        objective: its ``name``, ``value`` and ``direction``; under a protocol that trains
            several models, the value is their mean and ``std`` their spread.
        class_weight: each class's weight in the training loss, by class name; None:
            unweighted (``trainer.class_weight`` null).
        pruned: where a pruner stopped the run (a sweep's or search's trial going nowhere): the
            ``epoch`` it stopped after and the pruner (``by``); None: not pruned.
        protocol: a protocol that trains several models (``kfold``, ``seeds``): its name and
            settings, each model's (round's) validation scores and objective, their mean and
            std, and the model kept (``kept``); None for the holdout.
        environment: the machine and the library versions it ran with
            (``framework.runtime.environment``); None: an older run.

    A field with a default is left out of the file where it holds it, so a run that does not
    use what the field records writes the file it wrote before the field existed.
    """

    test: dict
    evaluated_on: str
    validation: dict
    stages: list
    epochs: int
    model: dict
    data: dict
    seed: int
    devices: dict | None
    execution: dict | None
    objective: dict
    class_weight: dict | None = None
    pruned: dict | None = None
    protocol: dict | None = None
    environment: dict | None = None

    def as_dict(self) -> dict:
        """The record as ``metrics.json`` holds it."""
        return {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if field.default is MISSING or getattr(self, field.name) != field.default
        }

    @property
    def headline(self) -> str:
        """The run's headline score: the first its task keeps beside the loss (accuracy,
        mae...)."""
        return next((k for k in self.validation if k != "loss"), "loss")


def write_record(run_dir: Path, record: RunRecord):
    """Writes ``metrics.json`` into the run directory, whole or not at all."""
    write_atomic(run_dir / METRICS, json.dumps(record.as_dict(), indent=2) + "\n")


def read_record(run_dir: Path) -> RunRecord | None:
    """A run directory's record.

    Returns:
        The record; None where the directory holds none (the run did not finish).

    Raises:
        UserError: ``metrics.json`` cannot be read, or is damaged (not JSON, or not a run's
            record); the message names the file and what to do.
    """
    path = run_dir / METRICS
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_bytes())
    except ValueError:  # truncated, or not JSON at all (UnicodeDecodeError is one too)
        raise damaged(run_dir, METRICS, "not valid JSON") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    if not isinstance(found, dict):
        raise damaged(run_dir, METRICS, "not a run's record")
    validation = found.get("validation")
    if "objective" not in found and isinstance(validation, dict) and "accuracy" in validation:
        # Runs from before trainer.objective ranked by validation accuracy.
        found["objective"] = {
            "name": "val_accuracy",
            "value": validation["accuracy"],
            "direction": "max",
        }
    for field in fields(RunRecord):
        if not isinstance(found.get(field.name), field.type):  # devices: None in older runs
            raise damaged(run_dir, METRICS, f"it has no valid {field.name}")
    if not {"name", "value", "direction"} <= found["objective"].keys():
        raise damaged(run_dir, METRICS, "it has no valid objective")
    return RunRecord(**{field.name: found.get(field.name) for field in fields(RunRecord)})
