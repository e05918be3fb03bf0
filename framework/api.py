"""The public API for plugins: everything a plugin may import from the framework.

A plugin module implements the hooks of ``framework.hookspecs`` with ``@hookimpl`` and is
advertised through the ``framework.plugins`` entry-point group.
"""

import pluggy

from framework.backend import require_tensorflow
from framework.cli import one_line_usage
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
from framework.kinds import FEATURE_MAPS, FEATURES, IMAGES
from framework.ranges import setting
from framework.images import IMAGE_EXTENSIONS, is_readable, load_image

hookimpl = pluggy.HookimplMarker("framework")

__all__ = [
    "BINARY",
    "IMAGES",
    "IMAGE_EXTENSIONS",
    "MULTICLASS",
    "Data",
    "DataContext",
    "FEATURES",
    "FEATURE_MAPS",
    "ModelContext",
    "Regularization",
    "RunContext",
    "UserError",
    "hookimpl",
    "is_readable",
    "load_image",
    "one_line_usage",
    "require_tensorflow",
    "setting",
]
