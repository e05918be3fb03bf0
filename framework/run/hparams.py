"""A sweep job's hyperparameters and scores for TensorBoard's HParams dashboard.

Each job writes them into ``<job dir>/tensorboard``, so ``tensorboard --logdir <sweep dir>`` shows
the whole sweep, one row per job: the settings the sweep varies, and the job's objective, its
validation scores and its test accuracy (as metrics). Written with TensorBoard's own summary
protos, without TensorFlow.
"""

import time
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from framework.run.record import RunRecord

LOG_DIR = "tensorboard"


def varied_settings(sweep_overrides: list[str], sweeper_params, job_overrides: list[str]) -> dict:
    """The job's values of the settings its sweep varies.

    Args:
        sweep_overrides: the sweep's command-line overrides (``a=1,2`` varies ``a``).
        sweeper_params: ``hydra.sweeper.params`` (the settings a config sweeps), or None.
        job_overrides: this job's own overrides (``a=2``).

    Returns:
        ``{setting: value}``, with int, float, bool or str values; all the job's overrides when
        the sweep's are unknown.
    """
    parser = OverridesParser.create()
    varied = {
        o.key_or_group for o in parser.parse_overrides(sweep_overrides) if o.is_sweep_override()
    } | set(sweeper_params or {})
    return {
        o.key_or_group: _hparam_value(o.value())
        for o in parser.parse_overrides(job_overrides)
        if o.key_or_group in varied or not varied
    }


def write_hparams(job_dir: Path, settings: dict, record: RunRecord):
    """Writes the job's settings and scores (its record) as a TensorBoard session."""
    # Here, not at the top: a sweep job's only, and TensorBoard's summary modules take ~0.1 s to
    # import (botocore with them), which a single run would pay for nothing.
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.plugins.hparams import summary_v2 as hparams_summary
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    objective = record.objective
    scores = {
        objective["name"]: objective["value"],
        **{f"val_{k}": v for k, v in record.validation.items()},
    }
    if record.evaluated_on == "test":
        scores[f"test_{record.headline}"] = record.test[record.headline]
    writer = EventFileWriter(str(job_dir / LOG_DIR))
    now = time.time()
    writer.add_event(
        Event(
            wall_time=now,
            step=0,
            summary=hparams_summary.hparams_pb(settings, trial_id=job_dir.name),
        )
    )
    for tag, value in scores.items():
        writer.add_event(Event(wall_time=now, step=0, summary=scalar_pb(tag, value)))
    writer.close()


def sweep_overrides(sweep_dir: Path) -> list[str]:
    """The command-line overrides the sweep in ``sweep_dir`` was started with."""
    saved = sweep_dir / "multirun.yaml"
    if not saved.is_file():
        return []
    return list(OmegaConf.select(OmegaConf.load(saved), "hydra.overrides.task", default=[]))


def _hparam_value(value):
    return value if isinstance(value, (bool, int, float, str)) else str(value)
