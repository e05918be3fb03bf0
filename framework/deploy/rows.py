"""New rows of a CSV file to predict: the text cells under its header, which the run's dataset
turns into its model's inputs (its ``rows`` reader, ``framework.hookspecs.register_datasets``).
"""

import csv
from pathlib import Path

from framework.errors import UserError


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
