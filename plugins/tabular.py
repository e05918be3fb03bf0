"""Tabular datasets: scikit-learn's bundled iris, wine and breast cancer, and a user's CSV file.

Splits are stratified (train / validation / test); features are standardized with a
StandardScaler fitted on the training split only.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

from framework.api import Data, UserError, hookimpl

IRIS_TARGETS = ("species", "setosa")


@dataclass
class SplitConfig:
    # Fraction of all samples held out for the final test.
    test_size: float = 0.2
    # Fraction of the remaining samples used for validation during training.
    validation_size: float = 0.2
    # Seed of the split, apart from the run's seed (the curriculum's random_state=42).
    split_seed: int = 42
    standardize: bool = True
    # Labels as one-hot vectors (then the loss is categorical_crossentropy) instead of indices.
    one_hot: bool = False


@dataclass
class IrisConfig(SplitConfig):
    # "species": 3 classes; "setosa": the binary setosa-vs-rest task.
    target: str = "species"


@dataclass
class CsvConfig(SplitConfig):
    path: str = "???"
    # The column holding the class; its values (numbers or strings) become the classes.
    target: str = "???"
    # Feature columns; empty: every column but the target.
    features: list[str] | None = None


def split_and_scale(x, y, class_names, cfg, info) -> Data:
    """Stratified train/validation/test split and standardization fitted on train only."""
    import numpy as np
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    for name, value in (("test_size", cfg.test_size), ("validation_size", cfg.validation_size)):
        if not 0 < value < 1:
            raise UserError(f"dataset.{name} must be between 0 and 1. Received: {name}={value}")
    try:
        x_rest, x_test, y_rest, y_test = train_test_split(
            x, y, test_size=cfg.test_size, random_state=cfg.split_seed, stratify=y
        )
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=cfg.validation_size, random_state=cfg.split_seed,
            stratify=y_rest,
        )
    except ValueError as e:
        raise UserError(f"cannot split the dataset into train/validation/test: {e}") from None
    if cfg.standardize:
        scaler = StandardScaler().fit(x_train)
        x_train, x_val, x_test = (scaler.transform(a) for a in (x_train, x_val, x_test))
    if cfg.one_hot:
        eye = np.eye(len(class_names), dtype=np.float32)
        y_train, y_val, y_test = eye[y_train], eye[y_val], eye[y_test]
    f32 = np.float32
    info = {**info, "train": len(y_train), "validation": len(y_val), "test": len(y_test)}
    return Data(
        class_names=list(class_names),
        train=(x_train.astype(f32), y_train),
        validation=(x_val.astype(f32), y_val),
        test=(x_test.astype(f32), y_test),
        input_shape=(x.shape[1],),
        info=info,
    )


def build_iris(cfg, ctx) -> Data:
    """Iris flowers: 150 samples, 4 features; 3 species or setosa-vs-rest."""
    from sklearn.datasets import load_iris

    if cfg.target not in IRIS_TARGETS:
        raise UserError(
            f"unknown iris target {cfg.target!r}; accepted: {', '.join(IRIS_TARGETS)}"
        )
    iris = load_iris()
    if cfg.target == "setosa":
        return split_and_scale(iris.data, (iris.target == 0).astype(int), ["other", "setosa"],
                               cfg, {"samples": 150})
    return split_and_scale(iris.data, iris.target, iris.target_names, cfg, {"samples": 150})


def build_wine(cfg, ctx) -> Data:
    """Wine: 178 samples, 13 chemical features, 3 cultivars."""
    from sklearn.datasets import load_wine

    wine = load_wine()
    return split_and_scale(wine.data, wine.target, wine.target_names, cfg, {"samples": 178})


def build_breast_cancer(cfg, ctx) -> Data:
    """Breast cancer Wisconsin: 569 samples, 30 features, malignant vs benign."""
    from sklearn.datasets import load_breast_cancer

    bc = load_breast_cancer()
    return split_and_scale(bc.data, bc.target, bc.target_names, cfg, {"samples": 569})


def build_csv(cfg, ctx) -> Data:
    """A CSV file with a header row and a named target column; classes from its values."""
    import numpy as np

    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise UserError(f"CSV file not found. Received: dataset.path={cfg.path!r}")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise UserError(f"CSV file is empty. Received: dataset.path={cfg.path!r}")
    header, rows = [h.strip() for h in rows[0]], [r for r in rows[1:] if any(c.strip() for c in r)]
    if cfg.target not in header:
        raise UserError(
            f"target column {cfg.target!r} is not in {path.name}; columns: {', '.join(header)}"
        )
    features = list(cfg.features) if cfg.features else [h for h in header if h != cfg.target]
    missing = [c for c in features if c not in header]
    if missing:
        raise UserError(
            f"feature column {missing[0]!r} is not in {path.name}; columns: {', '.join(header)}"
        )
    t = header.index(cfg.target)
    labels = [r[t].strip() for r in rows]
    class_names = sorted(set(labels), key=_numeric_first)
    index = {name: i for i, name in enumerate(class_names)}
    x = np.empty((len(rows), len(features)), dtype=np.float64)
    for j, column in enumerate(features):
        c = header.index(column)
        for i, r in enumerate(rows):
            try:
                x[i, j] = float(r[c])
            except (ValueError, IndexError):
                raise UserError(
                    f"feature column {column!r} holds a non-numeric value on line {i + 2} of "
                    f"{path.name}: {r[c] if c < len(r) else ''!r}; list numeric columns in "
                    "dataset.features"
                ) from None
    if len(class_names) < 2:
        raise UserError(
            f"target column {cfg.target!r} of {path.name} has {len(class_names)} class "
            f"({', '.join(class_names) or 'none'}); a classifier needs at least 2"
        )
    y = np.array([index[v] for v in labels])
    return split_and_scale(x, y, class_names, cfg, {"samples": len(rows), "path": str(path)})


def _numeric_first(value: str):
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


@hookimpl
def register_datasets(register):
    register("iris", build_iris, IrisConfig())
    register("wine", build_wine, SplitConfig())
    register("breast_cancer", build_breast_cancer, SplitConfig())
    register("csv", build_csv, CsvConfig())
