"""What the framework costs over plain Keras: whole-process wall times, side by side.

Runs, in one go, each command in a process of its own, ``--repeats`` times, interleaved (one of
each, then again, the framework's run and the plain script's taking turns to go first), so that
any load on the machine weighs on all alike, and prints the median of each with the ratios:

- the default run (``python -m framework``: the digits CNN, 15 epochs) against
  ``plain_keras.py digits``, the same data, model, seed, batch size and epochs as a plain Keras
  script (target: at most 1.03 times as long);
- ``experiment=iris_binary`` (50 epochs of a Dense 8-4-1 network) against
  ``plain_keras.py iris_binary`` (target: at most 1.05);
- ``--help`` and ``--cfg job``, which compose and print a config without TensorFlow (target:
  under 1.0 s).

Beside the median wall times and their ratio it prints the range of the ratios of each pair
(a framework run over the plain run beside it), which shows how much the machine's own ups and
downs move a single comparison, and each command's CPU time (user + system, the process and its
children), which other work on a shared machine disturbs less, with its ratio.

Under each of the two runs, a row ``outside model.fit``: both sides run through
``fit_clock.py``, which clocks their time in ``keras.Model.fit`` (the same training loop on the
same model and data: the framework calls Keras's ``fit``), and the row shows each side's median
time outside it, the median of each pair's difference (what the framework adds: composing the
config, plugins, scoring, plots, the run dir; its callbacks, the epoch log and checkpoint, run
inside fit and count there) and the ratio that difference makes over the plain side's median
whole time. On a shared machine the fit's own ups and downs (a fifth either way from one run
to the next, here) move the whole-process ratio more than everything else; more repeats
narrow their effect on the medians.

Each framework run writes its run directory in a temporary folder, with its defaults (the run's
own checkpoint, the plots and reports included); each plain script saves its model there. Run::

    python benchmarks/overhead.py [--repeats 5] [--cases default,iris_binary,help,cfg_job]

``--repeats 1`` is a quick look; on 2 CPU cores the whole benchmark takes about a minute per
repeat, at about 15 s a default run (docs/speed.md's figures: 11 repeats, 11 minutes).
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN = Path(__file__).resolve().with_name("plain_keras.py")
FIT_CLOCK = Path(__file__).resolve().with_name("fit_clock.py")
FRAMEWORK = [sys.executable, "-m", "framework"]

# name: (framework command, plain Keras command or None, the target: a ratio or seconds)
CASES = {
    "default": (FRAMEWORK, [sys.executable, str(PLAIN), "digits"], 1.03),
    "iris_binary": (
        [*FRAMEWORK, "experiment=iris_binary"],
        [sys.executable, str(PLAIN), "iris_binary"],
        1.05,
    ),
    "help": ([*FRAMEWORK, "--help"], None, 1.0),
    "cfg_job": ([*FRAMEWORK, "--cfg", "job"], None, 1.0),
}
LABELS = {
    "default": "default run",
    "iris_binary": "experiment=iris_binary",
    "help": "--help",
    "cfg_job": "--cfg job",
}


def timed(command: list[str], workdir: Path, clock_fit: bool = False) -> tuple:
    """Runs ``command`` in ``workdir`` (output discarded).

    Args:
        command: ``python`` and its arguments.
        workdir: a new folder to run it in.
        clock_fit: run it through ``fit_clock.py``, which clocks its time in ``keras.Model.fit``.

    Returns:
        Its wall time and CPU time (user + system, its children's included) in seconds, and its
        seconds in ``fit`` (None unless clocked).

    Raises:
        RuntimeError: the command failed (with the end of its error output).
    """
    workdir.mkdir(parents=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    fit_file = workdir / ".fit-seconds"
    if clock_fit:
        command = [command[0], str(FIT_CLOCK), *command[1:]]
        env["FIT_CLOCK_FILE"] = str(fit_file)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, float(fit_file.read_text()) if clock_fit else None


def measure(cases: list[str], repeats: int, root: Path) -> dict[str, dict[str, list]]:
    """``{case: {"framework": [(wall, cpu, fit), ...], "plain": [...]}}``, the runs interleaved,
    the framework's first in even repeats and the plain script's first in odd ones (so that
    neither side always runs in the other's wake); where there is a plain side, both sides'
    time in ``fit`` is clocked."""
    times = {case: {"framework": [], "plain": []} for case in cases}
    for repeat in range(repeats):
        for case in cases:
            framework, plain, _ = CASES[case]
            order = (("framework", framework), ("plain", plain))
            for kind, command in order[::-1] if repeat % 2 else order:
                if command is not None:
                    workdir = root / f"{case}-{kind}-{repeat}"
                    times[case][kind].append(timed(command, workdir, plain is not None))
    return times


def table(times: dict) -> str:
    """The medians, ratios and targets, as docs/speed.md shows them."""
    lines = [
        f"{'':<23} {'wall time':^38}  {'CPU time':^24}",
        f"{'command':<23} {'framework':>9} {'plain':>7} {'ratio':>6} {'(pairs)':>13}  "
        f"{'framework':>9} {'plain':>7} {'ratio':>6}  target",
        "-" * 96,
    ]
    for case, runs in times.items():
        wall, cpu = (statistics.median(t[i] for t in runs["framework"]) for i in (0, 1))
        target = CASES[case][2]
        if runs["plain"]:
            plain_wall, plain_cpu = (statistics.median(t[i] for t in runs["plain"]) for i in (0, 1))
            ratio = wall / plain_wall
            # Each repeat's framework run over the plain run beside it: how much the machine's
            # own ups and downs move a single comparison.
            pairs = [f[0] / p[0] for f, p in zip(runs["framework"], runs["plain"])]
            spread = f"{min(pairs):.2f}-{max(pairs):.2f}"
            verdict = "ok" if ratio <= target else "over"
            lines.append(
                f"{LABELS[case]:<23} {wall:>8.2f}s {plain_wall:>6.2f}s {ratio:>6.3f} "
                f"{spread:>13}  {cpu:>8.2f}s {plain_cpu:>6.2f}s {cpu / plain_cpu:>6.3f}  "
                f"<= {target:.2f} ({verdict})"
            )
            lines.append(outside_fit_row(runs, plain_wall, target))
        else:
            verdict = "ok" if wall < target else "over"
            lines.append(
                f"{LABELS[case]:<23} {wall:>8.2f}s {'':>7} {'':>6} {'':>13}  "
                f"{cpu:>8.2f}s {'':>7} {'':>6}  < {target:.1f} s ({verdict})"
            )
    return "\n".join(lines)


def outside_fit_row(runs: dict, plain_wall: float, target: float) -> str:
    """The sub-row of a case's time outside ``keras.Model.fit``: the medians of each side, the
    median of each pair's difference (what the framework adds around the training loop, which
    both sides share and whose ups and downs on a busy machine move the whole-process ratio
    most), and the ratio that difference makes over the plain side's median whole time."""
    outside = {kind: [t[0] - t[2] for t in runs[kind]] for kind in ("framework", "plain")}
    extra = statistics.median(f - p for f, p in zip(outside["framework"], outside["plain"]))
    ratio = (plain_wall + extra) / plain_wall
    verdict = "ok" if ratio <= target else "over"
    framework, plain = (statistics.median(outside[kind]) for kind in ("framework", "plain"))
    return (
        f"{'  outside model.fit':<23} {framework:>8.2f}s {plain:>6.2f}s {ratio:>6.3f} "
        f"{f'{extra:+.2f} s':>13}  {'':>9} {'':>7} {'':>6}  <= {target:.2f} ({verdict})"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="runs of each command, interleaved; the median counts (default 5; 1 for a quick look)",
    )
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma-separated, among {', '.join(CASES)} (default: all)",
    )
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases or args.repeats < 1:
        parser.error(
            f"unknown case {unknown[0]!r}" if unknown else "give at least one case and one repeat"
        )
    start_load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        times = measure(cases, args.repeats, Path(tmp))
    print(
        f"Median of {args.repeats} interleaved run(s) each, whole process (start-up "
        f"included), {os.cpu_count()} CPUs, load average {start_load:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end"
    )
    print(table(times))


if __name__ == "__main__":
    main()
