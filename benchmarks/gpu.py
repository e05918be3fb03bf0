"""MobileNetV2 training throughput on a GPU: the framework against a plain Keras script.

Trains MobileNetV2 (random weights) on generated in-memory shapes images, (a) the head only,
over the frozen base (which runs every step: no feature cache), and (b) the whole network, each
in float32 and mixed_bfloat16 with XLA (``jit_compile=True``), through the framework
(``framework.run.train.train`` on a composed config, as ``python -m framework`` runs it) and through
a plain Keras script on the same backend: the same layers (the framework's mobilenetv2 plugin
rescales to -1..1 inside the model; gap_dense is GlobalAveragePooling2D + Dropout 0.2; the output
layer float32), the same arrays (the framework's own dataset, loaded once: uint8 images, which
both models cast to float on the device), batch size, Adam, loss, seed, dtype policy and epochs.
Both sides run in this process, one after the other, in ``--rounds`` rounds (default 2): which
side goes first alternates from row to row and from round to round, since the second runs on a
warmer machine (on an H200, the second side was up to a quarter faster, whichever it was). Each
row prints images per second of both sides, over the timed epochs of all rounds, and the ratio.

Only the timed epochs count: each side trains ``--warmup`` epochs (compilation) and then
``--epochs`` timed ones; a callback times each from its first step to its last (validation and
the framework's reports are left out), waiting for the device at both ends, and a side's figure
is the median of its timed epochs' images per second. ``nvidia-smi``, when
there is one, samples the GPU's utilization every 100 ms during the whole benchmark; a row's
figure is the mean of the samples taken inside its timed epochs. A second table breaks one
step of the plain side down (a fit step on batches already on the device, host gather of a
shuffled batch as Keras's array adapter does it, host-to-device copy), to tell what limits a
row that keeps the GPU below its targets: framework/plain >= 0.97 in every row, and at least
60% utilization in the whole-network mixed_bfloat16 row.

On JAX, the two sides share a compilation cache (a temporary folder): the second side of a row
loads the first's train step instead of compiling it again when the two are the same XLA program,
which saves device time and shows that they are (a line of the report says in which rows).

On a GPU machine with JAX and no TensorFlow (``benchmarks/gpu_setup.sh`` installs the pure-Python
dependencies from ``.whl/`` and this project into /tmp/site), from the repository root::

    sh benchmarks/gpu_setup.sh /tmp/site
    PYTHONPATH=/tmp/site KERAS_BACKEND=jax python3 benchmarks/gpu.py [--images 2048] [--size 224]
        [--batch 128] [--epochs 10] [--rounds 2] [--rows head,full]
        [--precisions float32,mixed_bfloat16] [--steps-per-execution 1] [--out gpu.md]

(run as a script, not with ``-c`` or ``-m`` from the repository root, where the source folder
``framework/`` would shadow the installed package).

``--quick`` is a CPU check with small sizes (64 images of 32x32, batch 16, 1 timed epoch);
``tests/test_gpu_benchmark.py`` runs it.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import pty  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROWS = {"head": "head only, frozen base", "full": "whole network"}
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
NUM_CLASSES = 4
HELD_OUT = 0.05  # validation and test fractions of each class
SEED = 42
TIMER = "benchmark_epoch_timer"  # the callback part the framework's runs get
QUICK = {"images": 64, "size": 32, "batch": 16, "epochs": 1}
TARGET_RATIO = 0.97
TARGET_UTILIZATION = 60.0


class GpuUtilization:
    """``nvidia-smi`` sampling the GPU's utilization every 100 ms in the background, each sample
    stamped with ``time.perf_counter()`` as it arrives (through a pseudo-terminal, so that
    nvidia-smi writes each line at once). Without nvidia-smi, no samples: figures are n/a."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self._process = None
        executable = shutil.which("nvidia-smi")
        if executable is None:
            return
        # The GPU this process computes on: the first visible one.
        gpu = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0].strip() or "0"
        command = [
            executable,
            "--query-gpu=utilization.gpu",
            "--format=csv,noheader,nounits",
            "-lms",
            "100",
            "-i",
            gpu,
        ]
        master, slave = pty.openpty()
        try:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.DEVNULL
            )
        except OSError:
            os.close(master)
            return
        finally:
            os.close(slave)
        self._reader = threading.Thread(target=self._read, args=(master,), daemon=True)
        self._reader.start()

    def _read(self, fd: int):
        pending = b""
        try:
            while chunk := os.read(fd, 4096):
                now = time.perf_counter()
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    try:
                        self.samples.append((now, float(line.strip())))
                    except ValueError:
                        pass  # not a number: "[N/A]", an error line
        except OSError:  # EIO: nvidia-smi is gone
            pass
        finally:
            os.close(fd)

    @property
    def available(self) -> bool:
        return self._process is not None

    def mean(self, windows: list[tuple[float, float]]) -> tuple[float, int] | None:
        """The mean utilization (%) of the samples taken inside ``windows``, and their count."""
        inside = [u for t, u in list(self.samples) if any(a <= t <= b for a, b in windows)]
        return (sum(inside) / len(inside), len(inside)) if inside else None

    def close(self):
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._reader.join(timeout=5)
            self._process = None


def epoch_timer(warmup: int):
    """A Keras callback that times the training part of each epoch after ``warmup`` epochs.

    An epoch's time runs from its start to the start of its validation (or its end, without
    one). The device is waited for at both ends (a JAX step returns before it has run): a
    variable that the last step wrote is read back to the host.
    """
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.windows: list[tuple[float, float]] = []
            self._start = None

        def _synced_now(self) -> float:
            variables = self.model.trainable_variables or self.model.variables
            keras.ops.convert_to_numpy(variables[-1])
            return time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self._start = self._synced_now() if epoch >= warmup else None

        def _stop(self):
            if self._start is not None:
                self.windows.append((self._start, self._synced_now()))
                self._start = None

        def on_test_begin(self, logs=None):
            self._stop()

        def on_epoch_end(self, epoch, logs=None):
            self._stop()

    return EpochTimer()


def samples_per_class(images: int) -> int:
    """The fewest images per class whose training part gives ``images`` training images in all
    (``HELD_OUT`` of each class for validation and as many for test, at least 1 each)."""
    from framework_plugins.datasets.image_data import split_counts

    per_class = math.ceil(images / NUM_CLASSES)
    n = per_class
    while True:
        train, validation, test = split_counts(n, HELD_OUT, HELD_OUT)
        if train >= per_class and validation >= 1:
            return n
        n += 1


def framework_overrides(args, row: str, precision: str) -> list[str]:
    """The config of the framework's run: ``python -m framework`` with these overrides."""
    trainable = "head" if row == "head" else "all"
    return [
        "dataset=shapes",
        f"dataset.num_classes={NUM_CLASSES}",
        f"dataset.samples_per_class={samples_per_class(args.images)}",
        f"dataset.validation_split={HELD_OUT}",
        f"dataset.test_split={HELD_OUT}",
        "backbone=mobilenetv2",
        "backbone.weights=null",
        f"backbone.input_size=[{args.size},{args.size}]",
        "head=gap_dense",
        "optimizer=adam",
        f"seed={SEED}",
        f"trainer.batch_size={args.batch}",
        f"trainer.epochs={args.warmup + args.epochs}",
        f"trainer.stages=[{{name:{row},trainable:{trainable}}}]",
        f"trainer.precision={precision}",
        "trainer.jit_compile=true",
        f"trainer.steps_per_execution={args.steps_per_execution}",
        # The head-only row runs the frozen base every step, as the plain script does.
        "trainer.feature_cache.enabled=false",
        "trainer.checkpoint=false",
        "trainer.verbose=0",
        f"callbacks=[{TIMER}]",
    ]


_current_timer = []  # the timer the framework's next run gets, through its callback part


def register_timer_part():
    """Registers the epoch timer as a callback part, as a plugin's ``register_callbacks`` hook
    would, so that a run config selects it with ``callbacks=[benchmark_epoch_timer]``."""
    from framework.parts import registry
    from framework.parts.loading import load_plugins

    load_plugins()
    if TIMER not in registry.callbacks:
        registry.callbacks.register(
            TIMER,
            lambda cfg, ctx: _current_timer[-1],
            {},
            "Times the training part of each epoch after the warm-up (benchmarks/gpu.py)",
            provider="benchmarks/gpu.py",
        )


def run_framework(args, row: str, precision: str, run_dir: Path):
    """One run through the framework, into ``run_dir``; returns its epoch timer."""
    from framework.run.train import train
    from framework.testing import compose

    timer = epoch_timer(args.warmup)
    _current_timer.append(timer)
    cfg = compose(framework_overrides(args, row, precision))
    with contextlib.redirect_stdout(sys.stderr):  # its report: the table alone goes to stdout
        train(cfg, run_dir)
    return timer


def plain_model(args, row: str, precision: str):
    """What the framework builds for the row, as a plain Keras script writes it."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(SEED)
    keras.config.set_dtype_policy(precision)
    shape = (args.size, args.size, 3)
    inputs = keras.Input(shape=shape)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)  # preprocess_input("tf")
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=shape)
    base.trainable = row == "full"
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=True,
        steps_per_execution=args.steps_per_execution,
    )
    return model


def run_plain(args, row: str, precision: str, data, breakdown: bool):
    """One run as a plain Keras script; returns its epoch timer and its step breakdown (None
    without ``breakdown``)."""
    import keras

    model = plain_model(args, row, precision)
    timer = epoch_timer(args.warmup)
    train, validation = data.train, data.validation
    fit_args, fit_kwargs = (
        ((train,), {})
        if not isinstance(train, tuple)
        else (train, {"batch_size": args.batch, "shuffle": True})
    )
    model.fit(
        *fit_args,
        **fit_kwargs,
        validation_data=validation,
        epochs=args.warmup + args.epochs,
        callbacks=[timer],
        verbose=0,
    )
    parts = step_breakdown(model, train, args) if breakdown else None
    keras.config.set_dtype_policy("float32")
    return timer, parts


def step_breakdown(model, train, args, repeats: int = 10) -> dict | None:
    """Milliseconds per batch of: a fit step on batches already on the device (fit's own Python
    work included), gathering a shuffled batch from the host arrays (what Keras's array adapter
    does each step), and copying a batch to the device. None for data that is not arrays."""
    import keras
    import numpy as np

    if not isinstance(train, tuple):
        return None
    x, y = train
    order = np.random.default_rng(SEED).permutation(len(x))
    batches = [order[i * args.batch : (i + 1) * args.batch] for i in range(repeats)]
    batches = [b for b in batches if len(b) == args.batch] or [order[: args.batch]]
    start = time.perf_counter()
    for indices in batches:
        xb, yb = x[indices], y[indices]
    gather = (time.perf_counter() - start) / len(batches) * 1e3
    copy = step = None
    if keras.config.backend() == "jax":
        import jax

        start = time.perf_counter()
        for _ in batches:
            jax.block_until_ready(jax.device_put((xb, yb)))
        copy = (time.perf_counter() - start) / len(batches) * 1e3
        # fit again, on batches moved to the device beforehand, in the (x, y) form of the fit
        # before, so its compiled step serves (train_on_batch's (x, y, None) would compile
        # another). A generator hands them over as they are: Keras's array adapter would take
        # JAX arrays back to the host.
        resident = [jax.device_put((x[indices], y[indices])) for indices in batches]
        jax.block_until_ready(resident)

        def resident_batches():
            while True:
                yield from resident

        timer = epoch_timer(warmup=1)
        model.fit(
            resident_batches(),
            steps_per_epoch=len(resident),
            epochs=2,
            callbacks=[timer],
            verbose=0,
        )
        ((begin, end),) = timer.windows
        step = (end - begin) / len(batches) * 1e3
    return {"step": step, "gather": gather, "copy": copy}


def share_compilations(directory: Path) -> bool:
    """Points JAX's persistent compilation cache at ``directory``, before anything compiles, so
    that the second side of a row loads the program the first compiled when the two are the
    same (compilation is not timed; this only saves device time). Returns whether it did."""
    import keras

    if keras.config.backend() != "jax":
        return False
    import jax

    jax.config.update("jax_compilation_cache_dir", str(directory))
    # Every program, however quick to compile: the check must not depend on the machine's speed.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    return True


def train_steps_cached(directory: Path | None) -> int:
    """How many compiled train steps the compilation cache holds."""
    return len(list(directory.glob("jit_train_step*"))) if directory else 0


def epoch_throughputs(windows, images: int) -> list[float]:
    """Images per second of each timed epoch (``(start, end)`` windows)."""
    return [images / (b - a) if b > a else float("nan") for a, b in windows]


def throughput(windows, images: int) -> float:
    """The median of the timed epochs' images per second: one slow epoch (the host busy with
    something else) does not move it."""
    return statistics.median(epoch_throughputs(windows, images) or [float("nan")])


def device_line() -> str:
    import keras

    backend = keras.config.backend()
    versions = f"Keras {keras.__version__}, Python {platform.python_version()}"
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return (
            f"Device: {device.device_kind} ({device.platform}, {jax.device_count()} "
            f"device(s)); JAX {jax.__version__}, {versions}, backend jax"
        )
    return f"Device: Keras's default ({backend}); {versions}, backend {backend}"


def utilization_cell(utilization) -> str:
    return "n/a" if utilization is None else f"{utilization[0]:.0f}% (n={utilization[1]})"


def ms(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def limit(fit_step: float, parts: dict) -> str:
    """What bounds a fit step, from its breakdown: the input pipeline (host gather + copy), the
    device, or neither (Python's own work per step)."""
    if parts["step"] is None or parts["copy"] is None:
        return "n/a"
    host = parts["gather"] + parts["copy"]
    if host >= parts["step"] and host >= 0.8 * fit_step:
        return f"input pipeline (gather + copy {host:.1f} ms)"
    if parts["step"] >= 0.8 * fit_step:
        return "device"
    return "Python per step"


def report(args, results: list[dict], header: list[str], done: bool) -> str:
    """The markdown report: the settings, the table, the targets and the step breakdown."""
    lines = [
        *header,
        "",
        "| row | precision | framework img/s | plain img/s | ratio | GPU util framework "
        "| GPU util plain |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['row']} | {r['precision']} | {r['framework']:.1f} | "
            f"{r['plain']:.1f} | {r['ratio']:.3f} | "
            f"{utilization_cell(r['util_framework'])} | "
            f"{utilization_cell(r['util_plain'])} |"
        )
    if not done:
        lines += ["", "(unfinished: the rows so far)"]
    lines.append("")
    below = [
        f"{r['row']} {r['precision']} ({r['ratio']:.3f})"
        for r in results
        if not r["ratio"] >= TARGET_RATIO
    ]
    lines.append(
        f"Target framework/plain >= {TARGET_RATIO} in every row: "
        + (f"missed in {', '.join(below)}" if below else "met")
    )
    full_bf16 = [r for r in results if (r["row"], r["precision"]) == ("full", "mixed_bfloat16")]
    if full_bf16:
        util = [u for u in (full_bf16[0]["util_framework"], full_bf16[0]["util_plain"]) if u]
        if not util:
            verdict = "n/a (no nvidia-smi samples)"
        else:
            lowest = min(u[0] for u in util)
            verdict = (
                f"{'met' if lowest >= TARGET_UTILIZATION else 'missed'} (lowest {lowest:.0f}%)"
            )
        lines.append(
            f"Target whole network, mixed_bfloat16: GPU utilization >= "
            f"{TARGET_UTILIZATION:.0f}%: {verdict}"
        )
    same = [r for r in results if r["same_program"] is not None]
    if same:
        differ = [f"{r['row']} {r['precision']}" for r in same if not r["same_program"]]
        lines.append(
            "Same XLA train step on both sides (the second side found the first's in "
            "JAX's compilation cache): "
            + (
                f"in every row but {', '.join(differ)} (programs that differ before "
                "XLA's optimizations)"
                if differ
                else "in every row"
            )
        )
    if any(r["parts"] for r in results):
        lines += [
            "",
            f"Where a step's time goes (plain Keras, ms per batch of {args.batch}): "
            "fit: a step of the timed epochs; device: a fit step on batches already on the "
            "device (fit's own Python work included); "
            "gather: a shuffled batch taken from the host arrays, as Keras's array adapter "
            "does each step; copy: that batch to the device. Gather and copy run on the "
            "host while the device computes the step before: the longer of the two sides "
            "limits a step.",
            "",
            "| row | precision | fit | device | gather | copy | limited by |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in results:
            p = r["parts"]
            if p:
                fit_step = args.batch / r["plain"] * 1e3
                lines.append(
                    f"| {r['row']} | {r['precision']} | {fit_step:.1f} | "
                    f"{ms(p['step'])} | {ms(p['gather'])} | {ms(p['copy'])} | "
                    f"{limit(fit_step, p)} |"
                )
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048, help="training images (default 2048)")
    parser.add_argument("--size", type=int, default=224, help="image side (default 224)")
    parser.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs (default 10)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="epochs before the timed ones (compilation; default 1)",
    )
    parser.add_argument(
        "--rows",
        default="head,full",
        help="comma-separated: head (frozen base), full (whole network)",
    )
    parser.add_argument(
        "--precisions",
        default="float32,mixed_bfloat16",
        help=f"comma-separated, among {', '.join(PRECISIONS)}",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="runs of each side per row, taking turns at going first (default 2); "
        "a row's figures are the median over all their timed epochs",
    )
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument(
        "--no-breakdown",
        dest="breakdown",
        action="store_false",
        help="skip the step breakdown of the plain side",
    )
    parser.add_argument(
        "--no-shared-compilations",
        dest="share_compilations",
        action="store_false",
        help="JAX: compile each side's programs itself, rather than loading the "
        "other side's from a compilation cache when they are the same",
    )
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a CPU check: " + ", ".join(f"--{k} {v}" for k, v in QUICK.items()),
    )
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    args.rows = [r for r in args.rows.split(",") if r]
    args.precisions = [p for p in args.precisions.split(",") if p]
    bad = [r for r in args.rows if r not in ROWS] + [
        p for p in args.precisions if p not in PRECISIONS
    ]
    if bad or not args.rows or not args.precisions:
        parser.error(
            f"unknown row or precision {bad[0]!r}"
            if bad
            else "give at least one row and one precision"
        )
    if min(args.images, args.batch, args.epochs, args.rounds, args.steps_per_execution) < 1 or (
        args.warmup < 1 or args.size < 32
    ):
        parser.error(
            "--images, --batch, --epochs, --rounds, --warmup and --steps-per-execution "
            "must be at least 1, --size at least 32 (MobileNetV2's smallest)"
        )
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()

    def log(message: str):
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp, "compilation_cache") if args.share_compilations else None
        if cache and not share_compilations(cache):
            cache = None
        sampler = GpuUtilization()
        try:
            results, header = measure(args, Path(tmp), cache, sampler, log)
        finally:
            sampler.close()
    text = report(args, results, header, done=True)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    log("done")


def measure(args, workdir: Path, cache: Path | None, sampler: GpuUtilization, log):
    """Runs every row, both sides; returns the rows' results and the report's header lines."""
    from framework.run.train import load_data
    from framework.testing import compose

    register_timer_part()
    data = load_data(compose(framework_overrides(args, args.rows[0], args.precisions[0])))
    images = int(data.info["train"])  # the plain side trains on the framework's own arrays
    header = [
        f"MobileNetV2 at {args.size}x{args.size}, {images} generated training images "
        f"({NUM_CLASSES} classes), batch {args.batch}, {args.warmup} warm-up + {args.epochs} "
        f"timed epoch(s) a run, {args.rounds} round(s) (which side goes first alternates from "
        f"row to row and round to round), XLA (jit_compile=True), steps_per_execution "
        f"{args.steps_per_execution}",
        device_line(),
    ]
    if args.quick:
        header.append("(--quick: a check that the benchmark runs; these figures measure nothing)")
    log(header[1])
    if not sampler.available:
        log("no nvidia-smi: GPU utilization n/a")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    pairs = [(row, precision) for row in args.rows for precision in args.precisions]
    runs = {
        pair: {"framework": [], "plain": [], "parts": None, "same_program": None} for pair in pairs
    }
    for round_ in range(args.rounds):
        for number, (row, precision) in enumerate(pairs):
            pair, cached = runs[(row, precision)], []
            # Which side goes first alternates from pair to pair and from round to round: the
            # one that runs second runs on a warmer machine (up to a quarter faster on an H200).
            first = "framework" if (number + round_) % 2 == 0 else "plain"
            for side in (first, "plain" if first == "framework" else "framework"):
                cached.append(train_steps_cached(cache))
                if side == "framework":
                    timer = run_framework(
                        args, row, precision, workdir / f"{round_}-{number}-{row}-{precision}"
                    )
                else:
                    timer, parts = run_plain(
                        args, row, precision, data, breakdown=args.breakdown and round_ == 0
                    )
                    pair["parts"] = pair["parts"] or parts
                pair[side] += timer.windows
                each = ", ".join(f"{t:.0f}" for t in epoch_throughputs(timer.windows, images))
                log(
                    f"round {round_ + 1}: {row} {precision} {side}: "
                    f"{throughput(timer.windows, images):.1f} images/s (epochs: {each})"
                )
            cached.append(train_steps_cached(cache))
            if round_ == 0 and cache:
                # The second side compiled nothing new: it ran the program the first compiled.
                pair["same_program"] = cached[1] > cached[0] and cached[2] == cached[1]
            if args.out:  # the rows so far, should the run be cut short
                done = round_ + 1 == args.rounds and number + 1 == len(pairs)
                args.out.write_text(report(args, summarize(runs, images, sampler), header, done))
    return summarize(runs, images, sampler), header


def summarize(runs: dict, images: int, sampler: GpuUtilization) -> list[dict]:
    """Each row's figures over the timed epochs of all its rounds so far."""
    results = []
    for (row, precision), pair in runs.items():
        if not pair["framework"] or not pair["plain"]:
            continue
        framework = throughput(pair["framework"], images)
        plain = throughput(pair["plain"], images)
        results.append(
            {
                "row": row,
                "precision": precision,
                "framework": framework,
                "plain": plain,
                "ratio": framework / plain,
                "parts": pair["parts"],
                "util_framework": sampler.mean(pair["framework"]),
                "util_plain": sampler.mean(pair["plain"]),
                "same_program": pair["same_program"],
            }
        )
    return results


if __name__ == "__main__":
    main()
