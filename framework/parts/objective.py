"""What a sweep or a tuner optimizes: one metric on the validation split, with its direction.

The test split is looked at once, at the end of a run; it never steers a search.
"""

from framework.errors import UserError

# Metrics that are better small.
MINIMIZED = ("loss", "error", "mae", "mse")


def check_objective(name: str, accepted, key: str = "trainer.objective"):
    """Refuses an objective the run does not log.

    Args:
        name: the objective.
        accepted: the run's task's objectives (``Task.objectives``), or any task's
            (``framework.parts.tasks.all_objectives()``).
        key: the setting it came from, for the message.

    Raises:
        UserError: the name and the accepted ones.
    """
    if name not in accepted:
        raise UserError(f"unknown {key} {name!r}; accepted: {', '.join(accepted)}")


def direction(name: str) -> str:
    """``"min"`` for a loss or an error (``mae``, ``rmse``...), ``"max"`` otherwise: by the name,
    where no task says (``framework.parts.tasks.objective_direction``)."""
    return "min" if any(word in name for word in MINIMIZED) else "max"


def objective_value(name: str, validation: dict, history: list[dict]) -> float:
    """The objective of a finished run.

    Args:
        name: e.g. ``val_accuracy``.
        validation: the final model's scores on the validation split (``loss``, ``accuracy``).
        history: the per-epoch rows of history.csv.

    Returns:
        ``val_<m>``: the final model's validation score (the model that is saved, also when
        EarlyStopping restored an earlier epoch); a training metric: its last epoch's value.
    """
    metric = name.removeprefix("val_")
    if name.startswith("val_") and metric in validation:
        return float(validation[metric])
    return float(history[-1][name])
