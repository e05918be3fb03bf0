"""The objective: a validation metric with its direction, never the test split."""

import math

import pytest

from framework.errors import UserError
from framework.parts.objective import Objective, best_first, check_objective, objective_value
from framework.parts.tasks import Task, all_objectives, find_objective

HISTORY = [
    {"loss": 0.9, "accuracy": 0.5, "val_loss": 0.8, "val_accuracy": 0.6},
    {"loss": 0.4, "accuracy": 0.8, "val_loss": 0.5, "val_accuracy": 0.7},
]
# The final model's validation scores (EarlyStopping may have restored another epoch's weights).
VALIDATION = {"loss": 0.45, "accuracy": 0.75}


@pytest.mark.parametrize(
    "name, value, way",
    [
        ("val_accuracy", 0.75, "max"),
        ("val_loss", 0.45, "min"),
        ("accuracy", 0.8, "max"),
        ("loss", 0.4, "min"),
    ],
)
def test_each_objective_reads_its_score_and_has_its_direction(name, value, way):
    check_objective(name, all_objectives())
    assert objective_value(name, VALIDATION, HISTORY) == value
    assert Objective.named(name).direction == way


def test_unknown_objective_names_the_accepted_ones():
    with pytest.raises(UserError, match="'test_accuracy'; accepted: val_loss, val_accuracy"):
        check_objective("test_accuracy", all_objectives())


def test_better_than_follows_the_direction_and_any_value_beats_none():
    accuracy, loss = Objective("val_accuracy", "max"), Objective("val_loss", "min")
    assert accuracy.better_than(0.9, 0.8) and not accuracy.better_than(0.8, 0.9)
    assert loss.better_than(0.1, 0.2) and not loss.better_than(0.2, 0.1)
    assert not loss.better_than(0.2, 0.2)
    for missing in (None, math.nan):
        assert loss.better_than(5.0, missing) and not loss.better_than(missing, 5.0)
        assert not loss.has_value(missing)
    assert (loss.study_direction, accuracy.study_direction) == ("minimize", "maximize")


def test_a_task_gives_the_direction_of_its_own_metrics():
    class Brier(Task):  # a score the name rule would maximize
        metric_names = ("brier",)
        minimized = ("loss", "brier")

    assert Objective.named("val_brier").direction == "max"
    assert Brier(None).objective("val_brier") == Objective("val_brier", "min")
    assert Brier(None).objective("val_loss") == Objective("val_loss", "min")
    # The built-in tasks, by the objective's owner; by its name where no task logs it.
    assert find_objective("val_mae") == Objective("val_mae", "min")
    assert find_objective("val_accuracy", "classification") == Objective("val_accuracy", "max")
    assert find_objective("val_something_else") == Objective("val_something_else", "max")


def test_best_first_ranks_each_objective_by_its_direction_then_rows_without_a_value():
    accuracy, mae = Objective("val_accuracy", "max"), Objective("val_mae", "min")
    rows = [  # (number, objective, value)
        (0, mae, 3.0),
        (1, accuracy, 0.5),
        (2, mae, 1.0),
        (3, None, None),  # a job that did not finish
        (4, accuracy, math.nan),  # a trial that failed
        (5, accuracy, 0.9),
        (6, mae, 1.0),
    ]
    ranked = best_first(rows, lambda r: r[1], lambda r: r[2], lambda r: r[0])
    # mae first (job 0 brings it), lowest first; then accuracy, highest first; ties by number.
    assert [r[0] for r in ranked] == [2, 6, 0, 5, 1, 3, 4]
