"""The objective: a validation metric with its direction, never the test split."""

import pytest

from framework.errors import UserError
from framework.parts.objective import check_objective, direction, objective_value
from framework.parts.tasks import all_objectives

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
    assert direction(name) == way


def test_unknown_objective_names_the_accepted_ones():
    with pytest.raises(UserError, match="'test_accuracy'; accepted: val_loss, val_accuracy"):
        check_objective("test_accuracy", all_objectives())
