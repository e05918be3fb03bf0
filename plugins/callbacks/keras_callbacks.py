"""Keras callbacks, each writing (where it writes) inside the run directory."""

from dataclasses import dataclass

from framework.api import hookimpl, require_tensorflow, setting

MODES = ("auto", "min", "max")


@dataclass
class EarlyStoppingConfig:
    # The logged metric to watch: val_loss, val_accuracy, loss, accuracy.
    monitor: str = "val_loss"
    # Epochs without improvement before training stops.
    patience: int = setting(3, at_least=0)
    # The smallest change that counts as an improvement.
    min_delta: float = setting(0.0, at_least=0)
    # min, max, or auto (max for accuracies, min otherwise).
    mode: str = setting("auto", choices=MODES)
    # Keep the weights of the best epoch, not the last.
    restore_best_weights: bool = True


@dataclass
class ModelCheckpointConfig:
    # The logged metric that decides which epoch is best.
    monitor: str = "val_accuracy"
    # min, max, or auto.
    mode: str = setting("max", choices=MODES)
    # Save only when the monitored metric improves.
    save_best_only: bool = True
    # Inside the run dir; Keras 3 wants a .keras file (or .weights.h5 with save_weights_only).
    filename: str = "checkpoints/best.keras"
    # Save the weights alone (a .weights.h5 filename), not the whole model.
    save_weights_only: bool = False
    # 1: a line each time a checkpoint is saved.
    verbose: int = setting(0, choices=(0, 1))


@dataclass
class TensorBoardConfig:
    # Inside the run dir; view with: tensorboard --logdir <run dir>/tensorboard
    log_dir: str = "tensorboard"
    # Epochs between weight histograms; 0: none.
    histogram_freq: int = setting(0, at_least=0)


@dataclass
class CsvLoggerConfig:
    # Inside the run dir: one row per epoch with every logged metric.
    filename: str = "training_log.csv"


@dataclass
class ReduceLrConfig:
    # The logged metric to watch.
    monitor: str = "val_loss"
    # The learning rate is multiplied by this when the metric stalls.
    factor: float = setting(0.1, above=0, below=1)
    # Epochs without improvement before the learning rate drops.
    patience: int = setting(5, at_least=0)
    # The learning rate never drops below this.
    min_lr: float = setting(0.0, at_least=0)
    # min, max, or auto.
    mode: str = setting("auto", choices=MODES)


@dataclass
class BackupConfig:
    # Inside the run dir: the state a killed run resumes from when run again in the same dir.
    backup_dir: str = "backup"


@dataclass
class NoConfig:
    pass


def build_early_stopping(cfg, ctx):
    """Stop when the monitored metric stops improving (optionally restoring the best weights)."""
    import keras

    return keras.callbacks.EarlyStopping(
        monitor=cfg.monitor,
        patience=cfg.patience,
        min_delta=cfg.min_delta,
        mode=cfg.mode,
        restore_best_weights=cfg.restore_best_weights,
    )


def build_model_checkpoint(cfg, ctx):
    """Save the model whenever the monitored metric improves (best only by default)."""
    import keras

    path = ctx.run_dir / cfg.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    return keras.callbacks.ModelCheckpoint(
        str(path),
        monitor=cfg.monitor,
        mode=cfg.mode,
        save_best_only=cfg.save_best_only,
        save_weights_only=cfg.save_weights_only,
        verbose=cfg.verbose,
    )


def build_tensorboard(cfg, ctx):
    """TensorBoard logs (loss and metric curves, graphs) inside the run dir."""
    import keras

    require_tensorflow("the tensorboard callback")  # Keras writes its logs with tf.summary

    return keras.callbacks.TensorBoard(
        log_dir=str(ctx.run_dir / cfg.log_dir / ctx.stage), histogram_freq=cfg.histogram_freq
    )


def build_csv_logger(cfg, ctx):
    """Each epoch's metrics appended to a CSV file in the run dir."""
    import keras

    return keras.callbacks.CSVLogger(str(ctx.run_dir / cfg.filename), append=True)


def build_reduce_lr(cfg, ctx):
    """Divide the learning rate when the monitored metric plateaus."""
    import keras

    return keras.callbacks.ReduceLROnPlateau(
        monitor=cfg.monitor,
        factor=cfg.factor,
        patience=cfg.patience,
        min_lr=cfg.min_lr,
        mode=cfg.mode,
    )


def build_terminate_on_nan(cfg, ctx):
    """Stop training as soon as the loss is NaN."""
    import keras

    return keras.callbacks.TerminateOnNaN()


def build_backup_and_restore(cfg, ctx):
    """Back up training state each epoch so an interrupted run resumes where it stopped."""
    import keras

    return keras.callbacks.BackupAndRestore(str(ctx.run_dir / cfg.backup_dir / ctx.stage))


@hookimpl
def register_callbacks(register):
    register("early_stopping", build_early_stopping, EarlyStoppingConfig())
    register("model_checkpoint", build_model_checkpoint, ModelCheckpointConfig())
    register("tensorboard", build_tensorboard, TensorBoardConfig())
    register("csv_logger", build_csv_logger, CsvLoggerConfig())
    register("reduce_lr_on_plateau", build_reduce_lr, ReduceLrConfig())
    register("terminate_on_nan", build_terminate_on_nan, NoConfig())
    register("backup_and_restore", build_backup_and_restore, BackupConfig())
