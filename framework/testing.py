"""A test kit for plugin authors: prove a registered part works with the core, from the plugin's
own pytest suite::

    from framework.testing import check_part

    def test_resmlp_works_with_the_framework(tmp_path):
        check_part("backbone", "resmlp", tmp_path)

It composes the part with the core's defaults (on a tiny bundled dataset of the kind it takes),
checks that the ranges its config declares refuse bad values in one line, trains a real run
for one epoch, then reloads the saved model (Keras's safe mode) and checks that it predicts what
the run scored.
"""

from pathlib import Path

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from framework.cli.messages import one_line
from framework.config.preflight import CONFIG_NAME, check_settings, choose_parts, parts_by_input
from framework.config.schema import setup_configs
from framework.errors import UserError
from framework.parts.kinds import FEATURES
from framework.parts.ranges import as_typed, field_ranges, value_outside
from framework.parts.registry import REGISTRIES

# Small images and one epoch: a check, not a benchmark.
QUICK = ["trainer.epochs=1", "trainer.verbose=0"]


def check_part(group: str, name: str, workdir, overrides=()) -> dict:
    """Proves that a registered part composes, refuses bad settings, trains, saves and reloads.

    Args:
        group: the part's group (``dataset``, ``backbone``, ``head``, ``regularizer``,
            ``callbacks``).
        name: the name it is registered under.
        workdir: an empty directory to run in (pytest's ``tmp_path``).
        overrides: more overrides, e.g. ``["backbone.weights=null"]`` for a backbone that
            downloads weights by default.

    Returns:
        The run's metrics (``metrics.json``).

    Raises:
        AssertionError: what went wrong, in words.
    """
    setup_configs()
    part = REGISTRIES[group].get(name)
    args = [*_fitting_parts(group, part), _selection(group, name), *QUICK, *overrides]
    cfg = compose(args)
    try:
        check_settings(cfg)
    except UserError as e:
        raise AssertionError(f"the defaults of {group} {name!r} are refused: {e}") from None
    node = cfg[group][name] if REGISTRIES[group].multiple else cfg[group]
    key_prefix = f"{group}.{name}" if REGISTRIES[group].multiple else group
    for key, accepted in field_ranges(OmegaConf.get_type(node)).items():
        _check_refused(args, f"{key_prefix}.{key}", value_outside(accepted, node[key]))
    run_dir = Path(workdir) / "run"
    from framework.run.train import train

    metrics = train(cfg, run_dir)
    _check_reloaded_model(cfg, run_dir, metrics)
    return metrics


def compose(args: list[str], return_hydra_config: bool = False):
    """The config ``python -m framework *args`` runs (the parts the core picks included), with
    Hydra's own node under ``hydra`` if asked."""
    setup_configs()
    extra, _ = choose_parts(list(args))
    GlobalHydra.instance().clear()
    try:
        with hydra.initialize_config_module(version_base="1.3", config_module="framework.conf"):
            return hydra.compose(
                CONFIG_NAME, overrides=[*args, *extra], return_hydra_config=return_hydra_config
            )
    finally:
        GlobalHydra.instance().clear()


def _selection(group: str, name: str) -> str:
    return f"{group}=[{name}]" if REGISTRIES[group].multiple else f"{group}={name}"


def _fitting_parts(group: str, part) -> list[str]:
    """Overrides choosing a tiny dataset (and a backbone) the part fits with, from the table
    the core picks parts by (``conf/parts_by_input.yaml``)."""
    table = parts_by_input()
    takes = part.takes or (FEATURES,)
    if group == "dataset":
        return []
    if group == "head":  # a backbone of the table that gives what the head takes
        backbones = [REGISTRIES["backbone"].get(name) for name in table["backbone"].values()]
        backbone = next(b for kind in takes for b in backbones if b.gives == kind)
        return [f"dataset={table['dataset'][backbone.takes[0]]}", f"backbone={backbone.name}"]
    kind = next(k for k in takes if k in table["dataset"])
    return [f"dataset={table['dataset'][kind]}"]


def _check_refused(args: list[str], key: str, bad):
    shown = as_typed(bad)
    try:
        check_settings(compose([*args, f"{key}={shown}"]))
    except (UserError, HydraException, OmegaConfBaseException) as e:  # a range's, or a type's
        message = one_line(e)
        if key not in message and str(shown) not in message:
            raise AssertionError(f"{key}={shown} is refused without naming it: {message}") from e
        return
    raise AssertionError(f"{key}={shown} is outside its declared range, yet accepted")


def _check_reloaded_model(cfg, run_dir: Path, metrics: dict):
    """The saved model, reloaded in Keras's safe mode, scores what the run scored."""
    import keras

    from framework.run.train import load_task_data

    try:
        model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    except Exception as e:
        raise AssertionError(
            f"model.keras does not reload in safe mode: {type(e).__name__}: {e} (custom layers "
            "must be registered with @keras.saving.register_keras_serializable)"
        ) from e
    task, data = load_task_data(cfg)
    split = data.test if data.test is not None else data.validation
    scored = task.evaluate(model, split, data, cfg.trainer.batch_size)
    run_scored = metrics["test"]
    for name in ("loss", *task.metric_names):
        if abs(scored[name] - run_scored[name]) > 1e-4 * max(1.0, abs(run_scored[name])):
            raise AssertionError(
                f"the reloaded model scores {name} {scored[name]:.6f} on "
                f"{metrics['evaluated_on']}; the run scored {run_scored[name]:.6f}"
            )
