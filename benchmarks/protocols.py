"""How much a run's objective moves with its seed under the holdout and under 5-fold, side by side
in one run::

    python benchmarks/protocols.py [--seeds 20] [--folds 5] [--epochs N] [--experiments wine]

For each of ``wine`` and ``iris_multiclass``, and each of ``--seeds`` seeds s (the run's
``seed`` and the dataset's ``split_seed``: the weights, the data order and which examples
validate and test all change), the objective a sweep would rank the run by (validation
accuracy): the holdout's, from its one validation split (30-36 examples), and k-fold's, the mean
over the folds of train+validation. Prints the spread (std) of each across the seeds and their
ratio; the target: k-fold's std at most half the holdout's (ratio <= 0.5).
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

EXPERIMENTS = ("wine", "iris_multiclass")


def objective(overrides: list[str], run_dir: Path) -> float:
    """The objective value of a run (the mean over the models of a protocol's)."""
    from framework.run.train import train
    from framework.testing import compose

    cfg = compose([*overrides, "trainer.verbose=0", "trainer.checkpoint=false"])
    with contextlib.redirect_stdout(io.StringIO()):  # the runs' own reports
        return train(cfg, run_dir)["objective"]["value"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="default: the experiment's")
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    args = parser.parse_args()
    from framework.parts.loading import load_plugins

    load_plugins()
    epochs = [f"trainer.epochs={args.epochs}"] if args.epochs else []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for experiment in args.experiments:
            found = {"holdout": [], "kfold": []}
            for seed in range(args.seeds):
                common = [f"experiment={experiment}", f"seed={seed}", f"dataset.split_seed={seed}"]
                for protocol, extra in (
                    ("holdout", []),
                    ("kfold", ["protocol=kfold", f"protocol.folds={args.folds}"]),
                ):
                    run_dir = Path(tmp) / experiment / protocol / str(seed)
                    found[protocol].append(objective([*common, *epochs, *extra], run_dir))
            holdout, kfold = (statistics.stdev(found[p]) for p in ("holdout", "kfold"))
            print(f"{experiment}: validation accuracy over {args.seeds} seeds (mean, std)")
            print(f"  holdout:      {statistics.mean(found['holdout']):.4f}  std {holdout:.4f}")
            print(
                f"  {args.folds}-fold mean:  {statistics.mean(found['kfold']):.4f}  std {kfold:.4f}"
            )
            ratio = kfold / holdout if holdout else float("nan")
            print(f"  std ratio k-fold / holdout: {ratio:.2f}  (target <= 0.5)")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
