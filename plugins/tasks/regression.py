"""The regression task: one or more numeric targets, a linear output, MAE, RMSE and R².

The targets are standardized on the training split (mean 0, standard deviation 1) for training;
every number a user sees (metrics, history, predictions, plots) is back in the targets' units.
"""

import dataclasses
from dataclasses import dataclass

from framework.api import (
    Targets,
    Task,
    UserError,
    hookimpl,
    setting,
)

LOSSES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "huber": "huber"}
# Under task=auto, a numeric target with more distinct values than this is a quantity, not a set
# of classes.
MAX_AUTO_CLASSES = 20


@dataclass
class RegressionConfig:
    # On the standardized targets: mse, mae or huber (squared near 0, linear beyond 1 standard
    # deviation: robust to outliers).
    loss: str = setting("mse", choices=tuple(LOSSES))
    # Train on targets standardized on the training split (the scaling is undone in every
    # number reported); false: on the raw values.
    standardize: bool = True


class Regression(Task):
    """Numbers: a linear output per target column; MAE, RMSE and R² in the targets' units."""

    kinds = ("regression",)
    auto = True
    auto_order = 20  # before classification, which takes any one column
    metric_names = ("mae", "rmse", "r2")
    default_objective = "val_mae"
    minimized = ("loss", "mae", "rmse")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.mean = self.scale = None  # of the training split's targets, set by prepare

    def takes_targets(self, columns):
        if not all(values and all(map(_is_number, values)) for values in columns.values()):
            return None
        if len(columns) > 1:
            return f"{len(columns)} numeric target columns"
        ((name, values),) = columns.items()
        distinct = len(set(float(v) for v in values))
        if distinct > MAX_AUTO_CLASSES:
            return f"target {name!r} is numeric with {distinct} distinct values"
        return None

    def encode(self, columns, source):
        import numpy as np

        values = []
        for name, cells in columns.items():
            try:
                values.append([float(v) for v in cells])
            except ValueError:
                bad = next(v for v in cells if not _is_number(v))
                raise UserError(
                    f"target column {name!r} of {source} holds the non-numeric value "
                    f"{bad!r}; task regression needs numbers (task=classification "
                    "takes its values as classes)"
                ) from None
        y = np.array(values, np.float64).T
        if not np.isfinite(y).all():
            row, column = map(int, np.argwhere(~np.isfinite(y))[0])
            raise UserError(
                f"target column {list(columns)[column]!r} of {source} holds "
                f"{list(columns.values())[column][row]!r} (row {row + 1}); task "
                "regression needs finite numbers (dataset.missing=drop drops such "
                "rows)"
            )
        return Targets(y.astype(np.float32), list(columns), "regression")

    def prepare(self, data, source):
        import numpy as np

        if not all(isinstance(s, tuple) for s in (data.train, data.validation)):
            raise UserError(
                f"task regression needs the splits of {source} as (x, y) arrays, "
                "not a tf.data pipeline"
            )
        y_train = np.asarray(data.train[1], np.float64).reshape(len(data.train[1]), -1)
        self.mean, self.scale = np.zeros(y_train.shape[1]), np.ones(y_train.shape[1])
        if self.cfg.standardize:
            self.mean, std = y_train.mean(axis=0), y_train.std(axis=0)
            self.scale = np.where(std > 0, std, 1.0)

        def scaled(split):
            if split is None:
                return None
            x, y = split
            y = np.asarray(y, np.float64).reshape(len(y), -1)
            return x, ((y - self.mean) / self.scale).astype(np.float32)

        return dataclasses.replace(
            data,
            train=scaled(data.train),
            validation=scaled(data.validation),
            test=scaled(data.test),
        )

    def output_layer(self, ctx, data, one_hot, dtype):
        return ctx.dense(len(data.class_names), "linear", name="predictions", dtype=dtype)

    def loss(self, data, one_hot):
        return LOSSES[self.cfg.loss]

    def metrics(self, data):
        import keras

        from framework_plugins.tasks.regression_metrics import TargetUnitsError

        return [
            TargetUnitsError(self.scale.tolist(), name="mae"),
            TargetUnitsError(self.scale.tolist(), squared=True, name="rmse"),
            keras.metrics.R2Score(name="r2"),
        ]

    def saved_metrics(self, data):
        return ["mae"]  # Keras's own: on the standardized scale, as the loss

    def undo(self, y):
        """Standardized targets (or outputs) back in the targets' units."""
        import numpy as np

        return np.asarray(y, np.float64).reshape(len(y), -1) * self.scale + self.mean

    def evaluate(self, model, split, data, batch_size):

        from framework.api import predict_split

        outputs, y = predict_split(model, split, batch_size)
        loss = model.compute_loss(y=y, y_pred=outputs, training=False)
        true, predicted = self.undo(y), self.undo(outputs)
        per_target = {
            name: _scores(true[:, i], predicted[:, i]) for i, name in enumerate(data.class_names)
        }
        return {
            "loss": float(loss),
            **_scores(true, predicted),
            "samples": int(len(true)),
            "per_target": per_target,
            "y_true": true,
            "y_pred": predicted,
        }

    def report(self, run_dir, scores, data, evaluated_on):
        from framework_plugins.tasks.regression_plots import plot_predicted_vs_true, plot_residuals

        final = scores[evaluated_on]
        plot_predicted_vs_true(
            run_dir, final["y_true"], final["y_pred"], data.class_names, evaluated_on
        )
        plot_residuals(run_dir, final["y_true"], final["y_pred"], data.class_names, evaluated_on)

    def predictions(self, outputs, data_info):
        import numpy as np

        scaling = data_info["target_scaling"]
        values = np.asarray(outputs, np.float64) * np.asarray(scaling["scale"]) + np.asarray(
            scaling["mean"]
        )
        return {
            name: [f"{v:.6g}" for v in values[:, i]] for i, name in enumerate(data_info["targets"])
        }

    def prediction_text(self, row):
        return next(iter(row.values())) if len(row) == 1 else super().prediction_text(row)

    def score_lines(self, metrics):
        test, validation = metrics["test"], metrics["validation"]

        def scores(s):
            return (
                f"loss {s['loss']:.4f}  MAE {s['mae']:.4f}  RMSE {s['rmse']:.4f}  R² {s['r2']:.4f}"
            )

        return [
            f"Validation: {scores(validation)}",
            f"{metrics['evaluated_on'].capitalize() + ':':<10} {scores(test)}  "
            f"({test['samples']} samples)",
        ]

    def target_names(self, data_info):
        return data_info["targets"]

    def data_info(self, data):
        return {
            "targets": list(data.class_names),
            "target_scaling": {"mean": self.mean.tolist(), "scale": self.scale.tolist()},
        }


def _scores(true, predicted) -> dict:
    """MAE, RMSE (over every target value) and R² (averaged over the targets)."""
    import numpy as np
    from sklearn.metrics import r2_score

    error = predicted - true
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "r2": float(r2_score(true, predicted)) if len(true) > 1 else float("nan"),
    }


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


@hookimpl
def register_tasks(register):
    register("regression", Regression, RegressionConfig())
