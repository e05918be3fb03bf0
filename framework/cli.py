"""Turns errors the user can fix into one line on stderr and exit code 2."""

import contextlib
import os
import sys

from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from framework.errors import UserError
from framework.registry import REGISTRIES

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
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, bad = error.missing_cfg_file.rpartition("/")
        options = error.options if error.options is not None else _group_options(group)
        return f"unknown {group or 'config'} {bad!r}; accepted: {', '.join(sorted(options))}"
    # Hydra and OmegaConf chain the precise cause (e.g. a wrong type) under a general message.
    cause = error.__cause__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    if text.endswith(":") and len(lines) > 1:  # Hydra puts the detail on the next line
        text = f"{text} {lines[1]}"
    if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
        text = f"{text.rstrip('.')}: {str(cause).strip().splitlines()[0]}"
    return text


def plain_text(docstring: str) -> str:
    """A module docstring as --help shows it: without reST's double backticks."""
    return docstring.replace("``", "").strip()


def _group_options(group: str) -> list[str]:
    if group in REGISTRIES:
        return REGISTRIES[group].names()
    hydra = GlobalHydra.instance()
    return hydra.config_loader().get_group_options(group) if hydra.is_initialized() else []
