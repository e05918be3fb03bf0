"""What a sweep or a tuner optimizes: one metric on the validation split, with its direction.

The test split is looked at once, at the end of a run; it never steers a search.
"""

from collections.abc import Callable
from dataclasses import dataclass

from framework.errors import UserError

# Metrics that are better small.
MINIMIZED = ("loss", "error", "mae", "mse")


@dataclass(frozen=True)
class Objective:
    """A metric and the way it improves, as keras-tuner's ``Objective``: the one value that
    sweeps, searches, Optuna and the sweep summary rank by.

    Args:
        name: the metric, e.g. ``val_accuracy``.
        direction: ``"min"`` (better small) or ``"max"``.
    """

    name: str
    direction: str

    @classmethod
    def named(cls, name: str, minimized: tuple[str, ...] | None = None) -> "Objective":
        """The objective ``name``, with its direction.

        Args:
            name: e.g. ``val_mae``.
            minimized: the scores (without ``val_``) that a task says are better small
                (``Task.minimized``); None: by the name, a loss or an error (``mae``,
                ``rmse``...) is minimized, anything else maximized.
        """
        if minimized is None:
            small = any(word in name for word in MINIMIZED)
        else:
            small = name.removeprefix("val_") in minimized
        return cls(name, "min" if small else "max")

    @property
    def study_direction(self) -> str:
        """The direction in Optuna's words: ``"minimize"`` or ``"maximize"``."""
        return "minimize" if self.direction == "min" else "maximize"

    def has_value(self, value) -> bool:
        """Whether ``value`` scores a run: a number, not None or NaN (a job that did not
        finish, a trial that failed)."""
        return value is not None and value == value

    def sort_key(self, value) -> tuple[int, float]:
        """A key that sorts values best first, then those without a value."""
        if not self.has_value(value):
            return (1, 0.0)
        return (0, value if self.direction == "min" else -value)

    def better_than(self, a, b) -> bool:
        """Whether the value ``a`` is better than ``b`` (any value is better than none)."""
        return self.sort_key(a) < self.sort_key(b)


def best_first(
    rows: list,
    objective: Callable[..., Objective | None],
    value: Callable[..., float | None],
    number: Callable,
) -> list:
    """Ranks jobs or trials: by objective (in the order the rows bring them, by number), each
    best first by its direction; then the rows without a value; ties by number.

    Args:
        rows: the jobs or trials.
        objective: a row's objective; None where it has none (a job that did not finish).
        value: a row's objective value; None or NaN where it has none.
        number: a row's job or trial number.

    Returns:
        The rows, ranked.
    """
    names = list(dict.fromkeys(o.name for o in map(objective, sorted(rows, key=number)) if o))

    def rank(row):
        found = objective(row)
        missing, score = found.sort_key(value(row)) if found else (1, 0.0)
        return (missing, 0 if missing else names.index(found.name), score, number(row))

    return sorted(rows, key=rank)


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


def objective_over(values: list[float]) -> tuple[float, float]:
    """The objective of a run that trained several models (a protocol's rounds): the mean of
    their validation objectives, the one value sweeps and searches rank by, and its spread.

    Args:
        values: each model's objective (``objective_value``).

    Returns:
        ``(mean, std)``; the std is the sample's (``ddof=1``), 0 for one value.
    """
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
