"""The state of a run directory: finished (it has metrics.json), failed (FAILED), or neither."""

import csv
import io
import os
from pathlib import Path

from framework.errors import UserError

# Marks a run that stopped with an error; a finished run has metrics.json instead.
FAILED = "FAILED"


def shown(path: Path) -> Path:
    """A path as printed for the user: relative to the working directory when inside it."""
    path = Path(path).absolute()
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def finished_run_check(run_dir: Path):
    """Raises UserError if ``run_dir`` holds a finished run (it has metrics.json)."""
    if (run_dir / "metrics.json").exists():
        raise UserError(
            f"{run_dir} already holds a finished run; choose another directory "
            "(hydra.run.dir=...)"
        )


def record_config(directory: Path, config: str) -> bool:
    """Keeps ``config`` (a config's YAML) as ``directory/config.yaml``, for a run that may be
    continued there later.

    Returns:
        False, keeping nothing, where the directory holds another config.
    """
    saved = directory / "config.yaml"
    if saved.is_file() and saved.read_text() != config:
        return False
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(saved, config)
    return True


def write_atomic(path: Path, text: str):
    """Writes a file so that readers see the old content or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # writers in parallel jobs apart
    tmp.write_text(text)
    os.replace(tmp, path)


def write_csv_atomic(path: Path, header: list[str], rows):
    """Writes a CSV file (a header, then rows of values) as ``write_atomic`` does."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    write_atomic(path, out.getvalue())


def mark_failed(run_dir: Path, message: str):
    if run_dir.is_dir():
        write_atomic(run_dir / FAILED, message + "\n")
