"""Wall time and best score of a 24-trial Optuna search, with and without pruning.

Runs the same search twice in one go: ``hydra/sweeper=optuna`` on digits with the simple CNN,
the learning rate drawn from 1e-5 to 1 (log scale) by a seeded random sampler (so both
searches draw the same 24 learning rates), one job after another; once with
``hydra.sweeper.pruner=median`` (its default settings), once without a pruner. Prints both
wall times, their ratio, and each search's best validation accuracy; then where the time goes:
a job's fixed cost and its cost per epoch (a least-squares fit over every job's own time, from
Hydra saving its config to its metrics.json), the time outside the jobs, and the ratio those
leave with no fixed cost per job at all. Run::

    python benchmarks/pruning.py [--trials 24] [--epochs 8]
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from sweep_timing import time_sweep


def search(workdir: Path, args, pruner: str) -> tuple[float, float, int, list]:
    """Runs the search in ``workdir``; returns its wall time (s), its best validation accuracy,
    how many of its trials were pruned and each job's ``(seconds, epochs)``."""
    seconds = time_sweep(
        workdir,
        [
            "dataset=digits",
            "backbone=simple_cnn",
            "head=flatten_dense",
            "hydra/sweeper=optuna",
            "hydra/sweeper/sampler=random",
            f"hydra.sweeper.sampler.seed={args.seed}",
            f"hydra.sweeper.n_trials={args.trials}",
            "hydra.sweeper.n_jobs=1",
            f"hydra.sweeper.pruner={pruner}",
            "optimizer.learning_rate=tag(log,interval(1e-5,1.0))",
            "trainer.objective=val_accuracy",
            f"trainer.epochs={args.epochs}",
            "trainer.verbose=0",
        ],
    )
    sweep = workdir / "sweep"
    best = OmegaConf.load(sweep / "optimization_results.yaml").best_value
    pruned = sum(1 for row in (sweep / "summary.csv").read_text().splitlines() if ",pruned," in row)
    return seconds, best, pruned, job_times(sweep)


def job_times(sweep: Path) -> list[tuple[float, int]]:
    """Each job's seconds, from Hydra saving its config to its metrics.json, and its epochs."""
    jobs = []
    for metrics in sorted(sweep.glob("*/metrics.json")):
        start = (metrics.parent / ".hydra" / "config.yaml").stat().st_mtime
        epochs = json.loads(metrics.read_text())["epochs"]
        jobs.append((metrics.stat().st_mtime - start, epochs))
    return jobs


def breakdown(results: dict):
    """Prints a job's fixed cost and cost per epoch, and what they leave of the ratio."""
    jobs = [job for *_, times in results.values() for job in times]
    seconds, epochs = np.array(jobs, dtype=float).T
    fixed, per_epoch = np.linalg.lstsq(
        np.stack([np.ones_like(epochs), epochs], axis=1), seconds, rcond=None
    )[0]
    print(
        f"  a job: {fixed:.1f} s fixed + {per_epoch:.2f} s per epoch (least squares over the "
        f"{len(jobs)} jobs' own times)"
    )
    floor = {}
    for pruner, (wall, *_, times) in results.items():
        outside = wall - sum(s for s, _ in times)
        trained = sum(e for _, e in times)
        floor[pruner] = outside + trained * per_epoch
        print(
            f"  pruner={pruner:11}{trained:4d} epochs in {len(times)} jobs, "
            f"{outside:.1f} s outside the jobs (start-up, Optuna, Hydra's launches)"
        )
    print(f"  with no fixed cost per job the ratio would be {floor['median'] / floor['none']:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for pruner in ("none", "median"):
            Path(tmp, pruner).mkdir()
            results[pruner] = search(Path(tmp) / pruner, args, pruner)
    print(
        f"{args.trials}-trial Optuna search on digits (simple_cnn, learning rate 1e-5..1, "
        f"{args.epochs} epochs), one job after another"
    )
    print(f"  {'':18}{'wall time':>11}{'best val_accuracy':>20}{'pruned':>9}")
    for pruner, (seconds, best, pruned, _) in results.items():
        print(f"  pruner={pruner:11}{seconds:9.1f} s{best:20.4f}{pruned:9d}")
    (plain, plain_best, *_), (pruned, pruned_best, *_) = results["none"], results["median"]
    print(
        f"  wall time ratio: {pruned / plain:.2f}x; best score difference: "
        f"{pruned_best - plain_best:+.4f}"
    )
    breakdown(results)


if __name__ == "__main__":
    main()
