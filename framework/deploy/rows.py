"""New rows of a CSV file as a tabular run's model inputs, as its dataset recorded them.

A dataset that reads columns records, in ``metrics.json``'s ``data.inputs``, how it turned them
into the model's inputs: ``columns`` (each ``{"name"}``, or ``{"name", "categories"}`` for a
text column one-hot encoded over its categories), then optionally ``fill`` (the training means
that replace missing numbers) and ``scaler`` (``mean`` and ``scale`` of each encoded column).
"""

import csv
import math
from pathlib import Path

from framework.errors import UserError

# Cells that hold no value, in a CSV file read for training or for predictions.
MISSING_CELLS = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"})


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the non-blank rows of a CSV file.

    Raises:
        UserError: the file cannot be read as UTF-8 CSV, or holds no row.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            records = [row for row in csv.reader(f)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path} is not readable CSV text: {e}") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    if not records:
        raise UserError(f"{path} is empty; it needs a header row and rows to predict")
    header = [h.strip() for h in records[0]]
    rows = [row for row in records[1:] if any(cell.strip() for cell in row)]
    if not rows:
        raise UserError(f"{path} has a header but no rows to predict")
    return header, rows


def encode_rows(inputs: dict, header: list[str], rows: list[list[str]], source: str):
    """The model's inputs for ``rows``, float32, encoded as ``inputs`` records; a note names a
    text column's value that training never saw.

    Raises:
        UserError: a column the model needs is missing, a number is not one, or a number is
            missing or infinite where the run had no means to fill it with.
    """
    import numpy as np

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
            np.array([[_number(c, column["name"], i, source)] for i, c in enumerate(cells)])
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


def _number(cell: str, column: str, index: int, source: str) -> float:
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
