"""framework.testing.check_part: the test kit plugin authors run in their own suites."""

import pytest

from framework.api import FEATURES, setting
from framework.testing import check_part


@pytest.mark.parametrize(
    "group, name", [("backbone", "mlp"), ("head", "gap_dense"), ("regularizer", "dropout")]
)
def test_built_in_parts_pass_the_kit(tmp_path, group, name):
    metrics = check_part(group, name, tmp_path)
    assert (tmp_path / "run" / "metrics.json").exists() and metrics["epochs"] == 1


def _lambda_backbone(cfg, input_shape, ctx):
    import keras

    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs))


def test_a_part_whose_model_does_not_reload_safely_fails_the_kit(isolated_registries, tmp_path):
    isolated_registries["backbone"].register(
        "doubler", _lambda_backbone, {}, provider="test", takes=FEATURES, gives=FEATURES
    )
    with pytest.raises(AssertionError, match="does not reload in safe mode"):
        check_part("backbone", "doubler", tmp_path)


def test_a_part_whose_defaults_break_its_own_ranges_fails_the_kit(isolated_registries, tmp_path):
    from dataclasses import dataclass

    @dataclass
    class Contradictory:
        width: int = setting(0, at_least=1)

    def build(cfg, input_shape, ctx):
        import keras

        inputs = keras.Input(shape=input_shape)
        return keras.Model(inputs, ctx.dense(cfg.width)(inputs))

    isolated_registries["backbone"].register(
        "contradictory", build, Contradictory(), provider="test", takes=FEATURES, gives=FEATURES
    )
    with pytest.raises(
        AssertionError,
        match="the defaults of backbone 'contradictory' are "
        "refused: backbone.width=0 is out of range",
    ):
        check_part("backbone", "contradictory", tmp_path)


def test_the_kit_takes_its_datasets_and_backbones_from_the_parts_by_input_table(monkeypatch):
    import framework.testing
    from framework.config.preflight import parts_by_input
    from framework.parts.registry import REGISTRIES

    table = parts_by_input()
    table["dataset"]["features"] = "wine"
    table["backbone"]["images"] = "mobilenetv2"  # gives feature maps in simple_cnn's stead
    monkeypatch.setattr(framework.testing, "parts_by_input", lambda: table)
    fitting = framework.testing._fitting_parts
    assert fitting("regularizer", REGISTRIES["regularizer"].get("dropout")) == ["dataset=wine"]
    assert fitting("head", REGISTRIES["head"].get("gap_dense")) == [
        "dataset=digits",
        "backbone=mobilenetv2",
    ]
