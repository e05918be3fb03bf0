"""Errors that are the user's to fix (one line, exit code 2), and a run stopped by a signal."""

import contextlib
import signal
import sys


class UserError(Exception):
    """Bad input (a config value, a path, a dataset): printed as one line, exit code 2."""


class UnknownPartError(UserError, KeyError):
    """A part name that no plugin registered."""

    def __str__(self):  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class DirectoryTaken(UserError):
    """An output directory that holds a finished run or sweep, or that another process runs in:
    refused without a word written into it (not even FAILED)."""


class PluginError(UserError):
    """A plugin that cannot be loaded or registers something invalid."""


def damaged(run_dir, name: str, why: str) -> UserError:
    """The error for a run's file that cannot be read: which file, why, and what to do."""
    return UserError(
        f"{name} in {run_dir} is damaged ({why}); re-run training into a new directory"
    )


class Stopped(KeyboardInterrupt):
    """A run stopped by a signal: Ctrl-C (SIGINT), or SIGTERM from ``kill``, ``timeout``, Slurm
    or ``docker stop``.

    Args:
        signum: the signal's number.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    def __str__(self):
        return f"stopped by {signal.Signals(self.signum).name}"

    @property
    def exit_code(self) -> int:
        """The shell's exit status for a command a signal stopped: 128 + its number."""
        return 128 + self.signum


class Refused(BaseException):
    """An error raised where Hydra would only warn of an Exception and go on (its callbacks),
    carried out to the command's error report.

    Args:
        error: the error.
    """

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def stop_behind(error: BaseException) -> Stopped | None:
    """The ``Stopped`` an error was raised from or while handling, if any.

    A signal's ``Stopped`` raised inside OmegaConf can come out as another error (a flag
    half-restored in a ``finally``: "'NoneType' object has no attribute
    '_invalidate_flags_cache'"), which Hydra wraps in turn (a ``ConfigCompositionException`` as
    a sweep composes its next job): still a stop, not bad input.
    """
    pending, seen = [error], set()
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        if isinstance(error, Stopped):
            return error
        seen.add(id(error))
        pending += [error.__cause__, error.__context__]
    return None


# A signal that came inside a signals_deferred() block, raised as it ends; and the last one
# this process received whose Stopped may have been lost (see raise_if_stopped).
_deferred = {"depth": 0, "signum": None}
_received = {"signum": None}


def stop(signum, frame):
    """The SIGINT and SIGTERM handler of ``python -m framework``: raises ``Stopped``, or keeps
    it for the end of a ``signals_deferred`` block."""
    if _deferred["depth"]:
        _deferred["signum"] = signum
        return
    _received["signum"] = signum
    raise Stopped(signum)


def raise_if_stopped():
    """Raises the ``Stopped`` of a signal this process received, once, if it came.

    Python runs a signal's handler wherever the main thread is, and ignores what it raises
    inside a garbage collector's callback or a ``__del__`` ("Exception ignored in:
    <function WeakKeyDictionary...>", as Keras frees a tuner's last trial): called at the
    moments a run moves on (an epoch, a trial, a job), this stops the command all the same.
    """
    signum, _received["signum"] = _received["signum"], None
    if signum is not None:
        raise Stopped(signum)


def unraisable_hook(unraisable):
    """``sys.unraisablehook`` of ``python -m framework``: a ``Stopped`` that Python ignored
    prints no traceback; ``raise_if_stopped`` raises it where the run moves on."""
    if not isinstance(unraisable.exc_value, Stopped):
        sys.__unraisablehook__(unraisable)


@contextlib.contextmanager
def signals_deferred():
    """Raises a Ctrl-C or SIGTERM that comes during the block only once it ends.

    Raised inside OmegaConf, ``Stopped`` can be replaced by an error of a half-restored flag in
    a ``finally``, which Hydra's callback wrapper then turns into a warning: a sweep went on as
    if never stopped. (A signal mask would not do: a signal goes to any thread that does not
    mask it, and its Python handler runs in the main thread wherever that is.)
    """
    _deferred["depth"] += 1
    try:
        yield
    finally:
        _deferred["depth"] -= 1
        if not _deferred["depth"] and _deferred["signum"] is not None:
            signum, _deferred["signum"] = _deferred["signum"], None
            raise Stopped(signum)
