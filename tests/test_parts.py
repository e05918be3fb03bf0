"""Each regularizer and callback does what it says inside a real (short) run."""

import csv

import keras
import pytest

from framework.run.train import train

QUICK = ["experiment=iris_binary", "trainer.epochs=2", "trainer.verbose=0"]


def load(run_dir):
    return keras.saving.load_model(run_dir / "model.keras")


def dense_layers(model):
    found = []
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Dense):
            found.append(layer)
    return found


def test_dropout_follows_every_hidden_layer(compose, tmp_path):
    train(compose(*QUICK, "regularizer=[dropout]", "regularizer.dropout.rate=0.25"), tmp_path)
    backbone = load(tmp_path).get_layer("mlp")
    kinds = [type(layer).__name__ for layer in backbone.layers[1:]]
    assert kinds == ["Dense", "Dropout", "Dense", "Dropout"]
    assert all(layer.rate == 0.25 for layer in backbone.layers if hasattr(layer, "rate"))


@pytest.mark.parametrize(
    "regs, l1, l2",
    [
        ("[l1]", 0.01, 0.0),
        ("[l2]", 0.0, 0.01),
        ("[l1_l2]", 0.01, 0.01),
        ("[l1,l2]", 0.01, 0.01),
    ],
)
def test_kernel_penalties_reach_every_dense_layer(compose, tmp_path, regs, l1, l2):
    train(compose(*QUICK, f"regularizer={regs}"), tmp_path)
    layers = dense_layers(load(tmp_path))
    assert len(layers) == 3  # 8, 4 and the output layer
    for layer in layers:
        cfg = layer.kernel_regularizer.get_config()
        assert cfg.get("l1", 0.0) == pytest.approx(l1) and cfg.get("l2", 0.0) == pytest.approx(l2)


def test_no_regularizer_means_no_penalty(compose, tmp_path):
    train(compose(*QUICK), tmp_path)
    assert all(layer.kernel_regularizer is None for layer in dense_layers(load(tmp_path)))


def test_every_callback_writes_inside_the_run_dir(compose, tmp_path):
    callbacks = (
        "early_stopping,model_checkpoint,tensorboard,csv_logger,reduce_lr_on_plateau,"
        "terminate_on_nan,backup_and_restore"
    )
    train(compose(*QUICK, f"callbacks=[{callbacks}]"), tmp_path)
    assert (tmp_path / "checkpoints" / "best.keras").stat().st_size > 0
    assert list((tmp_path / "tensorboard" / "train").rglob("events.out.tfevents.*"))
    log = (tmp_path / "training_log.csv").read_text().splitlines()
    assert log[0].startswith("epoch") and len(log) == 3
    assert not (tmp_path / "backup" / "train").exists() or not any(
        (tmp_path / "backup" / "train").iterdir()
    )  # removed after a finished fit


def test_early_stopping_stops_and_restores_the_best_weights(compose, tmp_path):
    metrics = train(
        compose(
            "experiment=wine",
            "trainer.epochs=200",
            "trainer.verbose=0",
            "callbacks=[early_stopping]",
            "callbacks.early_stopping.patience=2",
            "callbacks.early_stopping.min_delta=0",
            "optimizer.learning_rate=0.05",
        ),
        tmp_path,
    )
    assert metrics["epochs"] < 200
    # Scored with the best epoch's weights (val_loss is watched), not the last epoch's.
    val_losses = [
        float(row["val_loss"]) for row in csv.DictReader((tmp_path / "history.csv").open())
    ]
    assert val_losses[-1] > min(val_losses)
    assert metrics["validation"]["loss"] == pytest.approx(min(val_losses), rel=1e-5)


def _returns_a_number(cfg, input_shape, ctx):
    return 3


def _raises(cfg, input_shape, ctx):
    raise ValueError("units must be positive\nsecond line")


def _orthogonal(cfg):
    from framework.api import Regularization

    return Regularization(kernel=keras.regularizers.OrthogonalRegularizer(0.01))


@pytest.mark.parametrize(
    "group, builder, selection, message",
    [
        (
            "backbone",
            _returns_a_number,
            "backbone=bad",
            "backbone 'bad' of plugin 'third_party' returned int 3, not a keras.Model",
        ),
        (
            "backbone",
            _raises,
            "backbone=bad",
            "backbone 'bad' of plugin 'third_party' failed: ValueError: units must be positive",
        ),
        (
            "regularizer",
            _orthogonal,
            "regularizer=[bad,l2]",
            "cannot combine the kernel regularizer OrthogonalRegularizer",
        ),
    ],
)
def test_a_misbehaving_plugin_is_named_in_one_line(
    compose, tmp_path, isolated_registries, group, builder, selection, message
):
    from framework.api import FEATURES
    from framework.cli.messages import one_line
    from framework.errors import UserError

    isolated_registries[group].register(
        "bad", builder, {}, provider="third_party", takes=FEATURES, gives=FEATURES
    )
    with pytest.raises(UserError) as refused:
        train(compose(*QUICK, selection), tmp_path)
    assert message in one_line(refused.value) and "\n" not in one_line(refused.value)
    assert (tmp_path / "FAILED").exists() and not (tmp_path / "metrics.json").exists()
