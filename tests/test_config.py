import importlib.resources

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from framework.parts.kinds import FEATURE_MAPS, IMAGES
from framework.parts.registry import REGISTRIES

from conftest import run_importing

EXPERIMENTS = sorted(
    p.name.removesuffix(".yaml")
    for p in importlib.resources.files("framework.experiments").iterdir()
    if p.name.endswith(".yaml")
)


def test_default_config_composes_with_a_part_for_every_group(compose):
    cfg = compose()
    for group in ("dataset", "backbone", "head"):
        assert cfg[group].name in REGISTRIES[group]
    assert cfg.optimizer.name == "adam" and cfg.seed == 42


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_with_registered_parts(compose, experiment):
    cfg = compose(f"experiment={experiment}")
    for group in ("dataset", "backbone", "head"):
        assert cfg[group].name in REGISTRIES[group]
    for group in ("regularizer", "callbacks"):
        for name, node in cfg[group].items():
            assert node.name == name and name in REGISTRIES[group]
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


def test_experiments_set_what_the_curriculum_says(compose):
    binary = compose("experiment=iris_binary")
    assert (binary.dataset.target, list(binary.backbone.units), binary.backbone.activation) == (
        "setosa",
        [8, 4],
        "relu",
    )
    assert (binary.trainer.epochs, binary.trainer.batch_size, binary.optimizer.name) == (
        50,
        10,
        "adam",
    )
    assert list(compose("experiment=iris_deep").backbone.units) == [16, 8, 4]
    assert compose("experiment=iris_tanh").backbone.activation == "tanh"
    multi = compose("experiment=iris_multiclass")
    assert multi.dataset.target == "species" and multi.dataset.one_hot
    assert compose("experiment=iris_dropout").regularizer.dropout.rate == 0.3
    both = compose("experiment=wine_dropout_l2")
    assert set(both.regularizer) == {"dropout", "l2"} and both.regularizer.l2.factor == 0.01
    callbacks = compose("experiment=wine_callbacks").callbacks
    assert set(callbacks) == {"early_stopping", "model_checkpoint", "tensorboard"}
    assert callbacks.early_stopping.patience == 5
    assert callbacks.model_checkpoint.monitor == "val_accuracy"


@pytest.mark.parametrize("group", ["dataset", "backbone", "head"])
def test_every_registered_part_is_selectable_by_name(compose, group):
    for name in REGISTRIES[group].names():
        takes = REGISTRIES[group].get(name).takes or ()
        # With data it fits: a features dataset for a part that takes features only.
        context = ["dataset=wine"] if takes and not {IMAGES, FEATURE_MAPS} & set(takes) else []
        assert compose(*context, f"{group}={name}")[group].name == name


@pytest.mark.parametrize("group", ["regularizer", "callbacks"])
def test_list_groups_take_any_number_of_parts(compose, group):
    names = REGISTRIES[group].names()
    cfg = compose(f"{group}=[{','.join(names)}]")
    assert sorted(cfg[group]) == names
    assert compose()[group] == {}


def test_command_line_overrides_win_over_experiments(compose):
    cfg = compose("experiment=iris_binary", "trainer.epochs=3", "backbone.units=[5]")
    assert cfg.trainer.epochs == 3 and list(cfg.backbone.units) == [5]


@pytest.mark.parametrize("override", ["trainer.epochz=3", "backbone.unitz=[1]", "seedz=1"])
def test_unknown_keys_are_refused(compose, override):
    with pytest.raises(ConfigCompositionException):
        compose(override)


@pytest.mark.parametrize(
    "overrides",
    [
        ("trainer.epochs=abc",),
        ("experiment=iris_binary", "backbone.units=[a]"),
        ("seed=x",),
        ("dataset=wine", "dataset.test_size=big"),
    ],
)
def test_wrong_types_are_refused(compose, overrides):
    with pytest.raises(ConfigCompositionException) as refused:
        compose(*overrides)
    # For its type, not as an unknown key.
    assert isinstance(refused.value.__cause__, ValidationError), refused.value.__cause__
    key = overrides[-1].partition("=")[0]
    assert OmegaConf.select(compose(*overrides[:-1]), key) is not None  # a key the config has


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--cfg", "job"],
        ["--info"],
        ["--cfg", "job", "trainer.backend=jax"],
        ["--cfg", "job", "tracker=mlflow"],
    ],
)
def test_config_only_commands_never_import_a_backend(tmp_path, args):
    result, imported = run_importing("-m", "framework", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "hydra" in imported
    assert not {"tensorflow", "keras", "jax", "mlflow"} & imported


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.epochs=0"], "trainer.epochs=0 is out of range; accepted: >= 1"),
        (["trainer.epochs=-1"], "trainer.epochs=-1 is out of range; accepted: >= 1"),
        (
            ["optimizer.learning_rate=-0.5"],
            "optimizer.learning_rate=-0.5 is out of range; accepted: > 0",
        ),
        (
            ["experiment=iris_binary", "trainer.batch_size=0"],
            "trainer.batch_size=0 is out of range; accepted: >= 1",
        ),
        (["seed=-1"], "seed=-1 is out of range; accepted: >= 0 and <= 4294967295"),
        (["head.dropout=1.5"], "head.dropout=1.5 is out of range; accepted: >= 0 and < 1"),
        (
            ["experiment=iris_binary", "backbone.units=[0]"],
            "backbone.units=[0] is out of range; accepted: each entry >= 1",
        ),
        (["trainer.stages=[{epochs:0}]"], "trainer.stages.0.epochs=0 is out of range"),
        (
            ["regularizer=[dropout]", "regularizer.dropout.rate=1"],
            "regularizer.dropout.rate=1.0 is out of range; accepted: >= 0 and < 1",
        ),
        (
            ["callbacks=[early_stopping]", "callbacks.early_stopping.mode=up"],
            "unknown callbacks.early_stopping.mode 'up'; accepted: auto, min, max",
        ),
        (["trainer.verbose=3"], "unknown trainer.verbose 3; accepted: 0, 1, 2"),
        # A choice or a {name: number} map.
        (
            ["trainer.class_weight=even"],
            "unknown trainer.class_weight 'even'; accepted: balanced, or {name: number}, "
            "each number > 0",
        ),
        (
            ["trainer.class_weight={a:1,b:-2}"],
            "trainer.class_weight={a:1,b:-2} is out of range; accepted: balanced, or "
            "{name: number}, each number > 0",
        ),
        (["trainer.class_weight={a:null}"], "trainer.class_weight={a:null} is out of range"),
        (["trainer.class_weight=[balanced]"], "trainer.class_weight=[balanced] is out of range"),
        # Ranges a plugin's builder used to check again, or was alone to check: declared.
        (
            ["regularizer=[augment]", "regularizer.augment.rotation=1.5"],
            "regularizer.augment.rotation=1.5 is out of range; accepted: >= 0 and <= 1",
        ),
        (
            ["dataset.interpolation=cubic"],
            "unknown dataset.interpolation 'cubic'; accepted: bilinear, nearest, bicubic, area",
        ),
        (
            ["dataset=image_folder", "dataset.path=x", "dataset.interpolation=cubic"],
            "unknown dataset.interpolation 'cubic'; accepted: bilinear, nearest, bicubic, area",
        ),
    ],
)
def test_settings_out_of_their_declared_range_are_refused_by_key_value_and_range(
    compose, overrides, message
):
    from framework.config.preflight import check_settings
    from framework.errors import UserError

    with pytest.raises(UserError) as refused:
        check_settings(compose(*overrides))
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.epoch=5"], "unknown key 'trainer.epoch'; accepted: epochs, batch_size"),
        (
            ["experiment=iris_binary", "head.dropout=0.5"],
            "unknown key 'head.dropout'; accepted: name, units, activation",
        ),
        (
            ["backbone=efficientnet", "backbone.size=b9", "backbone.weights=null"],
            "backbone.size must be one of b0, b1, b2, b3, b4, b5, b6, b7. Received: size='b9'",
        ),
        (
            ["dataset=csv", "dataset.target=prix€"],
            "cannot read the override 'dataset.target=prix€'; quote a value",
        ),
        (
            ["trainer.batch_size=choice()"],
            "cannot read the override 'trainer.batch_size=choice()': empty choice is not legal",
        ),
    ],
)
def test_config_errors_name_the_accepted_values(cli, overrides, message):
    from conftest import assert_one_line_error

    assert_one_line_error(cli(*overrides), message)


def test_the_optimizer_table_gives_the_choices_the_group_and_the_keras_class(compose):
    import keras

    from framework.config.optimizers import OPTIMIZERS, make_optimizer
    from framework.config.schema import OptimizerConfig, StageConfig, config_groups
    from framework.parts.ranges import field_ranges

    for schema in (OptimizerConfig, StageConfig):
        name = "name" if schema is OptimizerConfig else "optimizer"
        assert field_ranges(schema)[name].choices == tuple(OPTIMIZERS)
    assert f"optimizer: {', '.join(sorted(OPTIMIZERS))}" in config_groups().splitlines()
    assert not importlib.resources.files("framework.conf").joinpath("optimizer").is_dir()
    for name, entry in OPTIMIZERS.items():
        assert compose(f"optimizer={name}").optimizer.name == name
        optimizer = make_optimizer(name)
        assert type(optimizer) is getattr(keras.optimizers, entry.keras_class)
        assert float(optimizer.learning_rate) == pytest.approx(entry.learning_rate)
        if entry.takes_momentum:
            assert optimizer.momentum == pytest.approx(entry.momentum)


@pytest.mark.parametrize(
    "value",
    [None, True, 3, 0.001, 1e-05, "adam", "???", "true", "null", "two words", "it's", [64, 32]]
    + [{"choice": [[32], [64, 32]]}, ["a b", None]],
)
def test_a_value_is_shown_as_typed_and_hydra_reads_it_back(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from framework.parts.ranges import as_typed

    typed = as_typed(value)
    assert OverridesParser.create().parse_override(f"key={typed}").value() == value
    if isinstance(value, list):
        assert ", " not in typed  # one shell word: [64,32]
