"""Turns errors the user can fix into one line on stderr and exit code 2."""

import argparse
import contextlib
import dataclasses
import errno
import os
import re
import sys

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from framework.config.source import group_options
from framework.errors import Refused, UserError, stop_behind

USAGE_ERROR = 2
# A fault the user did not type (a disk that fills, a run dir that became unwritable).
FAULT = 1


@contextlib.contextmanager
def report_errors():
    """Runs the body; a UserError or a Hydra composition error exits 2 with one line.

    If the user set HYDRA_FULL_ERROR=1, errors propagate with their traceback instead.
    """
    try:
        yield
    except (UserError, HydraException, OmegaConfBaseException, Refused, OSError) as e:
        stopped = stop_behind(e)
        if stopped is not None:
            raise stopped from None  # a signal, not bad input: the command stops as signalled
        if isinstance(e, BrokenPipeError):
            raise  # the reader of the output left: a stop, for the command to end as one
        if isinstance(e, Refused) and not isinstance(
            e.error, (UserError, HydraException, OmegaConfBaseException, OSError)
        ):
            raise e.error  # not bad input but a bug: its traceback
        if os.environ.get("FRAMEWORK_FULL_ERROR"):
            raise
        print(f"error: {one_line(e.error if isinstance(e, Refused) else e)}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def one_line(error: BaseException) -> str:
    """A one-line message for an error, with the accepted values where Hydra listed them."""
    if isinstance(error, OSError) and error.strerror:  # what the system refused, and where
        if error.errno == errno.ENAMETOOLONG and error.filename:  # a key or a dir, as a name
            name = max(str(error.filename).split(os.sep), key=len)
            return (
                f"{error.strerror}: a name of {len(name)} characters, over the system's "
                f"limit, {name!r}"
            )
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, bad = error.missing_cfg_file.rpartition("/")
        options = error.options if error.options is not None else group_options(group)
        return f"unknown {group or 'config'} {bad!r}; accepted: {', '.join(sorted(options))}"
    # Hydra and OmegaConf chain the precise cause (e.g. a wrong type) under a general message.
    cause = error.__cause__
    if isinstance(cause, UserError):  # raised inside a resolver or a callback: already one line
        return one_line(cause)
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and _fields(cause.object_type):
        return f"unknown key {cause.full_key!r}; accepted: {', '.join(_fields(cause.object_type))}"
    # A sweep function that parsed but refused its arguments: choice(), interval(1)...
    evaluated = re.match(
        r"Error parsing override '(.*)'\n\w+ while evaluating '.*?': (.*)", str(error)
    )
    if isinstance(error, OverrideParseException) and evaluated:
        return (
            f"cannot read the override {evaluated[1]!r}: {evaluated[2]} "
            "(https://hydra.cc/docs/advanced/override_grammar/extended)"
        )
    if isinstance(error, OverrideParseException):
        override = str(error).splitlines()[0].partition(": ")[2] or str(error)
        return (
            f"cannot read the override {override!r}; quote a value that holds spaces or "
            "characters other than letters, digits and _-+./, e.g. 'dataset.target=\"prix €\"' "
            "(https://hydra.cc/docs/advanced/override_grammar/basic)"
        )
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    # A resolver's own UserError (e.g. efficientnet_input_size), wrapped by OmegaConf.
    text = text.removeprefix(f"{UserError.__name__} raised while resolving interpolation: ")
    if text.endswith(":") and len(lines) > 1:  # Hydra puts the detail on the next line
        text = f"{text} {lines[1]}"
    if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
        text = f"{text.rstrip('.')}: {str(cause).strip().splitlines()[0]}"
    return text


def one_line_usage(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Makes a parser report a bad argument as ``error: <what>`` on one line, exit code 2, as
    every other error is (argparse prints its usage block first). ``--help`` is unchanged."""

    def error(message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(USAGE_ERROR)

    parser.error = error
    return parser


def _fields(cls) -> list[str]:
    """The keys a typed config node accepts (a dataclass's fields), else []."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return []
    return [f.name for f in dataclasses.fields(cls)]


def plain_text(docstring: str) -> str:
    """A module docstring as --help shows it: without reST's double backticks."""
    return docstring.replace("``", "").strip()
