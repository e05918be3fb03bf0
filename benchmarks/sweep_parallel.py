"""Wall time of a 4-job sweep run one job after another, and by joblib with 2 workers.

Runs the same Hydra multirun twice in one go (the session-44 CNN on generated shapes,
``backbone.filters`` over 4 values): once with Hydra's default launcher (jobs one after another
in one process) and once with ``hydra/launcher=joblib hydra.launcher.n_jobs=2``. Prints both wall
times and their ratio. Run::

    python benchmarks/sweep_parallel.py [--workers 2] [--epochs 3]

On a machine with as many cores as workers, each worker's TensorFlow gets fewer threads: the
gain comes from overlapping the jobs' serial parts (start-up, data, saving, plots).
"""

import argparse
import tempfile
from pathlib import Path

from sweep_timing import time_sweep


def sweep(workdir: Path, args, workers: int) -> float:
    """Runs the 4-job sweep in ``workdir``; returns its wall time in seconds."""
    launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={workers}"] if workers > 1 else []
    return time_sweep(
        workdir,
        [
            *launcher,
            "experiment=cnn_shapes",
            "dataset.samples_per_class=200",
            "backbone.filters=[16,32,64],[32,64,128],[16,32],[32,64]",
            f"trainer.epochs={args.epochs}",
            "trainer.verbose=0",
        ],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"4-job sweep (cnn_shapes, 600 images, {args.epochs} epochs per job)")
    with tempfile.TemporaryDirectory() as serial_dir, tempfile.TemporaryDirectory() as par_dir:
        serial = sweep(Path(serial_dir), args, 1)
        print(f"  one job after another:   {serial:7.1f} s")
        parallel = sweep(Path(par_dir), args, args.workers)
        print(f"  joblib, {args.workers} workers:       {parallel:7.1f} s")
    print(f"  speed-up: {serial / parallel:.2f}x")


if __name__ == "__main__":
    main()
