"""The public API for plugins: everything a plugin may import from the framework.

A plugin module implements the hooks of ``framework.hookspecs`` with ``@hookimpl`` and is
advertised through the ``framework.plugins`` entry-point group.
"""

import pluggy

from framework.contexts import (
    BINARY,
    MULTICLASS,
    Data,
    DataContext,
    ModelContext,
    Regularization,
    RunContext,
)
from framework.errors import UserError

hookimpl = pluggy.HookimplMarker("framework")

__all__ = [
    "BINARY",
    "MULTICLASS",
    "Data",
    "DataContext",
    "ModelContext",
    "Regularization",
    "RunContext",
    "UserError",
    "hookimpl",
]
