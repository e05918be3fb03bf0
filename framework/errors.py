"""Errors that are the user's to fix: reported as one line, with exit code 2."""


class UserError(Exception):
    """Bad input (a config value, a path, a dataset): printed as one line, exit code 2."""


class UnknownPartError(UserError, KeyError):
    """A part name that no plugin registered."""

    def __str__(self):  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class PluginError(UserError):
    """A plugin that cannot be loaded or registers something invalid."""
