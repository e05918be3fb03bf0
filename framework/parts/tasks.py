"""Tasks: what a model predicts (classes, numbers, labels) and everything that follows from it.

A task is a part like the others, registered with the ``register_tasks`` hook and selected with
``task=<name>``: it owns the output layer, the loss, the metrics logged per epoch, how targets
are encoded and prepared (and undone), evaluation, the report's plots and lines, and the default
objective. The core asks the run's task and never branches on the kind of target itself.

``task=auto`` (the default) takes the task the dataset's targets were encoded for; a dataset
that reads raw target columns (a CSV file) has them encoded with ``encode_targets``, which under
``auto`` gives them to the first task that takes them (``Task.takes_targets``, asked in
``Task.auto_order``), and says so in one line.
"""

from dataclasses import dataclass
from typing import Any

from framework.errors import UserError
from framework.parts.objective import Objective
from framework.parts.ranges import as_typed

AUTO = "auto"


@dataclass
class Targets:
    """Target columns encoded for a task.

    Args:
        y: one row per example: class indices (classification), or one column per target.
        names: the class names in index order (class labels), else the target columns'.
        task: the task they are encoded for (``Data.targets_for``); None for class labels,
            which every classifier takes.
        stratify: whether splits should keep ``y``'s proportions (class labels).
    """

    y: Any
    names: list[str]
    task: str | None
    stratify: bool = False


class Task:
    """The base class of tasks; a plugin subclasses it and registers a builder ``build(cfg) ->
    Task`` (the class itself will do) with ``register_tasks``.

    Class attributes:
        kinds: what ``metrics.json``'s ``data.task`` says of this task's runs, and what
            ``Data.task`` is for data encoded for it.
        metric_names: the scores, besides the loss, that each epoch logs (history.csv, with
            ``val_`` twins) and each stage keeps; the first is the sweep summary's headline.
        default_objective: what a sweep or a search optimizes when ``trainer.objective`` is
            null.
        minimized: the scores (of ``loss`` and ``metric_names``) that are better small; None:
            told by their names (losses and errors: ``loss``, ``mae``, ``mse``, ``rmse``...).
        auto: whether ``task=auto`` may choose it, for the data it fits and the raw target
            columns it ``takes_targets``; False: it runs when ``task=<its name>`` asks for it.
        auto_order: where ``task=auto`` asks it among the others, lowest first (ties in name
            order): a task that takes what a later one would take too comes first.
        weighs_classes: whether ``trainer.class_weight`` applies: one class per example, as
            integer labels or one-hot rows of ``Data.class_names`` (Keras's
            ``fit(class_weight=...)`` weighs each example by the class its label says).
    """

    kinds: tuple[str, ...] = ()
    metric_names: tuple[str, ...] = ()
    default_objective: str = "val_loss"
    minimized: tuple[str, ...] | None = None
    auto: bool = False
    auto_order: int = 50
    weighs_classes: bool = False

    def __init__(self, cfg):
        self.cfg = cfg

    @property
    def name(self) -> str:
        return self.cfg.name

    def objective(self, name: str) -> Objective:
        """The objective ``name`` (one of ``objectives``), with the direction this task gives
        it (``minimized``)."""
        return Objective.named(name, self.minimized)

    @property
    def objectives(self) -> tuple[str, ...]:
        """The accepted ``trainer.objective`` values: each score on validation, then on train."""
        names = ("loss", *self.metric_names)
        return tuple(f"val_{m}" for m in names) + names

    def encode(self, columns: dict[str, list[str]], source: str) -> Targets:
        """Encodes raw target columns (text cells, by column name) for this task.

        Raises:
            UserError: the columns do not fit the task; the message names the column and value.
        """
        raise UserError(f"task {self.name!r} cannot take target columns from {source}")

    def takes_targets(self, columns: dict[str, list[str]]) -> str | None:
        """Whether ``task=auto`` gives it these raw target columns (text cells, by column name):
        None where it does not take them, else why it does, in a few words for a note (empty
        where the values leave no doubt)."""
        return None

    def fits(self, data) -> bool:
        """Whether a dataset's targets suit the task (its ``Data.task`` is one of ``kinds``)."""
        return data.task in self.kinds

    def prepare(self, data, source: str):
        """The data as the model trains on it (e.g. targets standardized); ``data`` unchanged by
        default. ``source`` names the dataset for messages."""
        return data

    def output_layer(self, ctx, data, one_hot: bool, dtype):
        """The output layer, named ``predictions``, built with ``ctx.dense`` (``dtype``: its
        dtype policy)."""
        raise NotImplementedError

    def loss(self, data, one_hot: bool):
        """The loss ``compile`` gets."""
        raise NotImplementedError

    def metrics(self, data) -> list:
        """The metrics ``compile`` gets, named as ``metric_names``."""
        return []

    def saved_metrics(self, data) -> list | None:
        """The metrics ``model.keras`` is saved compiled with, where the training ones (custom
        classes) would keep plain ``keras.saving.load_model`` from loading it; None: as trained."""
        return None

    def evaluate(self, model, split, data, batch_size: int) -> dict:
        """Scores a model on a split (``(x, y)`` arrays or a ``tf.data`` dataset).

        Returns:
            ``loss``, the ``metric_names``, anything else for ``metrics.json``, and ``y_true``
            and ``y_pred`` (arrays, left out of ``metrics.json``) for ``report``.
        """
        raise NotImplementedError

    def report(self, run_dir, scores: dict, data, evaluated_on: str):
        """Draws the task's plots into the run directory from the last stage's ``scores`` by
        split."""

    def score_lines(self, metrics: dict) -> list[str]:
        """The console report's lines of scores (validation, then the evaluated split)."""
        raise NotImplementedError

    def data_info(self, data) -> dict:
        """What ``metrics.json``'s ``data`` block says of the targets."""
        return {"classes": list(data.class_names)}

    def predictions(self, outputs, data_info: dict) -> dict[str, list]:
        """The columns ``framework.predict`` writes for a model's outputs on new rows (values in
        the targets' own terms), by column name; ``data_info`` is the run's ``data`` block."""
        raise UserError(f"task {self.name!r} does not say how to show its predictions")

    def prediction_text(self, row: dict) -> str:
        """One row of ``predictions`` as ``framework.predict`` prints it after ``Prediction:``."""
        return ", ".join(f"{k}={v}" for k, v in row.items())

    def target_names(self, data_info: dict) -> list[str]:
        """The class or target names in a ``data`` block that ``data_info`` wrote."""
        return data_info["classes"]


def check_class_weight(task: Task, class_weight):
    """Refuses a ``trainer.class_weight`` other than null for a task that weighs no classes
    (``Task.weighs_classes``).

    Raises:
        UserError: the rule, the task and the value, in one line.
    """
    if class_weight is not None and not task.weighs_classes:
        raise UserError(
            f"trainer.class_weight is for a task of one class per example; task {task.name!r} "
            f"is not one (leave it null). Received: trainer.class_weight={as_typed(class_weight)}"
        )


def registered_task(name: str, cfg=None) -> Task:
    """The task registered as ``name``, built with ``cfg`` (its config node; None: its defaults).

    Raises:
        UnknownPartError: no such task; the message lists the known ones.
    """
    from framework.parts.registry import config_node, tasks

    part = tasks.get(name)
    task = part.build(cfg if cfg is not None else config_node(part))
    if not isinstance(task, Task):
        raise part.misbehaved(f"returned {type(task).__name__}, not a framework.api.Task")
    return task


def find_objective(name: str, task: str = AUTO) -> Objective:
    """The objective ``name`` as the task (under ``auto``: the first task that logs it) gives
    it; by its name alone where no task logs it."""
    tasks = [registered_task(task)] if task != AUTO else [t for t in _all_tasks() if t.auto]
    owner = next((t for t in tasks if name in t.objectives), None)
    return owner.objective(name) if owner else Objective.named(name)


def all_objectives() -> tuple[str, ...]:
    """The objectives of every registered task, in the tasks' order."""
    found = []
    for name in _task_names():
        found += [o for o in registered_task(name).objectives if o not in found]
    return tuple(found)


def dataset_task(name: str | None) -> str | None:
    """The task a registered dataset declares its targets are for (``register(...,
    task=...)``), known before its data loads; None where its data decides (a CSV file) or it
    is not a registered dataset."""
    from framework.parts.registry import datasets

    return datasets.get(name).task if name in datasets else None


def task_of_run(metrics: dict) -> Task:
    """The task (with its default settings) that a finished run's ``metrics.json`` was written
    by: ``data.task_name`` where the run recorded it, else the one ``task=auto`` takes for its
    ``data.task``.

    Raises:
        UserError: no registered task writes such runs.
    """
    from framework.parts.contexts import BINARY, MULTICLASS

    data = metrics["data"]
    if "task_name" in data:
        return registered_task(data["task_name"])
    kind = data.get("task") or (BINARY if len(data.get("classes", ())) == 2 else MULTICLASS)
    task = next((t for t in _auto_tasks() if kind in t.kinds), None)
    if task is None:
        raise UserError(
            f"no registered task writes runs of {kind!r}; known tasks: "
            f"{', '.join(_task_names())} (is the plugin that wrote it installed?)"
        )
    return task


def recorded_name(task: Task, data) -> dict:
    """What ``metrics.json``'s ``data`` block records of the run's task beside ``data.task``:
    its name, where ``task=auto`` would not take it for such data (a third party's)."""
    auto = next((t for t in _auto_tasks() if t.fits(data)), None)
    return {} if auto is not None and auto.name == task.name else {"task_name": task.name}


def run_task(cfg, data) -> Task:
    """The run's task: ``task=<name>`` as configured, or under ``auto`` the first ``Task.auto``
    task, in ``Task.auto_order``, that fits the dataset's targets.

    Raises:
        UserError: the chosen task does not fit the dataset; the message names those that do.
    """
    name = cfg.task.name
    source = f"dataset {cfg.dataset.name!r}"
    if name != AUTO:
        task = registered_task(name, cfg.task)
        if not task.fits(data):
            fitting = [t.name for t in _all_tasks() if t.fits(data)]
            raise UserError(
                f"task {name!r} does not fit {source}, whose targets are "
                f"{data.task}; accepted: {', '.join(fitting) or 'none'}"
            )
        return task
    task = next((t for t in _auto_tasks() if t.fits(data)), None)
    if task is None:
        raise UserError(
            f"task=auto finds no task for {source}, whose targets are {data.task}; "
            f"choose one with task=: {', '.join(_task_names())}"
        )
    return task


def encode_targets(requested: str, columns: dict[str, list[str]], source: str) -> Targets:
    """Encodes raw target columns for the run's task, choosing it under ``auto``.

    Under ``auto``: the first task, in ``Task.auto_order``, whose ``takes_targets`` takes the
    columns; a choice the values do not make plain is said in one line.

    Args:
        requested: the run's task (``DataContext.task``), or ``auto``.
        columns: the target columns' cells as text, by column name, in order.
        source: what the columns come from, for messages (a file name).

    Returns:
        ``Targets``: ``y``, ``names`` (for ``Data.class_names``), ``task`` (for
        ``Data.targets_for``) and whether to stratify the splits.

    Raises:
        UserError: the columns fit the task in no way; the message says what would.
    """
    if requested != AUTO:
        return registered_task(requested).encode(columns, source)
    taken = ((task, task.takes_targets(columns)) for task in _auto_tasks())
    task, why = next(((task, why) for task, why in taken if why is not None), (None, None))
    if task is None:
        raise UserError(
            f"task=auto finds no task that takes the target columns of {source} "
            f"({', '.join(columns)}); choose one with task=: {', '.join(_task_names())}"
        )
    targets = task.encode(columns, source)
    if why:
        others = " or ".join(
            f"task={n}" for n in _task_names() if n != task.name and _encodes(n, columns, source)
        )
        print(
            f"note: task {task.name}: {why}"
            + (f" (choose another with {others})" if others else "")
        )
    return targets


def _encodes(name: str, columns, source: str) -> bool:
    """Whether the task ``name`` takes these target columns."""
    try:
        registered_task(name).encode(columns, source)
    except UserError:
        return False
    return True


def _auto_tasks() -> list[Task]:
    """The tasks ``task=auto`` may choose, in the order it asks them."""
    return sorted((t for t in _all_tasks() if t.auto), key=lambda t: t.auto_order)


def _all_tasks() -> list[Task]:
    return [registered_task(name) for name in _task_names()]


def _task_names() -> list[str]:
    from framework.parts.registry import tasks

    return tasks.names()
