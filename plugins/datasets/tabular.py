"""Tabular datasets: scikit-learn's bundled iris, wine, breast cancer and diabetes, and a user's
CSV file.

Splits (train / validation / test) of class labels are stratified; features are standardized
with a StandardScaler fitted on the training split only. A CSV file's target columns are encoded
for the run's task (``task=auto``: the values decide).
"""

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from framework.api import (
    FEATURES,
    Data,
    UserError,
    encode_targets,
    hookimpl,
    setting,
)

IRIS_TARGETS = ("species", "setosa")
# Cells that hold no value, in a CSV file read for training or for predictions.
MISSING_CELLS = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"})
MISSING_POLICIES = ("error", "drop", "mean")


@dataclass
class SplitConfig:
    # Fraction of all samples held out for the final test.
    test_size: float = setting(0.2, above=0, below=1)
    # Fraction of the remaining samples used for validation during training.
    validation_size: float = setting(0.2, above=0, below=1)
    # Seed of the split, apart from the run's seed (the curriculum's random_state=42).
    split_seed: int = setting(42, at_least=0, at_most=2**32 - 1)
    standardize: bool = True
    # Labels as one-hot vectors (then the loss is categorical_crossentropy) instead of indices.
    one_hot: bool = False


@dataclass
class IrisConfig(SplitConfig):
    # "species": 3 classes; "setosa": the binary setosa-vs-rest task.
    target: str = "species"


@dataclass
class CsvConfig(SplitConfig):
    # The CSV file; its first row names the columns.
    path: str = "???"
    # The target column, or a list of them: with task=auto, a column of text or of a few
    # distinct numbers is classification (its values become the classes), a numeric column with
    # many distinct values regression, several 0/1 columns multilabel (task= chooses).
    target: Any = "???"
    # Feature columns; empty: every column but the target. Text columns are one-hot encoded.
    features: list[str] | None = None
    # Cells that are empty, NA, N/A, NaN, null, None or ?, and infinite numbers (inf, -inf):
    # error (refuse them), drop (drop those rows, with a note of how many), or mean (fill numbers
    # with the training split's column mean; text gets no category).
    missing: str = setting("error", choices=MISSING_POLICIES)


def split_and_scale(x, y, class_names, cfg, info, targets_for=None, stratify=None) -> Data:
    """Train/validation/test split and standardization fitted on train only.

    Args:
        targets_for: the task that targets other than class labels are for.
        stratify: whether the splits keep the proportions of ``y``; None: for class labels.
    """
    import numpy as np
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    for name, value in (("test_size", cfg.test_size), ("validation_size", cfg.validation_size)):
        if not 0 < value < 1:
            raise UserError(f"dataset.{name} must be between 0 and 1. Received: {name}={value}")
    classes = targets_for is None
    stratify = classes if stratify is None else stratify
    if stratify:
        _check_stratifiable(y, class_names, cfg)
    try:
        x_rest, x_test, y_rest, y_test = train_test_split(
            x,
            y,
            test_size=cfg.test_size,
            random_state=cfg.split_seed,
            stratify=y if stratify else None,
        )
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest,
            y_rest,
            test_size=cfg.validation_size,
            random_state=cfg.split_seed,
            stratify=y_rest if stratify else None,
        )
    except ValueError as e:
        raise UserError(f"cannot split the dataset into train/validation/test: {e}") from None
    if cfg.get("missing") == "mean":  # from the training split only, as the scaler
        empty = np.flatnonzero(np.isnan(x_train).all(axis=0))
        if empty.size:
            names = info.get("features") or [str(i + 1) for i in range(x.shape[1])]
            raise UserError(
                f"feature column {names[empty[0]]!r} has no value in the training "
                "split to take the mean of; leave it out of dataset.features"
            )
        means = np.nanmean(x_train, axis=0)
        x_train, x_val, x_test = (np.where(np.isnan(a), means, a) for a in (x_train, x_val, x_test))
        if "inputs" in info:
            info["inputs"]["fill"] = means.tolist()
    if cfg.standardize:
        scaler = StandardScaler().fit(x_train)
        x_train, x_val, x_test = (scaler.transform(a) for a in (x_train, x_val, x_test))
        if "inputs" in info:
            info["inputs"]["scaler"] = {
                "mean": scaler.mean_.tolist(),
                "scale": scaler.scale_.tolist(),
            }
    if cfg.one_hot and classes:
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
        targets_for=targets_for,
    )


def _check_stratifiable(y, class_names, cfg):
    """Refuses class labels that a stratified split cannot keep: a class with too few examples
    for each split to hold one (in one line, not scikit-learn's paragraph)."""
    import numpy as np

    counts = np.bincount(np.asarray(y, int), minlength=len(class_names))
    rarest = int(counts.argmin())
    if len(counts) and counts[rarest] < 2:  # scikit-learn's own minimum
        raise UserError(
            f"class {class_names[rarest]!r} has {counts[rarest]} example; a stratified "
            "train/validation/test split needs at least 2 of each class"
            + (
                f" ({len(class_names)} classes: is the target a number to predict? then "
                "task=regression)"
                if len(class_names) > 10
                else ""
            )
        )


def build_iris(cfg, ctx) -> Data:
    """Iris flowers: 150 samples, 4 features; 3 species or setosa-vs-rest."""
    from sklearn.datasets import load_iris

    if cfg.target not in IRIS_TARGETS:
        raise UserError(f"unknown iris target {cfg.target!r}; accepted: {', '.join(IRIS_TARGETS)}")
    iris = load_iris()
    if cfg.target == "setosa":
        return split_and_scale(
            iris.data, (iris.target == 0).astype(int), ["other", "setosa"], cfg, {"samples": 150}
        )
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


def build_diabetes(cfg, ctx) -> Data:
    """Diabetes: 442 patients, 10 features, disease progression after a year (regression)."""
    import numpy as np
    from sklearn.datasets import load_diabetes

    diabetes = load_diabetes()
    return split_and_scale(
        diabetes.data,
        diabetes.target[:, None].astype(np.float32),
        ["progression"],
        cfg,
        {"samples": 442},
        targets_for="regression",
    )


def build_csv(cfg, ctx) -> Data:
    """A CSV file with a header row and named target column(s): classes, numbers or labels."""
    import numpy as np

    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise UserError(f"CSV file not found. Received: dataset.path={cfg.path!r}")
    if cfg.missing not in MISSING_POLICIES:
        raise UserError(
            f"unknown dataset.missing {cfg.missing!r}; accepted: {', '.join(MISSING_POLICIES)}"
        )
    header, rows, lines = _read_csv(path)
    # A header may be a number (dataset.target=5): names are text.
    targets = (
        [str(t) for t in cfg.target]
        if OmegaConf.is_list(cfg.target) or isinstance(cfg.target, list)
        else [str(cfg.target)]
    )
    if not targets:
        raise UserError(
            f"dataset.target is an empty list; name the target column, or several: "
            f"dataset.target=[a,b]; columns of {path.name}: {', '.join(header)}"
        )
    for target in targets:
        if target not in header:
            raise UserError(
                f"target column {target!r} is not in {path.name}; columns: {', '.join(header)}"
            )
    features = list(cfg.features) if cfg.features else [h for h in header if h not in targets]
    for target in targets:
        if target in features:
            raise UserError(
                f"dataset.features lists the target column {target!r}; leave it "
                "out (the model would be given the answer)"
            )
    missing = [c for c in features if c not in header]
    if missing:
        raise UserError(
            f"feature column {missing[0]!r} is not in {path.name}; columns: {', '.join(header)}"
        )
    columns = {
        name: [r[header.index(name)].strip() for r in rows] for name in [*targets, *features]
    }
    if cfg.missing == "drop":
        keep = [
            i
            for i in range(len(rows))
            if not any(_not_finite(columns[name][i]) for name in targets)
            and not any(_not_finite(columns[name][i]) for name in features)
        ]
        columns = {name: [values[i] for i in keep] for name, values in columns.items()}
        lines = [lines[i] for i in keep]
        if not keep:
            _refuse_all_dropped(rows, header, targets, features, path)
        if len(keep) < len(rows):
            print(
                f"dataset csv: dropped {len(rows) - len(keep)} of {len(rows)} rows with a "
                "missing or infinite value (dataset.missing=drop)"
            )
    for target in targets:
        _check_missing(target, columns[target], lines, path, "the target")
    task = ctx.task if ctx is not None else "auto"
    encoded = encode_targets(task, {name: columns[name] for name in targets}, path.name)
    if encoded.task is None and len(encoded.names) < 2:  # class labels
        raise UserError(
            f"target column {targets[0]!r} of {path.name} has {len(encoded.names)} class "
            f"({', '.join(encoded.names) or 'none'}); a classifier needs at least 2"
        )
    blocks, names, categorical = [], [], []
    # How new rows become the model's inputs (framework.predict on a CSV file): the columns,
    # each with its categories if it is text; the fill means and the scaling join them.
    inputs = {"columns": []}
    for column in features:
        values = columns[column]
        if cfg.missing == "error":
            _check_missing(column, values, lines, path, "a feature")
        numbers = _numbers(values, column, lines, path)
        if numbers is None:  # text: one 0/1 column per category (a missing cell: all zeros)
            categories = sorted({v for v in values if not _is_missing(v)})
            blocks.append(np.array([[v == c for c in categories] for v in values], np.float64))
            names += [f"{column}={c}" for c in categories]
            categorical.append(column)
            inputs["columns"].append({"name": column, "categories": categories})
            continue
        inputs["columns"].append({"name": column})
        infinite = [i for i, x in enumerate(numbers) if math.isinf(x)]
        if infinite and cfg.missing == "error":
            first = infinite[0]
            raise UserError(
                f"feature column {column!r} of {path.name} holds {len(infinite)} infinite "
                f"value(s), the first {values[first]!r} on line {lines[first]}; features must be "
                "finite numbers: correct them, or set dataset.missing=drop or dataset.missing=mean"
            )
        column_values = np.array(numbers, np.float64)[:, None]
        # Under mean, an infinite number is filled as a missing one is (none is left under drop).
        blocks.append(np.where(np.isinf(column_values), np.nan, column_values))
        names.append(column)
    x = np.concatenate(blocks, axis=1) if blocks else np.empty((len(encoded.y), 0))
    if categorical:
        print(f"dataset csv: one-hot encoded the text column(s) {', '.join(categorical)}")
    if cfg.missing == "mean" and np.isnan(x).any():
        print(
            f"dataset csv: filling {int(np.isnan(x).sum())} missing or infinite number(s) with "
            "the training split's column means (dataset.missing=mean)"
        )
    kept = len(encoded.y)
    info = {"samples": kept, "path": str(path), "features": names, "inputs": inputs}
    if kept < len(rows):
        info["dropped_rows"] = len(rows) - kept
    return split_and_scale(
        x, encoded.y, encoded.names, cfg, info, targets_for=encoded.task, stratify=encoded.stratify
    )


def _refuse_all_dropped(rows, header, targets, features, path):
    """Raises the error for a file whose every row ``dataset.missing=drop`` drops, naming the
    column with the most missing or infinite cells."""
    names = [*targets, *features]
    counts = {
        name: sum(_not_finite(row[header.index(name)].strip()) for row in rows) for name in names
    }
    worst = max(names, key=counts.get)
    remedy = (
        "correct the file"
        if worst in targets
        else "correct the file, leave the column "
        "out of dataset.features, or set dataset.missing=mean to fill it"
    )
    raise UserError(
        f"every row of {path.name} has a missing or infinite value, so dataset.missing=drop "
        f"leaves no data (column {worst!r}{' (the target)' if worst in targets else ''}: "
        f"{counts[worst]} of {len(rows)} rows); {remedy}"
    )


def _read_csv(path: Path):
    """The header, the non-blank rows of a CSV file (each as long as the header) and the lines
    they start on."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # offsets in errors count from byte 0
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise UserError(
            f"{path.name} is not UTF-8 text (byte {raw[e.start]:#x} at offset "
            f"{e.start}, line {line}); save it as UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    records, end = [], 0
    try:
        for row in reader:
            records.append((end + 1, row))  # a quoted field may span lines: count them
            end = reader.line_num
    except csv.Error as e:
        raise UserError(f"line {reader.line_num} of {path.name} is not readable CSV: {e}") from None
    if not records:
        raise UserError(f"CSV file is empty. Received: dataset.path={str(path)!r}")
    header = [h.strip() for h in records[0][1]]
    twice = next((h for i, h in enumerate(header) if h in header[:i]), None)
    if twice is not None:
        raise UserError(f"column {twice!r} appears twice in the header of {path.name}; rename one")
    body, lines = [], []
    for number, row in records[1:]:
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise UserError(
                f"line {number} of {path.name} has {len(row)} fields; the header has {len(header)}"
            )
        body.append(row)
        lines.append(number)
    if not body:
        raise UserError(
            f"{path.name} has a header but no data rows. Received: dataset.path={str(path)!r}"
        )
    return header, body, lines


def _is_missing(value: str) -> bool:
    if value in MISSING_CELLS:
        return True
    try:
        return math.isnan(float(value))  # NAN, -nan, Nan...
    except ValueError:
        return False


def _not_finite(value: str) -> bool:
    """A missing cell or an infinite number (a cell of text is neither)."""
    try:
        return not math.isfinite(float(value))
    except ValueError:
        return value in MISSING_CELLS


def _numbers(values, column, lines, path):
    """The values as floats (NaN where missing), or None for a text column (no value is a
    number).

    Raises:
        UserError: a column of numbers holds a value that is not one.
    """
    numbers, text = [], []
    for i, v in enumerate(values):
        if _is_missing(v):
            numbers.append(float("nan"))
            continue
        try:
            numbers.append(float(v))
        except ValueError:
            numbers.append(float("nan"))
            text.append(i)
    present = sum(not _is_missing(v) for v in values)
    if text and len(text) == present:
        return None
    if text:
        i = text[0]
        raise UserError(
            f"feature column {column!r} holds numbers and the non-numeric value {values[i]!r} "
            f"on line {lines[i]} of {path.name}; correct it, or leave the column out of "
            "dataset.features"
        )
    return numbers


def _check_missing(column, values, lines, path, role):
    missing = [i for i, v in enumerate(values) if _is_missing(v)]
    if missing:
        first = missing[0]
        raise UserError(
            f"column {column!r} ({role}) of {path.name} has {len(missing)} missing value(s), "
            f"the first {values[first] or 'an empty cell'!r} on line {lines[first]}; set "
            "dataset.missing=drop to drop rows with missing cells"
            + (
                ", or dataset.missing=mean to fill numbers with the training mean"
                if role == "a feature"
                else ""
            )
        )


def encode_rows(data: dict, header: list[str], rows: list[list[str]], source: str):
    """A csv run's model inputs for new rows of a CSV file (``framework.predict``), float32,
    encoded as ``data["inputs"]`` records (``build_csv`` writes it): ``columns`` (each
    ``{"name"}``, or ``{"name", "categories"}`` for a text column one-hot encoded over its
    categories), then optionally ``fill`` (the training means that replace missing numbers) and
    ``scaler`` (``mean`` and ``scale`` of each encoded column). A note names a text column's
    value that training never saw.

    Raises:
        UserError: a column the model needs is missing, a number is not one, or a number is
            missing or infinite where the run had no means to fill it with.
    """
    import numpy as np

    inputs = data["inputs"]
    needed = [column["name"] for column in inputs["columns"]]
    absent = [name for name in needed if name not in header]
    if absent:
        raise UserError(
            f"{source} has no column {absent[0]!r}; the model needs: {', '.join(needed)}"
        )
    blocks, owners = [], []  # owners: the column each encoded column comes from
    for column in inputs["columns"]:
        at = header.index(column["name"])
        cells = [row[at].strip() if at < len(row) else "" for row in rows]
        if "categories" in column:  # an unknown or missing category: all zeros, as in training
            blocks.append(
                np.array([[c == k for k in column["categories"]] for c in cells], np.float64)
            )
            _note_unknown_categories(column, cells, source)
            owners += [column["name"]] * len(column["categories"])
            continue
        blocks.append(
            np.array([[_row_number(c, column["name"], i, source)] for i, c in enumerate(cells)])
        )
        owners.append(column["name"])
    x = np.concatenate(blocks, axis=1)
    if not np.isfinite(x).all():
        if "fill" not in inputs:
            row, col = map(int, np.argwhere(~np.isfinite(x))[0])
            if np.isinf(x[row, col]):
                raise UserError(
                    f"row {row + 1} of {source} holds an infinite number in column "
                    f"{owners[col]!r}; the model takes finite numbers, and the run "
                    "did not fill missing or infinite ones (only "
                    "dataset.missing=mean does), so correct it"
                )
            raise UserError(
                f"row {row + 1} of {source} has no value in column {owners[col]!r}; "
                "the run did not fill missing numbers (only dataset.missing=mean "
                "does), so fill it in"
            )
        # As in training: dataset.missing=mean filled infinite numbers as it filled missing ones.
        x = np.where(np.isfinite(x), x, np.asarray(inputs["fill"]))
    if "scaler" in inputs:
        x = (x - np.asarray(inputs["scaler"]["mean"])) / np.asarray(inputs["scaler"]["scale"])
    return x.astype(np.float32)


def _row_number(cell: str, column: str, index: int, source: str) -> float:
    if cell in MISSING_CELLS:
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        raise UserError(
            f"column {column!r} of {source} holds {cell!r} on row {index + 1}; the "
            "model takes numbers there"
        ) from None
    return value  # NaN spellings count as missing cells; infinite numbers stay infinite


def _note_unknown_categories(column: dict, cells: list[str], source: str):
    """Prints one note naming a text column's first value that training never saw (encoded as
    none of its categories, all zeros, as a missing cell is)."""
    unknown = [
        i for i, c in enumerate(cells) if c not in column["categories"] and c not in MISSING_CELLS
    ]
    if unknown:
        first = unknown[0]
        more = f" and {len(unknown) - 1} more row(s)" if len(unknown) > 1 else ""
        print(
            f"note: column {column['name']!r} of {source} holds {cells[first]!r} on row "
            f"{first + 1}{more}, a category training never saw (it knows "
            f"{', '.join(column['categories'])}): predicted as none of them"
        )


@hookimpl
def register_datasets(register):
    # The bundled datasets' tasks are theirs; a CSV file's columns decide its own.
    register("iris", build_iris, IrisConfig(), gives=FEATURES, task="classification")
    register("wine", build_wine, SplitConfig(), gives=FEATURES, task="classification")
    register(
        "breast_cancer", build_breast_cancer, SplitConfig(), gives=FEATURES, task="classification"
    )
    register("diabetes", build_diabetes, SplitConfig(), gives=FEATURES, task="regression")
    register("csv", build_csv, CsvConfig(), gives=FEATURES, rows=encode_rows)
