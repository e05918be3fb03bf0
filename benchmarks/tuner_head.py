"""A 16-trial keras-tuner head search over a frozen MobileNetV2 vs one plain run of that head.

All run in this process, one after the other: one plain run of ``tune_mobilenetv2_head``'s
schedule (the head trained 10 epochs) as Keras trains it, through the frozen base every epoch
(``trainer.feature_cache.enabled=false``); the same run on cached features (the framework's
default, extraction included); then the experiment's 16-trial random search on cached features
(extracted once, inside the measured time), the best config retrained at its end. A trial
builds the head alone on the features in memory, trials of the same head layers fit one
compiled head, and every trial fits on the features' pipelines, built once
(``framework.run.compiled_heads``). Prints the wall times, the search's ratio to
each run (target: at most 2x the run on cached features) and the process's memory after each
trial (it must not grow per trial).
Generated shapes stand in for the user's folders, and random weights for ImageNet's (the
timing does not depend on the weights' values)::

    python benchmarks/tuner_head.py [--trials 16] [--samples-per-class 200] [--size 224]
"""

import argparse
import tempfile
import time
from pathlib import Path

import hydra
from hydra.core.global_hydra import GlobalHydra


def compose(overrides: list[str]):
    from framework.config.schema import setup_configs

    setup_configs()
    GlobalHydra.instance().clear()
    with hydra.initialize_config_module(version_base="1.3", config_module="framework.conf"):
        return hydra.compose("config", overrides=overrides)


def rss_mb() -> float:
    """This process's resident memory, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--samples-per-class", type=int, default=200)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    from framework.run.train import train
    from framework.sweeps import tuner as tuning

    memory = []
    run_trial = tuning.Search.run_trial

    def measured_trial(self, trial, *a, **kw):
        result = run_trial(self, trial, *a, **kw)
        memory.append(rss_mb())
        return result

    tuning.Search.run_trial = measured_trial
    with tempfile.TemporaryDirectory() as tmp:
        base = [
            "experiment=tune_mobilenetv2_head",
            "dataset=shapes",
            f"dataset.samples_per_class={args.samples_per_class}",
            "backbone.weights=null",
            f"backbone.input_size=[{args.size},{args.size}]",
            "trainer.verbose=0",
            f"tuner.max_trials={args.trials}",
        ]
        start = time.perf_counter()
        train(compose([*base, "trainer.feature_cache.enabled=false"]), Path(tmp) / "uncached")
        uncached = time.perf_counter() - start
        plain_cfg = compose([*base, f"trainer.feature_cache.dir={tmp}/cache_plain"])
        start = time.perf_counter()
        train(plain_cfg, Path(tmp) / "plain")
        plain = time.perf_counter() - start
        search_cfg = compose([*base, f"trainer.feature_cache.dir={tmp}/cache_search"])
        start = time.perf_counter()
        tuning.tune(search_cfg, Path(tmp) / "search")
        search = time.perf_counter() - start
    print(
        f"\nHead search over a frozen MobileNetV2 at {args.size}x{args.size}, "
        f"{3 * args.samples_per_class} shapes images, 10 epochs per trial"
    )
    print(f"  one run, through the frozen base each epoch: {uncached:7.1f} s")
    print(f"  one run, on its features extracted once:     {plain:7.1f} s")
    print(f"  {args.trials}-trial search + best retrained:        {search:7.1f} s")
    print(f"  search / run through the base: {search / uncached:.2f}x")
    print(f"  search / run on cached features: {search / plain:.2f}x (target: at most 2x)")
    print(
        "  memory after trials 1, 2, 4, ...: "
        + ", ".join(f"{memory[i - 1]:.0f}" for i in (1, 2, 4, 8, 16, 32) if i <= len(memory))
        + " MB"
        f"; trial 2 to last: {memory[-1] - memory[1]:+.0f} MB"
    )


if __name__ == "__main__":
    main()
