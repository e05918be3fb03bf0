"""Turns errors the user can fix into one line on stderr and exit code 2."""

import contextlib
import os
import sys

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from framework.errors import UserError

USAGE_ERROR = 2


@contextlib.contextmanager
def report_errors():
    """Runs the body; a UserError or a Hydra composition error exits 2 with one line.

    If the user set HYDRA_FULL_ERROR=1, errors propagate with their traceback instead.
    """
    try:
        yield
    except (UserError, HydraException, OmegaConfBaseException) as e:
        if os.environ.get("FRAMEWORK_FULL_ERROR"):
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def one_line(error: BaseException) -> str:
    """A one-line message for an error, with the accepted values where Hydra listed them."""
    if isinstance(error, MissingConfigException) and error.options is not None:
        group = error.config_name.rpartition("/")[0] if error.config_name else ""
        bad = error.config_name.rpartition("/")[2] if error.config_name else "?"
        accepted = ", ".join(sorted(error.options))
        return f"unknown {group or 'config'} {bad!r}; accepted: {accepted}"
    # Hydra and OmegaConf chain the precise cause (e.g. a wrong type) under a general message.
    cause = error.__cause__
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
        text = f"{text.rstrip('.')}: {str(cause).strip().splitlines()[0]}"
    return text
