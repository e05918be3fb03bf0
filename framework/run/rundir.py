"""The state of a run directory: finished (it has metrics.json), failed (FAILED), or neither."""

import contextlib
import csv
import fcntl
import io
import os
import signal
import sys
from pathlib import Path

from framework.errors import DirectoryTaken, Stopped, UserError, stop_behind

# A finished run's record (framework.run.record); it is written last, so it marks the run
# finished.
METRICS = "metrics.json"
# A run's scores per epoch, one row each (a keras-tuner trial's too, in its trial dir).
HISTORY = "history.csv"
# Marks a run that stopped with an error; a finished run has METRICS instead.
FAILED = "FAILED"
# Locked by the process that runs in the directory, for as long as it runs.
LOCK = ".lock"

_held_locks: dict[Path, int] = {}  # directory -> the open file holding its lock


def shown(path: Path) -> Path:
    """A path as printed for the user: relative to the working directory when inside it."""
    path = Path(path).absolute()
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def cannot_write(folder: Path) -> str | None:
    """Why no file can be created in an existing ``folder`` (the system's words), or None.

    The one test of writability: a file is created and deleted there (``os.access`` misjudges
    root, ACLs and read-only mounts).
    """
    probe = Path(folder) / f".write_probe.{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as e:
        return e.strerror or str(e)
    return None


def make_dir(directory: Path, key: str):
    """Creates an output directory, or says in one line why it cannot be.

    Args:
        directory: the directory.
        key: the setting that chose it, named in a refusal.

    Raises:
        UserError: the path, or one of its parents, is a file or cannot be written.
    """
    if directory.exists() and not directory.is_dir():
        raise UserError(
            f"{key}={shown(directory)} is a file, not a directory; choose another "
            f"directory ({key}=...)"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        why = e.strerror
    else:
        why = cannot_write(directory)
    if why:
        raise UserError(
            f"cannot write into {key}={shown(directory)}: {why}; choose a "
            f"directory you can write to ({key}=...)"
        )


def finished_run_check(run_dir: Path):
    """Raises DirectoryTaken if ``run_dir`` holds a finished run (it has metrics.json)."""
    if (run_dir / METRICS).exists():
        raise DirectoryTaken(
            f"{run_dir} already holds a finished run; choose another directory (hydra.run.dir=...)"
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
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; a failed write's part, deleted


def write_csv_atomic(path: Path, header: list[str], rows):
    """Writes a CSV file (a header, then rows of values) as ``write_atomic`` does."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    write_atomic(path, out.getvalue())


def failure(error: BaseException) -> str:
    """What FAILED says of the error that stopped a run."""
    stopped = stop_behind(error)
    if stopped is not None:
        return str(stopped)  # stopped by SIGTERM
    if isinstance(error, KeyboardInterrupt):  # Python's own SIGINT handler (a sweep's worker)
        return str(Stopped(signal.SIGINT))
    return f"{type(error).__name__}: {error}"


def mark_failed(run_dir: Path, message: str):
    """Writes FAILED into a run dir, if it can be written (what failed may be the dir), and
    unless it holds a finished run's record: a signal after metrics.json (as the run's tracker
    uploads its files) stops the process, not the finished run."""
    try:
        if run_dir.is_dir() and not (run_dir / METRICS).exists():
            write_atomic(run_dir / FAILED, message + "\n")
    except OSError:
        pass  # the error itself is reported; a rerun clears or rewrites FAILED


def hold_lock(directory: Path, setting: str = "hydra.run.dir") -> bool:
    """Locks ``directory`` for this process (an ``flock`` on its ``.lock`` file, released by the
    system when the process ends, however it ends).

    Args:
        directory: the directory.
        setting: the setting that chose it, named in a refusal.

    Returns:
        True if it was locked now, False if this process already held it.

    Raises:
        UserError: another running process holds it (its pid is named), or the directory
            cannot be written.
    """
    key = Path(directory).resolve()
    if key in _held_locks:
        return False
    make_dir(Path(directory), setting)
    fd = os.open(key / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DirectoryTaken(
            f"{shown(directory)} is in use by another running process "
            f"(pid {pid}); wait for it to end, or choose another directory "
            f"({setting}=...)"
        ) from None
    except OSError as e:  # a file system without locks (some network mounts): run unguarded
        os.close(fd)
        print(
            f"warning: {shown(directory)} cannot be locked ({e.strerror}); another process "
            "given the same directory would not be refused",
            file=sys.stderr,
        )
        return False
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    except OSError:
        pass  # the pid is for the message of a refused process; the lock holds without it
    _held_locks[key] = fd
    return True


@contextlib.contextmanager
def locked(directory: Path):
    """Holds the directory's lock for the body, unless this process already holds it (then it
    keeps holding it after)."""
    took = hold_lock(directory)
    try:
        yield
    finally:
        if took:
            os.close(_held_locks.pop(Path(directory).resolve()))


@contextlib.contextmanager
def running_in(run_dir: Path):
    """Holds a run dir for the body: refused if it holds a finished run, locked, its FAILED
    deleted; if the body raises, FAILED says why (the error, or the signal that stopped it).

    Raises:
        UserError: the directory holds a finished run, or another process runs in it.
    """
    run_dir = Path(run_dir)
    finished_run_check(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with locked(run_dir):
        finished_run_check(run_dir)  # again: another process may have finished it meanwhile
        (run_dir / FAILED).unlink(missing_ok=True)
        try:
            yield
        except BaseException as e:
            mark_failed(run_dir, failure(e))
            raise
