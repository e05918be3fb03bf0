"""A finished run's files read back: its record, the class names and input its config recorded,
its model (in Keras's safe mode unless asked)."""

import zipfile
import zlib
from pathlib import Path

from framework.cli.messages import one_line
from framework.errors import UserError, damaged
from framework.run.record import RunRecord, read_record
from framework.run.rundir import METRICS


def read_run(run_dir: Path, exporting: bool = False) -> tuple[list[str], str]:
    """The class names and the resize method of a finished run.

    Args:
        run_dir: the run's directory.
        exporting: for framework.export (which also exports a classifier of feature rows):
            its refusal of a run that does not classify speaks of exports, not images.

    Returns:
        ``(class_names, interpolation)``.

    Raises:
        UserError: the directory does not hold a finished run of a classifier, or its
            metrics.json or .hydra/config.yaml is damaged.
    """
    data = finished_record(run_dir).data
    if "classes" not in data and "task" in data:
        if exporting:
            raise UserError(
                f"{run_dir} is a {data['task']} run; framework.export "
                "exports runs that classify (the .json beside the model names "
                "their classes)"
            )
        raise UserError(
            f"{run_dir} is a {data['task']} run; images are for runs "
            "that classify them (framework.predict takes a CSV file of rows for a "
            "run on a CSV file)"
        )
    try:
        class_names = [str(name) for name in data["classes"]]
    except (KeyError, TypeError):
        raise damaged(run_dir, METRICS, "it names no data.classes") from None
    import yaml
    from omegaconf import DictConfig, OmegaConf

    config_path = run_dir / ".hydra" / "config.yaml"
    if not config_path.is_file():
        return class_names, "bilinear"
    try:
        config = OmegaConf.load(config_path)
    except (yaml.YAMLError, ValueError):
        raise damaged(run_dir, ".hydra/config.yaml", "not valid YAML") from None
    except OSError as e:
        raise UserError(f"cannot read {config_path}: {e.strerror}") from None
    if not isinstance(config, DictConfig):
        raise damaged(run_dir, ".hydra/config.yaml", "not a mapping of settings")
    dataset = config.get("dataset")
    interpolation = dataset.get("interpolation") if isinstance(dataset, DictConfig) else None
    return class_names, interpolation or "bilinear"


def finished_record(run_dir: Path) -> RunRecord:
    """A finished run's record.

    Raises:
        UserError: the directory does not hold a finished run, or its metrics.json is damaged.
    """
    record = read_record(run_dir) if (run_dir / "model.keras").is_file() else None
    if record is None:
        raise UserError(f"{run_dir} is not a finished run (it needs model.keras and {METRICS})")
    return record


def load_run_model(run_dir: Path, unsafe: bool = False):
    """A finished run's ``model.keras``, loaded in Keras's safe mode unless ``unsafe``.

    Safe mode refuses Python code stored in the file (a Lambda layer's function), which would
    run as the file loads.

    Args:
        run_dir: the run's directory.
        unsafe: load such code all the same (``safe_mode=False``): only for a trusted file.

    Returns:
        The Keras model.

    Raises:
        UserError: model.keras is damaged (e.g. truncated), or holds Python code and not unsafe.
    """
    path = run_dir / "model.keras"
    try:  # Keras calls a file that is no zip archive (a truncated one) "File not found"
        with zipfile.ZipFile(path) as archive:
            complete = "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        complete = False
    if not complete:
        raise damaged(run_dir, "model.keras", "not a readable Keras file")
    from framework.runtime.backend import import_backend

    keras = import_backend()
    try:
        # Predicting and exporting need no optimizer or loss; nor the training's compile
        # settings, which a model may not keep once reloaded (jit_compile=True on JAX for a
        # model with augmentation layers: Keras warns and drops it).
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:  # damaged inside the archive
        raise damaged(run_dir, "model.keras", f"not a readable Keras file: {one_line(e)}") from None
    except ValueError as e:
        if "safe_mode=False" not in str(e):
            raise
        raise UserError(
            f"{path} holds Python code (a Lambda layer) that would run as it loads, so "
            "safe mode refuses it; pass --unsafe to load it anyway, only if you trust "
            "where the file came from"
        ) from None
