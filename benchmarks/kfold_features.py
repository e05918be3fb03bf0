"""Wall time of 5-fold over a frozen backbone's cached features beside one holdout run over the
same cache, side by side in one process::

    python benchmarks/kfold_features.py [--backbone mobilenetv2] [--size 96] [--folds 5]

Generated shapes images, a frozen backbone of random weights (``weights=null``, one head-only
stage): a first run fills the feature cache (not measured), then holdout runs and k-fold runs
read it, in turns (``--repeats`` of each: their medians are compared, as one run's time on a
small machine varies by a second). Each fold trains its head on the features cut for it; the
features are extracted once for all folds (features are per image), and each fold builds its
head alone. Prints both times and their ratio; the target: at most 1.5x.
"""

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed_run(overrides: list[str], run_dir: Path) -> float:
    """Seconds one run takes in this process (Keras imported already)."""
    from framework.run.train import train
    from framework.testing import compose

    cfg = compose([*overrides, "trainer.verbose=0", "trainer.checkpoint=false"])
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the runs' own reports
        train(cfg, run_dir)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--size", type=int, default=96, help="input side in pixels")
    parser.add_argument("--samples-per-class", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, in turns")
    args = parser.parse_args()
    from framework.parts.loading import load_plugins

    load_plugins()
    with tempfile.TemporaryDirectory() as tmp:
        common = [
            "dataset=shapes",
            f"dataset.samples_per_class={args.samples_per_class}",
            f"backbone={args.backbone}",
            "backbone.weights=null",
            f"backbone.input_size=[{args.size},{args.size}]",
            "head=gap_dense",
            f"trainer.stages=[{{name:head,epochs:{args.epochs},trainable:head}}]",
            f"trainer.feature_cache.dir={Path(tmp) / 'cache'}",
        ]
        timed_run(common, Path(tmp) / "fill")  # extracts the features into the cache
        holdouts, kfolds = [], []
        for repeat in range(args.repeats):
            holdouts.append(timed_run(common, Path(tmp) / f"holdout{repeat}"))
            kfolds.append(
                timed_run(
                    [*common, "protocol=kfold", f"protocol.folds={args.folds}"],
                    Path(tmp) / f"kfold{repeat}",
                )
            )
    holdout, kfold = statistics.median(holdouts), statistics.median(kfolds)
    print(
        f"{args.backbone} (weights null) at {args.size}x{args.size}, "
        f"{3 * args.samples_per_class} shapes images, a head of {args.epochs} epochs, "
        "over cached features"
    )
    rows = (("one holdout run:", holdout, holdouts), (f"{args.folds}-fold run:", kfold, kfolds))
    for name, median, times in rows:
        runs = ", ".join(f"{t:.1f}" for t in times)
        print(f"  {name:<20} {median:6.1f} s  (median of {runs})")
    print(f"  ratio: {kfold / holdout:.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()
