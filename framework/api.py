"""The public API for plugins: everything a plugin may import from the framework.

A plugin module implements the hooks of ``framework.hookspecs`` with ``@hookimpl`` and is
advertised through the ``framework.plugins`` entry-point group.
"""

import importlib

import pluggy

from framework.cli.messages import one_line_usage
from framework.deploy.images import IMAGE_EXTENSIONS, is_readable, load_image
from framework.errors import UserError
from framework.parts.contexts import (
    BINARY,
    MULTICLASS,
    Data,
    DataContext,
    ModelContext,
    Regularization,
    RunContext,
    class_probabilities,
)
from framework.parts.kinds import FEATURE_MAPS, FEATURES, IMAGES
from framework.parts.protocols import Protocol, Round
from framework.parts.ranges import Form, setting
from framework.parts.tasks import Targets, Task, encode_targets
from framework.parts.tracking import FAILED, FINISHED, KILLED, TrackedRun, Tracker
from framework.runtime.backend import require_tensorflow
from framework.runtime.epoch_order import shuffle_each_epoch

hookimpl = pluggy.HookimplMarker("framework")

# A task's helpers for its evaluation, imported when first used (a plugin module is imported for
# --help too, which imports no NumPy): import them inside a method.
_ON_FIRST_USE = {
    "is_one_hot": ("framework.run.evaluation", "is_one_hot"),
    "predict_split": ("framework.run.evaluation", "predict_split"),
    "split_arrays": ("framework.run.evaluation", "split_arrays"),
}


def __getattr__(name):
    if name in _ON_FIRST_USE:
        module, attr = _ON_FIRST_USE[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BINARY",
    "IMAGES",
    "IMAGE_EXTENSIONS",
    "KILLED",
    "MULTICLASS",
    "Data",
    "DataContext",
    "FAILED",
    "FINISHED",
    "Form",
    "FEATURES",
    "FEATURE_MAPS",
    "ModelContext",
    "Protocol",
    "Regularization",
    "Round",
    "RunContext",
    "Targets",
    "Task",
    "TrackedRun",
    "Tracker",
    "UserError",
    "class_probabilities",
    "encode_targets",
    "hookimpl",
    "is_one_hot",
    "is_readable",
    "load_image",
    "one_line_usage",
    "predict_split",
    "require_tensorflow",
    "setting",
    "shuffle_each_epoch",
    "split_arrays",
]
