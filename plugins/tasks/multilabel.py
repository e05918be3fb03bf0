"""The multilabel task: several 0/1 target columns, any number of them present at once; one
sigmoid per label, binary cross-entropy, per-label precision/recall/F1 and their macro mean."""

from dataclasses import dataclass

from framework.api import Targets, Task, UserError, hookimpl, setting

# The cells of a label column: absent or present.
ZERO_ONE = frozenset({"0", "1", "0.0", "1.0"})


@dataclass
class MultilabelConfig:
    # A label is predicted present when its sigmoid output is above this.
    threshold: float = setting(0.5, above=0, below=1)


class Multilabel(Task):
    """0/1 labels: a sigmoid per label; per-label precision, recall, F1 and the macro F1."""

    kinds = ("multilabel",)
    auto = True
    auto_order = 10  # before regression, which takes 0/1 columns too
    metric_names = ("macro_f1",)
    default_objective = "val_macro_f1"

    def takes_targets(self, columns):
        if len(columns) > 1 and all(set(v) <= ZERO_ONE for v in columns.values()):
            return f"{len(columns)} target columns of 0/1"
        return None

    def encode(self, columns, source):
        import numpy as np

        if len(columns) < 2:
            raise UserError(
                f"task multilabel takes two or more 0/1 target columns; {source} "
                f"names {len(columns)} (task=classification for one)"
            )
        rows = []
        for name, cells in columns.items():
            bad = next((v for v in cells if v not in ZERO_ONE), None)
            if bad is not None:
                raise UserError(
                    f"target column {name!r} of {source} holds {bad!r}; task "
                    "multilabel needs 0 or 1 in every target column"
                )
            rows.append([float(v) for v in cells])
        return Targets(np.array(rows, np.float32).T, list(columns), "multilabel")

    def output_layer(self, ctx, data, one_hot, dtype):
        return ctx.dense(len(data.class_names), "sigmoid", name="predictions", dtype=dtype)

    def loss(self, data, one_hot):
        return "binary_crossentropy"

    def metrics(self, data):
        import keras

        return [
            keras.metrics.F1Score(average="macro", threshold=self.cfg.threshold, name="macro_f1")
        ]

    def evaluate(self, model, split, data, batch_size):
        import numpy as np
        from sklearn.metrics import accuracy_score, precision_recall_fscore_support

        from framework.api import predict_split

        outputs, y = predict_split(model, split, batch_size)
        loss = model.compute_loss(y=y, y_pred=outputs, training=False)
        true = np.asarray(y).astype(int)
        predicted = (np.asarray(outputs) > self.cfg.threshold).astype(int)
        precision, recall, f1, support = precision_recall_fscore_support(
            true, predicted, average=None, zero_division=0
        )
        per_label = {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(data.class_names)
        }
        return {
            "loss": float(loss),
            "macro_f1": float(np.mean(f1)),
            "exact_match": float(accuracy_score(true, predicted)),  # every label right
            "samples": int(len(true)),
            "per_label": per_label,
            "macro": {
                "precision": float(np.mean(precision)),
                "recall": float(np.mean(recall)),
                "f1": float(np.mean(f1)),
            },
            "y_true": true,
            "y_pred": predicted,
        }

    def report(self, run_dir, scores, data, evaluated_on):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        labels = scores[evaluated_on]["per_label"]
        names = list(labels)
        fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(names) + 2), 4))
        for k, score in enumerate(("precision", "recall", "f1")):
            ax.bar(
                np.arange(len(names)) + (k - 1) * 0.27,
                [labels[n][score] for n in names],
                width=0.27,
                label=score,
            )
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_ylim(0, 1.2)  # room for the legend above the bars
        ax.set_title(f"per-label scores ({evaluated_on}, threshold {self.cfg.threshold})")
        ax.legend(loc="upper center", ncol=3)
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        fig.savefig(run_dir / "label_scores.png", dpi=100)
        plt.close(fig)

    def predictions(self, outputs, data_info):
        import numpy as np

        probs = np.asarray(outputs, np.float64)
        names, threshold = data_info["labels"], data_info["threshold"]
        present = [" ".join(n for n, p in zip(names, row) if p > threshold) for row in probs]
        return {
            "labels": present,
            **{f"p_{name}": [f"{p:.6f}" for p in probs[:, i]] for i, name in enumerate(names)},
        }

    def prediction_text(self, row):
        return row["labels"].replace(" ", ", ") or "(no label)"

    def score_lines(self, metrics):
        test, validation = metrics["test"], metrics["validation"]
        return [
            f"Validation: loss {validation['loss']:.4f}  macro F1 {validation['macro_f1']:.4f}",
            f"{metrics['evaluated_on'].capitalize() + ':':<10} loss {test['loss']:.4f}  "
            f"macro F1 {test['macro_f1']:.4f}  exact match {test['exact_match']:.4f}  "
            f"({test['samples']} samples)",
        ]

    def target_names(self, data_info):
        return data_info["labels"]

    def data_info(self, data):
        return {"labels": list(data.class_names), "threshold": self.cfg.threshold}


@hookimpl
def register_tasks(register):
    register("multilabel", Multilabel, MultilabelConfig())
