"""Errors that are the user's to fix (one line, exit code 2), and a run stopped by a signal."""

import signal


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
