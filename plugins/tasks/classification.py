"""The classification task: one class per example, binary (one sigmoid unit) or multiclass
(softmax), with integer or one-hot labels; accuracy, per-class precision/recall/F1, the confusion
matrix and, for images, the misclassified ones."""

from dataclasses import dataclass

from framework.api import (
    BINARY,
    MULTICLASS,
    Targets,
    Task,
    UserError,
    class_probabilities,
    hookimpl,
)


@dataclass
class ClassificationConfig:
    pass


class Classification(Task):
    """Classes: accuracy, per-class precision, recall and F1, the confusion matrix."""

    kinds = (BINARY, MULTICLASS)
    auto = True
    auto_order = 100  # last: it takes any one column (and refuses several in encode)
    metric_names = ("accuracy",)
    default_objective = "val_accuracy"
    weighs_classes = True

    def takes_targets(self, columns):
        if len(columns) != 1:
            return ""  # encode refuses them, naming the tasks that take several
        ((name, values),) = columns.items()
        try:
            distinct = len({float(v) for v in values})
        except ValueError:
            distinct = 0  # text: classes, plainly
        return (
            f"target {name!r} has {distinct} distinct numbers, taken as classes" if distinct else ""
        )

    def encode(self, columns, source):
        if len(columns) != 1:
            raise UserError(
                f"task classification takes one target column; {source} names "
                f"{len(columns)} ({', '.join(columns)}); accepted for several: "
                "multilabel (0/1 columns), regression (numbers)"
            )
        ((name, values),) = columns.items()
        class_names = sorted(set(values), key=_numeric_first)
        index = {value: i for i, value in enumerate(class_names)}
        import numpy as np

        return Targets(np.array([index[v] for v in values]), class_names, None, stratify=True)

    def prepare(self, data, source):
        if len(data.class_names) < 2:
            raise UserError(
                f"{source} has {len(data.class_names)} class "
                f"({', '.join(map(str, data.class_names)) or 'none'}); a classifier needs at "
                "least 2"
            )
        return data

    def output_layer(self, ctx, data, one_hot, dtype):
        if data.task == BINARY and not one_hot:
            return ctx.dense(1, "sigmoid", name="predictions", dtype=dtype)
        return ctx.dense(ctx.num_classes, "softmax", name="predictions", dtype=dtype)

    def loss(self, data, one_hot):
        if one_hot:
            return "categorical_crossentropy"
        return "binary_crossentropy" if data.task == BINARY else "sparse_categorical_crossentropy"

    def metrics(self, data):
        return ["accuracy"]

    def evaluate(self, model, split, data, batch_size):
        return evaluate(model, split, data.class_names, batch_size)

    def report(self, run_dir, scores, data, evaluated_on):
        from framework.api import split_arrays
        from framework_plugins.tasks.classification_plots import (
            plot_confusion_matrix,
            plot_misclassified,
            take_examples,
        )

        final = scores[evaluated_on]
        plot_confusion_matrix(
            run_dir, final["y_true"], final["y_pred"], data.class_names, evaluated_on
        )
        if len(data.input_shape) == 3:  # images: show the validation images the model got wrong
            import numpy as np

            # A model refit on train+validation has none: the images it was scored on.
            split = "validation" if "validation" in scores else evaluated_on
            val = scores[split]
            wrong = np.flatnonzero(val["y_true"] != val["y_pred"])
            images = take_examples(split_arrays(getattr(data, split))[0], wrong)
            plot_misclassified(
                run_dir,
                images,
                val["y_true"][wrong],
                val["y_pred"][wrong],
                data.class_names,
                split,
            )

    def predictions(self, outputs, data_info):
        import numpy as np

        probs = class_probabilities(np.asarray(outputs, np.float64))
        names = data_info["classes"]
        return {
            "class": [names[i] for i in probs.argmax(axis=-1)],
            "confidence": [f"{p:.6f}" for p in probs.max(axis=-1)],
        }

    def prediction_text(self, row):
        return f"{row['class']} (confidence: {float(row['confidence']):.1%})"

    def score_lines(self, metrics):
        test, validation = metrics["test"], metrics["validation"]
        return [
            f"Validation: loss {validation['loss']:.4f}  accuracy {validation['accuracy']:.4f}",
            f"{metrics['evaluated_on'].capitalize() + ':':<10} loss {test['loss']:.4f}  "
            f"accuracy {test['accuracy']:.4f}  macro F1 {test['macro']['f1']:.4f}  "
            f"({test['samples']} samples)",
        ]


def evaluate(model, split, class_names, batch_size):
    """Scores a classifier on a split.

    Returns:
        A dict: ``loss``, ``accuracy``, ``samples``, ``per_class`` (precision, recall, f1,
        support by class name) and ``macro`` (precision, recall, f1).
    """
    import numpy as np
    from sklearn.metrics import classification_report

    from framework.api import is_one_hot, predict_split

    probs, y = predict_split(model, split, batch_size)
    # The loss and accuracy follow from the predictions: the compiled loss plus the weight
    # regularizers' penalties, as model.evaluate counts them (not add_loss() terms of a call).
    loss = model.compute_loss(y=y, y_pred=probs, training=False)
    y_true = y.argmax(axis=-1) if is_one_hot(np.shape(y)) else y.reshape(len(y)).astype(int)
    y_pred = class_probabilities(probs).argmax(axis=-1)
    accuracy = np.mean(y_pred == y_true)
    report = classification_report(
        y_true,
        y_pred,
        labels=list(range(len(class_names))),
        target_names=list(class_names),
        output_dict=True,
        zero_division=0,
    )
    per_class = {
        name: {
            "precision": report[name]["precision"],
            "recall": report[name]["recall"],
            "f1": report[name]["f1-score"],
            "support": int(report[name]["support"]),
        }
        for name in class_names
    }
    macro = report["macro avg"]
    return {
        "loss": float(loss),
        "accuracy": float(accuracy),
        "samples": int(len(y_true)),
        "per_class": per_class,
        "macro": {
            "precision": macro["precision"],
            "recall": macro["recall"],
            "f1": macro["f1-score"],
        },
        "y_true": y_true,
        "y_pred": y_pred,
    }


def _numeric_first(value: str):
    """Sort key: numbers by value (2 before 10), then text."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


@hookimpl
def register_tasks(register):
    register("classification", Classification, ClassificationConfig())
