"""Regenerates every figure and pasted output of README.md and docs/*.md from real runs.

    python docs/figures.py            # runs everything in a scratch folder, rewrites the pages
    python docs/figures.py --check    # runs everything, prints what would change, writes nothing

The pages mark what this script owns: a value ``<!-- fig:KEY -->0.9806<!-- /fig -->`` and a
pasted block (the fenced block right after ``<!-- out:KEY -->``), each in whichever page shows
it. Runs are deterministic on one machine, not across machines (oneDNN kernels and thread counts
differ), so the pages name the machine the figures came from (``fig:machine``). Takes about 6
minutes on 2 CPU cores.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABULAR = [
    "iris_binary",
    "iris_deep",
    "iris_tanh",
    "iris_multiclass",
    "iris_dropout",
    "wine",
    "wine_dropout_l2",
    "wine_callbacks",
]


class Session:
    """Runs shell commands in one scratch folder with this Python first on the PATH."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        bindir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
            "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": "1",
            "COLUMNS": "100",
        }

    def run(self, command: str, expect: int = 0) -> str:
        """Runs ``command``; returns its stdout and stderr."""
        print(f"$ {command}", file=sys.stderr, flush=True)
        result = subprocess.run(
            command,
            shell=True,
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            executable="/bin/bash",
        )
        if result.returncode != expect:
            sys.exit(
                f"{command!r} exited {result.returncode}, not {expect}:\n{result.stderr[-3000:]}"
            )
        return result.stdout, result.stderr

    def metrics(self, run_dir: str) -> dict:
        return json.loads((self.workdir / run_dir / "metrics.json").read_text())


def transcript(command: str, lines) -> str:
    """A pasted block: the command after ``$ ``, then the lines it printed."""
    return "\n".join([f"$ {command}", *lines])


def as_shown(stdout: str, stderr: str) -> list[str]:
    """What a failed command shows: its notes (stdout), then its error (stderr)."""
    notes = [line for line in stdout.splitlines() if line.startswith("note:")]
    return [*notes, *stderr.strip().splitlines()]


def report_lines(stdout: str, from_last_epoch: bool = False) -> list[str]:
    """The run report at the end of a run's output (and the last epoch's line before it)."""
    lines = stdout.rstrip().splitlines()
    start = next(i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("Run dir:"))
    if from_last_epoch:
        start = next(i for i in range(start, -1, -1) if lines[i].startswith("Epoch "))
    return lines[start:]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import keras
    import tensorflow as tf

    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()}, Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def collect(s: Session) -> tuple[dict, dict]:
    """Runs what the pages show; returns their values and their pasted blocks, by key."""
    figs, outs = {}, {}
    stdout, _ = s.run("python -m framework")
    outs["default_run"] = "\n".join(report_lines(stdout, from_last_epoch=True))
    run_dir = next(line for line in stdout.splitlines() if line.startswith("Run dir:"))
    m = s.metrics(run_dir.split(":", 1)[1].strip())
    figs["default.val"] = f"{m['validation']['accuracy']:.4f}"
    figs["default.test"] = f"{m['test']['accuracy']:.4f}"

    for name in [*TABULAR, "cnn_shapes"]:
        s.run(f"python -m framework experiment={name} trainer.verbose=0 hydra.run.dir=runs/{name}")
        m = s.metrics(f"runs/{name}")
        figs[f"{name}.test"] = f"{m['test']['accuracy']:.4f}"
        figs[f"{name}.epochs"] = str(m["epochs"])

    command = "python -m framework dataset=wine trainer.verbose=0"
    stdout, _ = s.run(command)
    outs["auto_parts"] = transcript(
        command, [*stdout.splitlines()[:2], "...", *report_lines(stdout)[:2]]
    )
    generate = "python -m framework_plugins.sample_csv houses houses.csv"
    generated, _ = s.run(generate)
    command = (
        "python -m framework dataset=csv dataset.path=houses.csv dataset.target=price "
        "trainer.verbose=0"
    )
    stdout, _ = s.run(command)
    outs["regression_csv"] = "\n".join(
        [
            transcript(generate, generated.splitlines()),
            transcript(command, stdout.rstrip().splitlines()),
        ]
    )
    fit_errors = []
    for command in (
        "python -m framework head=dense",
        "python -m framework experiment=wine backbone=simple_cnn",
    ):
        fit_errors.append(transcript(command, as_shown(*s.run(command, expect=2))))
    outs["fit_errors"] = "\n".join(fit_errors)

    command = (
        "python -m framework_plugins.shapes pets --num-classes 2 --samples-per-class 300 "
        "--image-size 64"
    )
    stdout, _ = s.run(command)
    tree = transcript(command, stdout.strip().splitlines())
    command = (
        "python -m framework experiment=cnn_binary dataset.path=pets "
        "backbone.input_size=[64,64] hydra.run.dir=pets_run"
    )
    stdout, _ = s.run(command)
    outs["cnn_binary"] = "\n".join([tree, transcript(command, ["...", *report_lines(stdout)])])
    figs["cnn_binary.test"] = f"{s.metrics('pets_run')['test']['accuracy']:.4f}"

    blocks = []
    for command in (
        "python -m framework.predict pets_run pets/test/circle/circle_00240.png --top 2",
        "python -m framework.predict pets_run pets/test --output pets_predictions.csv",
    ):
        stdout, _ = s.run(command)
        blocks.append(transcript(command, stdout.strip().splitlines()))
    outs["predict"] = "\n".join(blocks)

    blocks = []
    for command in (
        "python -m framework.export pets_run --format tflite",
        "python -m framework.export pets_run --format tflite --quantize int8",
        "python -m framework.predict pets_run/export/model_int8.tflite pets/test "
        "--output int8_predictions.csv",
    ):
        stdout, _ = s.run(command)
        blocks.append(transcript(command, stdout.strip().splitlines()))
    outs["export"] = "\n".join(blocks)

    command = (
        "python -m framework -m experiment=iris_binary trainer.verbose=0 "
        "'backbone.units=[8,4],[16,8]' optimizer=adam,sgd hydra.sweep.dir=sweep"
    )
    stdout, _ = s.run(command)
    lines = stdout.strip().splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("Sweep:")) :]
    head, _ = s.run("head -2 sweep/summary.csv")
    outs["sweep"] = "\n".join(
        [
            transcript(command, ["...", *table]),
            transcript("head -2 sweep/summary.csv", head.strip().splitlines()),
        ]
    )

    sweep_command = (
        "python -m framework -m experiment=wine trainer.verbose=0 trainer.epochs=20 "
        "optimizer.learning_rate=0.0001,0.001,0.01 hydra.sweep.dir=lr_sweep"
    )
    s.run(sweep_command)
    blocks = [transcript(sweep_command, ["..."])]
    for command in ("python -m framework.compare lr_sweep", "head -2 lr_sweep/compare.csv"):
        stdout, _ = s.run(command)
        blocks.append(transcript(command, stdout.strip().splitlines()))
    outs["compare"] = "\n".join(blocks)

    command = (
        "python -m framework -m hydra/launcher=joblib hydra.launcher.n_jobs=2 "
        "experiment=iris_binary trainer.verbose=0 backbone.activation=relu,tanh,sigmoid "
        "hydra.sweep.dir=parallel"
    )
    stdout, _ = s.run(command)
    lines = stdout.strip().splitlines()
    notes = [line for line in lines if line.startswith("note:")]
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("Sweep:")) :]
    outs["parallel_sweep"] = transcript(command, [*notes, "...", *table])

    command = (
        "python -m framework experiment=tune_wine_random trainer.verbose=0 hydra.run.dir=tuned"
    )
    stdout, _ = s.run(command)
    outs["tune"] = transcript(command, stdout.strip().splitlines())
    figs["tune_wine_random.test"] = f"{s.metrics('tuned')['test']['accuracy']:.4f}"
    command = "tail -3 tuned/best_overrides.yaml"
    outs["tune_best"] = transcript(command, s.run(command)[0].strip().splitlines())
    s.run(
        "python -m framework experiment=tune_wine_hyperband trainer.verbose=0 "
        "hydra.run.dir=hyperband"
    )
    figs["tune_wine_hyperband.test"] = f"{s.metrics('hyperband')['test']['accuracy']:.4f}"

    command = (
        "python -m framework -m experiment=search_wine_optuna hydra.sweeper.n_trials=6 "
        "trainer.verbose=0"
    )
    stdout, _ = s.run(command)
    lines = stdout.strip().splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("Sweep:")) :]
    best = [line for line in lines if "[HYDRA] Best" in line]  # as printed, its prefix too
    outs["optuna"] = transcript(command, ["...", *best, *table])

    command = (
        "python -m framework -m experiment=wine hydra/sweeper=optuna hydra.sweep.dir=pruned "
        "'optimizer.learning_rate=tag(log,interval(1e-5,1.0))' hydra/sweeper/sampler=random "
        "hydra.sweeper.sampler.seed=0 hydra.sweeper.n_trials=8 hydra.sweeper.n_jobs=1 "
        "hydra.sweeper.pruner=median hydra.sweeper.pruner_startup_trials=2 trainer.epochs=20 "
        "trainer.verbose=0"
    )
    stdout, _ = s.run(command)
    lines = stdout.strip().splitlines()
    pruned = [line for line in lines if line.startswith("  pruned after")]
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("Sweep:")) :]
    outs["optuna_pruned"] = transcript(command, ["...", *pruned, "...", *table])

    command = (
        "python -m framework experiment=wine tuner=random "
        "'+tuner.space.optimizer.learning_rate={log_float:[1e-5,1.0]}' tuner.max_trials=8 "
        "tuner.pruner=median tuner.pruner_startup_trials=2 tuner.time_budget=10m "
        "trainer.epochs=20 trainer.verbose=0 hydra.run.dir=pruned_search"
    )
    stdout, _ = s.run(command)
    lines = stdout.strip().splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("Search:")) :]
    end = next(i for i, line in enumerate(table) if line.startswith("Retraining"))
    outs["tune_pruned"] = transcript(command, ["...", *table[:end]])

    outs.update(collect_errors(s))
    figs["machine"] = machine()
    return figs, outs


# docs/errors.md: one command per kind of mistake, in the order it shows them.
ERROR_COMMANDS = [
    "python -m framework backbone=resnet",
    "python -m framework trainer.epochs=ten",
    "python -m framework optimizer.learning_rate=-0.5",
    "python -m framework experiment=iris_binary backbone.units=[16,0]",
    "python -m framework trainer.epoch=5",
    "python -m framework dataset=csv dataset.path=flowers.csv dataset.target=espèce",
    "python -m framework dataset=csv dataset.path=flowers.csv dataset.target=kind",
    r"printf 'sepal_length,sepal_width,species\n5.1,3.5,setosa\n4.9,nan,setosa\n"
    r"6.3,2.9,virginica\n' > gaps.csv",
    "python -m framework dataset=csv dataset.path=gaps.csv dataset.target=species",
    "python -m framework --cfg bogus",
    "python -m framework experiment=iris_binary hydra.run.dir=outputs/first",
    "python -m framework experiment=iris_binary hydra.run.dir=flowers.csv",
]


def collect_errors(s: Session) -> dict:
    """docs/errors.md's transcripts: a finished run first, then each mistake's one line."""
    command = r"printf 'sepal_length,sepal_width,species\n5.1,3.5,setosa\n' > flowers.csv"
    s.run(command)
    blocks = [transcript(command, [])]
    command = (
        "python -m framework experiment=iris_binary trainer.verbose=0 hydra.run.dir=outputs/first"
    )
    stdout, _ = s.run(command)
    blocks.append(transcript(command, [*report_lines(stdout)[:1], "..."]))
    for command in ERROR_COMMANDS:
        expect = 0 if command.startswith("printf") else 2
        blocks.append(transcript(command, as_shown(*s.run(command, expect=expect))))
    return {"errors": "\n".join(blocks)}


def pages() -> list[Path]:
    """README.md and the pages of docs/, where the figures live."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def rewrite(text: str, page: str, figs: dict, outs: dict, partial: bool = False) -> str:
    """A page's text with every marked value and block replaced; unknown keys are an error."""

    def value(match):
        key = match.group(1)
        if key not in figs:
            if partial:
                return match.group(0)
            sys.exit(f"{page} marks fig:{key}, which this script does not produce")
        return f"<!-- fig:{key} -->{figs[key]}<!-- /fig -->"

    def block(match):
        key = match.group(1)
        if key not in outs:
            if partial:
                return match.group(0)
            sys.exit(f"{page} marks out:{key}, which this script does not produce")
        return f"<!-- out:{key} -->\n```\n{outs[key]}\n```"

    text = re.sub(r"<!-- fig:([\w.]+) -->.*?<!-- /fig -->", value, text)
    return re.sub(r"<!-- out:(\w+) -->\n```[^\n]*\n.*?\n```", block, text, flags=re.S)


def rewrite_pages(texts: dict, figs: dict, outs: dict, partial: bool = False) -> dict:
    """Every page's text (by name) rewritten; a pasted block that no page marks is an error (a
    block moved to another page must take its marker along)."""
    marked = {key for text in texts.values() for key in re.findall(r"<!-- out:(\w+) -->", text)}
    unmarked = sorted(set(outs) - marked)
    if unmarked:
        sys.exit(f"this script produces out:{', out:'.join(unmarked)}, which no page marks")
    return {page: rewrite(text, page, figs, outs, partial) for page, text in texts.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print the changes, write nothing")
    parser.add_argument(
        "--workdir", type=Path, help="scratch folder (default: a new temporary one)"
    )
    parser.add_argument(
        "--errors-only", action="store_true", help="regenerate docs/errors.md alone (a minute)"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="figures-"))
    workdir.mkdir(parents=True, exist_ok=True)
    session = Session(workdir)
    figs, outs = ({}, collect_errors(session)) if args.errors_only else collect(session)
    paths = {str(path.relative_to(ROOT)): path for path in pages()}
    old = {name: path.read_text() for name, path in paths.items()}
    new = rewrite_pages(old, figs, outs, partial=args.errors_only)
    for key, value in sorted(figs.items()):
        print(f"{key:<24} {value}")
    changed = [name for name in paths if new[name] != old[name]]
    if args.check:
        import difflib

        for name in changed:
            sys.stdout.writelines(
                difflib.unified_diff(
                    old[name].splitlines(True),
                    new[name].splitlines(True),
                    name,
                    f"{name} (regenerated)",
                )
            )
    elif changed:
        for name in changed:
            paths[name].write_text(new[name])
        print(f"rewrote {', '.join(changed)} (runs in {workdir})")
    else:
        print(f"the pages are up to date (runs in {workdir})")


if __name__ == "__main__":
    main()
