"""Predictions written for a user: one image printed, a folder or a CSV file's rows written as a
CSV file; what can be checked before a model loads is checked first."""

import sys
from collections import Counter
from pathlib import Path

from framework.deploy.images import IMAGE_EXTENSIONS, is_image_file, is_readable
from framework.deploy.predictors import BATCH_SIZE, ImagePredictor
from framework.deploy.run_files import finished_record, load_run_model
from framework.errors import UserError
from framework.run.rundir import cannot_write, write_csv_atomic

# Predictions of a CSV file's rows printed, at most; all are written.
ROWS_SHOWN = 10


def predict_image(predictor: ImagePredictor, path: Path, top: int):
    """Prints the prediction for one image (and the ``top`` best classes when top > 1)."""
    check_image(path)
    answer = image_answer(predictor.class_names, predictor.probabilities([path])[0], top)
    print(f"Prediction: {answer['text']}")
    if top > 1:
        width = max(len(name) for name in predictor.class_names)
        for rank, best in enumerate(answer["top"], start=1):
            print(f"  {rank}. {best['class']:<{width}}  {best['confidence']:.1%}")


def image_answer(class_names: list[str], probs, top: int) -> dict:
    """One image's prediction from its class probabilities.

    Args:
        class_names: the class names in label order.
        probs: the image's probability of each class (a NumPy vector).
        top: how many of the best classes to list.

    Returns:
        ``text`` (as ``framework.predict`` prints it after ``Prediction:``), the best
        ``class`` and its ``confidence``, and ``top``: the ``top`` best classes, best first,
        each a ``class`` and its ``confidence``.
    """
    order = probs.argsort()[::-1]
    best = order[0]
    return {
        "text": f"{class_names[best]} (confidence: {probs[best]:.1%})",
        "class": class_names[best],
        "confidence": float(probs[best]),
        "top": [{"class": class_names[i], "confidence": float(probs[i])} for i in order[:top]],
    }


def check_rows_file(path: Path, output: Path, overwrite: bool):
    """Raises UserError unless ``path`` is a file and ``output`` can be written apart from it."""
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    if output.resolve() == path.resolve():
        raise UserError(f"--output {output} is the file of rows itself; choose another --output")
    check_output(output, overwrite)


def predict_rows(run_dir: Path, path: Path, output: Path, overwrite: bool, unsafe: bool):
    """Predicts every row of a CSV file with a run trained on a CSV file; prints the first
    predictions and writes ``output``: the rows with the task's prediction columns."""
    from framework.deploy.rows import read_rows
    from framework.parts.tasks import task_of_run

    if run_dir.suffix == ".tflite":
        raise UserError(
            f"{run_dir}: a .tflite model predicts images; give the run's directory "
            "to predict rows of a CSV file"
        )
    record = finished_record(run_dir)
    dataset = rows_dataset(run_dir, record)
    header, rows = read_rows(path)
    x = dataset.read_rows(record.data, header, rows, path.name)
    task = task_of_run(record.as_dict())
    outputs = load_run_model(run_dir, unsafe).predict(x, batch_size=BATCH_SIZE, verbose=0)
    predicted = task.predictions(outputs, record.data)
    for i in range(min(len(rows), ROWS_SHOWN)):
        text = task.prediction_text({name: values[i] for name, values in predicted.items()})
        print(f"Prediction: {text}" if len(rows) == 1 else f"Row {i + 1}: {text}")
    if len(rows) > ROWS_SHOWN:
        print(f"... ({len(rows) - ROWS_SHOWN} more in {output})")
    columns = [f"predicted_{name}" if name in header else name for name in predicted]
    try:
        write_csv_atomic(
            output,
            [*header, *columns],
            ([*row, *(values[i] for values in predicted.values())] for i, row in enumerate(rows)),
        )
    except OSError as e:
        raise UserError(f"cannot write --output {output}: {e.strerror}") from None
    print(f"Predicted {len(rows)} row(s) of {path}")
    print(f"Wrote:     {output}")


def rows_dataset(run_dir: Path, record):
    """The registered dataset whose ``rows`` reader turns new rows into a run's model inputs.

    Args:
        run_dir: the run's directory, for the message.
        record: its ``RunRecord``.

    Raises:
        UserError: the run was not trained on a dataset that reads rows (a CSV file).
    """
    from framework.parts.loading import load_plugins
    from framework.parts.registry import datasets

    load_plugins()
    name = record.data.get("name")
    if name not in datasets or datasets.get(name).rows is None:
        readers = " or ".join(f"dataset={p.name}" for p in datasets if p.rows is not None)
        raise UserError(
            f"{run_dir} was not trained on a CSV file ({readers}), so it records "
            "no columns to read new rows with"
        )
    return datasets.get(name)


def check_image(path: Path):
    if not path.exists():
        raise UserError(f"no such file or folder: {path}")
    if not is_image_file(path):
        raise UserError(
            f"{path} is not an image; accepted: {', '.join(IMAGE_EXTENSIONS)} files or a folder"
        )
    if not is_readable(path):
        raise UserError(f"{path} cannot be read as an image (corrupt or truncated)")


def check_output(output: Path, overwrite: bool):
    """Raises UserError unless ``output`` can be written as a new file (or, with ``overwrite``,
    replace an existing one)."""
    if output.is_dir():
        raise UserError(
            f"--output {output} is a folder; give a file name, e.g. "
            f"--output {output / 'predictions.csv'}"
        )
    if output.exists() and not overwrite:
        raise UserError(f"{output} exists; choose another --output or pass --overwrite")
    writable_folder_check(
        output.parent, f"--output {output}", "choose another --output", create=False
    )


def writable_folder_check(folder: Path, target: str, remedy: str, create: bool = True):
    """Raises UserError unless files can be created in ``folder``, or with ``create``, in the
    nearest folder above it that exists (where the missing ones would be created).

    Args:
        folder: where a file is to be written.
        target: what is to be written, for the message (e.g. ``"--output x.csv"``).
        remedy: what the user can do, for the message.
        create: whether the missing folders will be created.
    """
    existing = folder
    while create and not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.exists():
        raise UserError(
            f"cannot write {target}: there is no folder {existing}; create it or {remedy}"
        )
    if not existing.is_dir():
        raise UserError(f"cannot write {target}: {existing} is a file, not a folder; {remedy}")
    why = cannot_write(existing)
    if why:
        raise UserError(
            f"cannot write {target}: the folder {existing} is read-only for you; {remedy}"
        )


def predict_folder(predictor: ImagePredictor, folder: Path, output: Path, overwrite: bool):
    """Classifies every image below ``folder``; writes ``output`` and prints a summary."""
    check_output(output, overwrite)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
    readable = [p for p in files if is_readable(p)]
    skipped = sorted(set(files) - set(readable))
    if skipped:
        shown = ", ".join(str(p.relative_to(folder)) for p in skipped[:5])
        print(f"warning: skipped {len(skipped)} unreadable image(s): {shown}", file=sys.stderr)
    if not readable:
        raise UserError(f"no readable images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    probs = predictor.probabilities(readable)
    names = predictor.class_names
    predicted = [names[i] for i in probs.argmax(axis=-1)]
    # Images in folders named after the classes (a validation layout) carry their true class.
    truth = [p.parent.name if p.parent.name in names else None for p in readable]
    labelled = all(t is not None for t in truth)
    try:
        write_csv_atomic(
            output,
            ["path", "class", "confidence"] + (["true_class"] if labelled else []),
            (
                [path.relative_to(folder), cls, f"{p:.6f}"] + ([t] if labelled else [])
                for path, cls, p, t in zip(readable, predicted, probs.max(axis=-1), truth)
            ),
        )
    except OSError as e:  # checked before, but e.g. a full disk shows only now
        raise UserError(f"cannot write --output {output}: {e.strerror}") from None
    counts = Counter(predicted)
    print(f"Predicted {len(readable)} images in {folder}")
    print("By class:  " + ", ".join(f"{name} {counts[name]}" for name in names))
    if labelled:
        correct = sum(p == t for p, t in zip(predicted, truth))
        print(
            f"Accuracy:  {correct / len(readable):.4f} against the folder names "
            f"({correct}/{len(readable)})"
        )
    print(f"Wrote:     {output}")
