"""Test scores of the regression and multilabel experiments beside a plain scikit-learn baseline
fitted on the same training split, side by side in one run::

    python benchmarks/task_baselines.py [--seeds 42 1 2]

- ``diabetes_regression`` and ``csv_regression`` (a generated houses.csv) against
  ``LinearRegression``: test MAE, RMSE and R², and the MAE ratio framework / baseline (the
  target for diabetes: at most 1.05);
- ``multilabel_csv`` (a generated tags.csv) against one ``LogisticRegression`` per label: the
  test macro F1 and its ratio framework / baseline.

Each seed is the run's ``seed`` (weights, shuffling); the split stays the experiment's.
"""

import argparse
import contextlib
import csv
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_sample(kind: str, path: Path) -> Path:
    from framework_plugins.datasets import sample_csv

    header, rows = sample_csv.KINDS[kind](600, 42)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def framework_run(overrides: list[str], run_dir: Path):
    """The metrics of a framework run, and its data as the run split it (targets unscaled)."""
    from framework.parts.loading import load_plugins
    from framework.run.train import load_data, train
    from framework.testing import compose

    load_plugins()
    cfg = compose([*overrides, "trainer.verbose=0"])
    with contextlib.redirect_stdout(io.StringIO()):  # the runs' own reports
        return train(cfg, run_dir), load_data(cfg)


def regression_row(name: str, overrides: list[str], run_dir: Path) -> dict:
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    metrics, data = framework_run(overrides, run_dir)
    (x_train, y_train), (x_test, y_test) = data.train, data.test
    predicted = LinearRegression().fit(x_train, y_train).predict(x_test)
    return {
        "experiment": name,
        "framework": metrics["test"],
        "baseline": {
            "mae": mean_absolute_error(y_test, predicted),
            "rmse": float(np.sqrt(mean_squared_error(y_test, predicted))),
            "r2": r2_score(y_test, predicted),
        },
    }


def multilabel_row(overrides: list[str], run_dir: Path) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    metrics, data = framework_run(overrides, run_dir)
    (x_train, y_train), (x_test, y_test) = data.train, data.test
    predicted = np.stack(
        [
            LogisticRegression().fit(x_train, y_train[:, i]).predict(x_test)
            for i in range(y_train.shape[1])
        ],
        axis=1,
    )
    return {
        "experiment": "multilabel_csv",
        "framework": metrics["test"],
        "baseline": {"macro_f1": f1_score(y_test, predicted, average="macro")},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        houses = write_sample("houses", tmp / "houses.csv")
        tags = write_sample("tags", tmp / "tags.csv")
        print(
            "experiment           seed  framework (test)                      "
            "baseline (test)                       ratio"
        )
        for seed in args.seeds:
            for name, overrides in (
                ("diabetes_regression", ["experiment=diabetes_regression"]),
                ("csv_regression", ["experiment=csv_regression", f"dataset.path={houses}"]),
            ):
                row = regression_row(name, [*overrides, f"seed={seed}"], tmp / f"{name}-{seed}")
                ours, base = row["framework"], row["baseline"]
                print(
                    f"{name:<20} {seed:>4}  MAE {ours['mae']:8.3f} RMSE {ours['rmse']:8.3f} "
                    f"R² {ours['r2']:.3f}  MAE {base['mae']:8.3f} RMSE {base['rmse']:8.3f} "
                    f"R² {base['r2']:.3f}  MAE {ours['mae'] / base['mae']:.3f}"
                )
            row = multilabel_row(
                ["experiment=multilabel_csv", f"dataset.path={tags}", f"seed={seed}"],
                tmp / f"multilabel-{seed}",
            )
            ours, base = row["framework"]["macro_f1"], row["baseline"]["macro_f1"]
            print(
                f"{'multilabel_csv':<20} {seed:>4}  macro F1 {ours:.4f}{'':<28}"
                f"macro F1 {base:.4f}{'':<28}F1 {ours / base:.3f}"
            )
    print(
        "baselines: scikit-learn LinearRegression; one LogisticRegression per label; fitted on "
        "the run's training split"
    )


if __name__ == "__main__":
    main()
