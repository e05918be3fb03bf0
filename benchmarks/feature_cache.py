"""Wall time of a head sweep over a frozen backbone, with and without the feature cache.

Runs the same 4-job Hydra multirun twice in one go (head.units=64,128,256,512, each job one
head-only stage on generated shapes): once training through the frozen backbone every epoch,
once with ``trainer.feature_cache`` on and an empty cache (so the first job pays for the
extraction, inside the measured time). Prints both wall times and their ratio. Run::

    python benchmarks/feature_cache.py [--backbone mobilenetv2] [--size 224] [--epochs 10]

The ratio grows with the cost of the backbone: each job also pays fixed costs that the cache
does not remove (building and saving the full model, tracing, plots), which weigh most at small
input sizes. On 2 CPU cores: 10.1x at 224x224 (about 16 minutes), 3.5x at 96x96.
"""

import argparse
import tempfile
from pathlib import Path

from sweep_timing import time_sweep


def sweep(workdir: Path, args, cache: bool) -> float:
    """Runs the 4-job sweep in ``workdir``; returns its wall time in seconds."""
    return time_sweep(
        workdir,
        [
            "dataset=shapes",
            f"dataset.samples_per_class={args.samples_per_class}",
            f"backbone={args.backbone}",
            *([f"backbone.weights={args.weights}"] if args.weights else []),
            *([f"backbone.input_size=[{args.size},{args.size}]"] if args.size else []),
            "head=gap_dense",
            "head.units=64,128,256,512",
            f"trainer.stages=[{{name:head,epochs:{args.epochs},trainable:head}}]",
            "trainer.verbose=0",
            f"trainer.feature_cache.enabled={str(cache).lower()}",
            f"trainer.feature_cache.dir={workdir / 'feature_cache'}",
        ],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument(
        "--weights",
        default="null",
        help="backbone.weights (imagenet needs the download; '' leaves it out)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="input side in pixels (default: the backbone's own, 224 for mobilenetv2)",
    )
    parser.add_argument("--samples-per-class", type=int, default=200)
    parser.add_argument(
        "--epochs",
        type=int,
        default=10,
        help="head epochs per job (the curriculum trains heads for 10)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("without", "with"):
            Path(tmp, name).mkdir()
        without = sweep(Path(tmp) / "without", args, cache=False)
        with_cache = sweep(Path(tmp) / "with", args, cache=True)
    size = f"{args.size}x{args.size}" if args.size else "its default input size"
    print(
        f"4-job head sweep over a frozen {args.backbone} at {size}, "
        f"{3 * args.samples_per_class} shapes images, {args.epochs} epochs per job"
    )
    print(f"  without the feature cache: {without:7.1f} s")
    print(f"  with the feature cache:    {with_cache:7.1f} s  (extraction included)")
    print(f"  speed-up: {without / with_cache:.2f}x")


if __name__ == "__main__":
    main()
